#include "client/latency_recorder.h"

#include <algorithm>
#include <cmath>

namespace coalesce {

int64_t NearestRankPercentile(const std::vector<int64_t>& sorted_nanos, double percent) {
  const double clamped = std::clamp(percent, 0.0, 100.0);
  const size_t n = sorted_nanos.size();
  // rank = ceil(p/100 * n), 1-based; rank 0 (p = 0) means the minimum.
  size_t rank = static_cast<size_t>(std::ceil(clamped / 100.0 * static_cast<double>(n)));
  rank = std::clamp<size_t>(rank, 1, n);
  return sorted_nanos[rank - 1];
}

void LatencyRecorder::Record(absl::Duration duration) {
  nanos_.push_back(std::max<int64_t>(0, absl::ToInt64Nanoseconds(duration)));
}

void LatencyRecorder::Merge(const LatencyRecorder& other) {
  nanos_.insert(nanos_.end(), other.nanos_.begin(), other.nanos_.end());
}

LatencySummary LatencyRecorder::Summarize() {
  LatencySummary summary;
  summary.count = count();
  if (nanos_.empty()) return summary;
  std::sort(nanos_.begin(), nanos_.end());
  // A long double sum neither overflows nor loses a nanosecond at any plausible count.
  long double total = 0;
  for (int64_t value : nanos_) total += value;
  summary.mean = absl::Nanoseconds(static_cast<int64_t>(total / nanos_.size()));
  summary.p50 = absl::Nanoseconds(NearestRankPercentile(nanos_, 50));
  summary.p90 = absl::Nanoseconds(NearestRankPercentile(nanos_, 90));
  summary.p99 = absl::Nanoseconds(NearestRankPercentile(nanos_, 99));
  summary.max = absl::Nanoseconds(nanos_.back());
  return summary;
}

}  // namespace coalesce
