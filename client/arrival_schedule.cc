#include "client/arrival_schedule.h"

#include <cmath>
#include <random>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace coalesce {

absl::StatusOr<std::unique_ptr<ArrivalSchedule>> ArrivalSchedule::Create(const Options& options) {
  if (!(options.rate_per_s > 0) || !std::isfinite(options.rate_per_s)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "arrival rate must be a positive finite number of requests/s; got %g", options.rate_per_s));
  }
  if (options.span <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("arrival schedule span must be positive; got ",
                                                   absl::FormatDuration(options.span)));
  }
  const double span_s = absl::ToDoubleSeconds(options.span);
  const double expected = options.rate_per_s * span_s;
  if (expected > static_cast<double>(options.max_expected_arrivals)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "rate %g/s over %g s means %.0f requests; the most one schedule holds is %d",
        options.rate_per_s, span_s, expected, options.max_expected_arrivals));
  }

  std::mt19937_64 rng(options.seed);
  const double mean_gap_nanos = 1e9 / options.rate_per_s;
  const double span_nanos = static_cast<double>(absl::ToInt64Nanoseconds(options.span));
  std::vector<int64_t> offsets;
  // Poisson count has standard deviation sqrt(expected); reserve a little above the mean.
  offsets.reserve(static_cast<size_t>(expected + 4 * std::sqrt(expected) + 16));
  double t = 0;
  while (true) {
    // u in [0, 1) with 53 random bits; 1 - u is in (0, 1], so the logarithm is finite.
    const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
    t += -std::log1p(-u) * mean_gap_nanos;
    if (t >= span_nanos) break;
    offsets.push_back(static_cast<int64_t>(t));
  }
  return std::unique_ptr<ArrivalSchedule>(new ArrivalSchedule(std::move(offsets)));
}

}  // namespace coalesce
