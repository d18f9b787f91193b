#ifndef COALESCE_CLIENT_ARRIVAL_SCHEDULE_H_
#define COALESCE_CLIENT_ARRIVAL_SCHEDULE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace coalesce {

// ArrivalSchedule holds the send times of an open-loop load: a Poisson process of a given mean
// rate, i.e. gaps between sends are independent exponential draws with mean 1/rate. The times
// are computed up front from a seed (inverse-transform sampling on a 64-bit Mersenne Twister,
// both fully specified by the C++ standard), so the same seed gives the same offsets on every
// platform, and the sender does no arithmetic on its hot path.
//
// Immutable after Create(); safe to read from any thread.
class ArrivalSchedule {
 public:
  struct Options {
    // Mean arrival rate in requests per second. Must be positive and finite.
    double rate_per_s = 1.0;
    // The schedule covers offsets in [0, span). Must be positive.
    absl::Duration span = absl::Seconds(1);
    // Seed of the gaps; equal seeds give equal schedules.
    uint64_t seed = 1;
    // Create() refuses a rate x span whose expected number of arrivals exceeds this, rather than
    // allocating gigabytes for a mistyped rate.
    int64_t max_expected_arrivals = 20'000'000;
  };

  static absl::StatusOr<std::unique_ptr<ArrivalSchedule>> Create(const Options& options);

  // Number of arrivals in [0, span).
  int64_t size() const { return static_cast<int64_t>(offsets_nanos_.size()); }
  // Offset of arrival `i` from the start of the schedule; non-decreasing in `i`.
  absl::Duration offset(int64_t i) const { return absl::Nanoseconds(offsets_nanos_[i]); }

 private:
  explicit ArrivalSchedule(std::vector<int64_t> offsets_nanos)
      : offsets_nanos_(std::move(offsets_nanos)) {}

  const std::vector<int64_t> offsets_nanos_;
};

}  // namespace coalesce

#endif  // COALESCE_CLIENT_ARRIVAL_SCHEDULE_H_
