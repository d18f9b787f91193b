#ifndef COALESCE_ENGINE_LATENCY_MODEL_H_
#define COALESCE_ENGINE_LATENCY_MODEL_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace coalesce {

// Predicts how long the backend takes to run a batch of a given size. The batch policy reads it
// to size batches so that deadlines are met; admission control reads it to refuse requests that
// cannot be met even alone.
//
// Thread-safety: implementations are safe to call from any thread.
class LatencyModel {
 public:
  virtual ~LatencyModel() = default;
  // Predicted backend time for a batch of `rows` samples (rows >= 1).
  virtual absl::Duration Predict(int64_t rows) const = 0;
};

// A LatencyModel learned from measurements: a table of batch time at sizes 1, 2, 4, ...,
// max_batch_size (and max_batch_size itself), linearly interpolated between them.
//
// It starts from a profile (the executor runs the model at each size at load) and then follows
// every executed batch. Updates are robust to outliers: a measurement is first clamped to
// [estimate / 2, estimate * 2], then moved into the estimate with weight `alpha`. A single stall
// (a page fault, a GC pause in a neighbour, a device hiccup) can move an estimate by at most
// alpha (10% by default), while a real, lasting change (another process now shares the device)
// is followed within a few dozen batches.
//
// Thread-safe and lock-free: workers Observe() while the batcher Predict()s, many times a round.
// Two workers updating one size at once may lose one of the two updates, which an average of
// many measurements does not notice.
class OnlineLatencyModel : public LatencyModel {
 public:
  struct Options {
    // Largest batch the model runs. Must be >= 1.
    int64_t max_batch_size = 32;
    // Weight of one new (clamped) measurement in the running estimate, in (0, 1].
    double alpha = 0.1;
    // Estimate at every size before any profile or measurement.
    absl::Duration initial = absl::Milliseconds(1);
  };

  static absl::StatusOr<std::unique_ptr<OnlineLatencyModel>> Create(const Options& options);

  // The profiled sizes, ascending: 1, 2, 4, ..., and max_batch_size.
  const std::vector<int64_t>& sizes() const { return sizes_; }
  // The profiled size that Observe(rows, ...) updates: the one at or just above `rows`.
  int64_t SizeFor(int64_t rows) const { return sizes_[BucketFor(rows)]; }

  // Replaces the estimate at profiled size `rows` (must be one of sizes()) outright.
  void SetProfile(int64_t rows, absl::Duration measured);

  // Folds in one executed batch of `rows` rows that took `measured`: updates the profiled size
  // at or just above `rows`.
  void Observe(int64_t rows, absl::Duration measured);

  absl::Duration Predict(int64_t rows) const override;

  // (size, estimate) for every profiled size, for metrics and statistics.
  std::vector<std::pair<int64_t, absl::Duration>> Snapshot() const;

 private:
  OnlineLatencyModel(const Options& options, std::vector<int64_t> sizes);
  // Index of the profiled size at or just above `rows` (clamped to the last).
  size_t BucketFor(int64_t rows) const;

  const Options options_;
  const std::vector<int64_t> sizes_;

  // Estimated seconds per profiled size.
  std::unique_ptr<std::atomic<double>[]> seconds_;
};

}  // namespace coalesce

#endif  // COALESCE_ENGINE_LATENCY_MODEL_H_
