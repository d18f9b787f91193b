#include "core/latency_model.h"

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
      seconds_(sizes_.size(), absl::ToDoubleSeconds(options.initial)) {}

size_t OnlineLatencyModel::BucketFor(int64_t rows) const {
  auto it = std::lower_bound(sizes_.begin(), sizes_.end(), rows);
  return it == sizes_.end() ? sizes_.size() - 1 : it - sizes_.begin();
}

void OnlineLatencyModel::SetProfile(int64_t rows, absl::Duration measured) {
  absl::MutexLock lock(&mu_);
  seconds_[BucketFor(rows)] = absl::ToDoubleSeconds(measured);
}

void OnlineLatencyModel::Observe(int64_t rows, absl::Duration measured) {
  size_t bucket = BucketFor(rows);
  double seconds = absl::ToDoubleSeconds(measured);
  absl::MutexLock lock(&mu_);
  double& estimate = seconds_[bucket];
  // A zero estimate (a profile of a no-op) would clamp every later measurement to zero.
  estimate = std::max(estimate, 1e-6);
  double clamped = std::clamp(seconds, estimate / 2, estimate * 2);
  estimate += options_.alpha * (clamped - estimate);
}

absl::Duration OnlineLatencyModel::Predict(int64_t rows) const {
  size_t hi = BucketFor(rows);
  absl::MutexLock lock(&mu_);
  if (hi == 0 || rows >= sizes_[hi]) return absl::Seconds(seconds_[hi]);
  // Linear between the profiled sizes around `rows`.
  size_t lo = hi - 1;
  double t = static_cast<double>(rows - sizes_[lo]) / static_cast<double>(sizes_[hi] - sizes_[lo]);
  return absl::Seconds(seconds_[lo] + t * (seconds_[hi] - seconds_[lo]));
}

std::vector<std::pair<int64_t, absl::Duration>> OnlineLatencyModel::Snapshot() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::pair<int64_t, absl::Duration>> snapshot;
  for (size_t i = 0; i < sizes_.size(); ++i) {
    snapshot.emplace_back(sizes_[i], absl::Seconds(seconds_[i]));
  }
  return snapshot;
}

}  // namespace coalesce
