#ifndef COALESCE_CLIENT_LATENCY_RECORDER_H_
#define COALESCE_CLIENT_LATENCY_RECORDER_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/time/time.h"

namespace coalesce {

// Order statistics of a set of durations. All fields are zero when `count` is zero.
struct LatencySummary {
  int64_t count = 0;
  absl::Duration mean;
  absl::Duration p50;
  absl::Duration p90;
  absl::Duration p99;
  absl::Duration max;
};

// The nearest-rank percentile of `sorted_nanos` (ascending, non-empty): the smallest value such
// that at least `percent`% of the values are less than or equal to it. `percent` is clamped to
// [0, 100]; 0 gives the minimum and 100 the maximum.
int64_t NearestRankPercentile(const std::vector<int64_t>& sorted_nanos, double percent);

// LatencyRecorder keeps every duration it is given, at nanosecond resolution, so percentiles
// are exact rather than bucketed. A load-generator level records at most a few million values
// (8 bytes each), which is cheaper than getting a histogram's error bounds right.
//
// Not thread-safe: give each thread its own recorder and Merge() them after the threads have
// stopped recording.
class LatencyRecorder {
 public:
  LatencyRecorder() = default;

  // Pre-allocates room for `count` values so that recording does not reallocate.
  void Reserve(size_t count) { nanos_.reserve(count); }

  // Records one duration; negative durations are recorded as zero.
  void Record(absl::Duration duration);

  // Appends every value of `other`.
  void Merge(const LatencyRecorder& other);

  int64_t count() const { return static_cast<int64_t>(nanos_.size()); }

  // Sorts the values recorded so far (recording may continue afterwards) and summarises them.
  LatencySummary Summarize();

 private:
  std::vector<int64_t> nanos_;
};

}  // namespace coalesce

#endif  // COALESCE_CLIENT_LATENCY_RECORDER_H_
