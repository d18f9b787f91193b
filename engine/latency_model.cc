#include "engine/latency_model.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace coalesce {

absl::StatusOr<std::unique_ptr<OnlineLatencyModel>> OnlineLatencyModel::Create(
    const Options& options) {
  if (options.max_batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("latency model max_batch_size must be at least 1, got ",
                     options.max_batch_size));
  }
  if (!(options.alpha > 0 && options.alpha <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("latency model alpha must be in (0, 1], got ", options.alpha));
  }
  std::vector<int64_t> sizes;
  for (int64_t s = 1; s < options.max_batch_size; s *= 2) sizes.push_back(s);
  sizes.push_back(options.max_batch_size);
  return std::unique_ptr<OnlineLatencyModel>(new OnlineLatencyModel(options, std::move(sizes)));
}

OnlineLatencyModel::OnlineLatencyModel(const Options& options, std::vector<int64_t> sizes)
    : options_(options),
      sizes_(std::move(sizes)),
      seconds_(new std::atomic<double>[sizes_.size()]) {
  for (size_t i = 0; i < sizes_.size(); ++i) seconds_[i] = absl::ToDoubleSeconds(options.initial);
}

size_t OnlineLatencyModel::BucketFor(int64_t rows) const {
  auto it = std::lower_bound(sizes_.begin(), sizes_.end(), rows);
  return it == sizes_.end() ? sizes_.size() - 1 : it - sizes_.begin();
}

void OnlineLatencyModel::SetProfile(int64_t rows, absl::Duration measured) {
  seconds_[BucketFor(rows)].store(absl::ToDoubleSeconds(measured), std::memory_order_relaxed);
}

void OnlineLatencyModel::Observe(int64_t rows, absl::Duration measured) {
  size_t bucket = BucketFor(rows);
  double seconds = absl::ToDoubleSeconds(measured);
  // A zero estimate (a profile of a no-op) would clamp every later measurement to zero.
  double estimate = std::max(seconds_[bucket].load(std::memory_order_relaxed), 1e-6);
  double clamped = std::clamp(seconds, estimate / 2, estimate * 2);
  seconds_[bucket].store(estimate + options_.alpha * (clamped - estimate),
                         std::memory_order_relaxed);
}

absl::Duration OnlineLatencyModel::Predict(int64_t rows) const {
  size_t hi = BucketFor(rows);
  double at_hi = seconds_[hi].load(std::memory_order_relaxed);
  if (hi == 0 || rows >= sizes_[hi]) return absl::Seconds(at_hi);
  // Linear between the profiled sizes around `rows`.
  size_t lo = hi - 1;
  double at_lo = seconds_[lo].load(std::memory_order_relaxed);
  double t = static_cast<double>(rows - sizes_[lo]) / static_cast<double>(sizes_[hi] - sizes_[lo]);
  return absl::Seconds(at_lo + t * (at_hi - at_lo));
}

std::vector<std::pair<int64_t, absl::Duration>> OnlineLatencyModel::Snapshot() const {
  std::vector<std::pair<int64_t, absl::Duration>> snapshot;
  for (size_t i = 0; i < sizes_.size(); ++i) {
    snapshot.emplace_back(sizes_[i], absl::Seconds(seconds_[i].load(std::memory_order_relaxed)));
  }
  return snapshot;
}

}  // namespace coalesce
