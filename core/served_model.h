#ifndef COALESCE_CORE_SERVED_MODEL_H_
#define COALESCE_CORE_SERVED_MODEL_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/backend.h"
#include "core/batcher.h"
#include "core/clock.h"
#include "core/executor.h"
#include "core/metrics.h"
#include "core/request_queue.h"
#include "core/size_or_delay_policy.h"

namespace coalesce {

// One model being served: its backend and the pipeline in front of it (queue -> batcher ->
// executor). The server validates a request against `metadata()` and hands it to `Submit()`;
// the pipeline answers it.
//
// Thread-safety: `Submit()` may be called from any number of threads. `Shutdown()` is called by
// the owner, once the server accepts no more calls.
class ServedModel {
 public:
  struct Options {
    // Executor worker threads. Must be >= 1.
    int num_workers = 2;
    // Requests queued before Submit() answers RESOURCE_EXHAUSTED. Must be >= 1.
    int64_t max_queue_size = 4096;
    // Longest a request waits for others to join its batch.
    absl::Duration max_queue_delay = absl::Microseconds(500);
  };

  // `metrics` and `clock` must outlive the model.
  static absl::StatusOr<std::unique_ptr<ServedModel>> Create(const Options& options,
                                                             std::unique_ptr<Backend> backend,
                                                             ServerMetrics* metrics,
                                                             Clock* clock);
  // Shuts down (see Shutdown()).
  ~ServedModel();

  const ModelMetadata& metadata() const { return backend_->metadata(); }
  const Backend& backend() const { return *backend_; }
  ModelMetrics& metrics() { return *metrics_; }

  // Queues `request` for execution. Ownership passes iff the call returns OK. Otherwise the
  // caller still owns the request: RESOURCE_EXHAUSTED when the queue is full, UNAVAILABLE once
  // shutdown has begun.
  absl::Status Submit(std::unique_ptr<InferRequest>& request);

  // Stops taking requests, runs every request already queued, and joins the threads.
  // Idempotent.
  void Shutdown();

 private:
  ServedModel() = default;

  // Constant after construction; declared in destruction order's reverse (the pipeline stops
  // before what it uses goes away).
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<ModelMetrics> metrics_;
  std::unique_ptr<RequestQueue> queue_;
  std::unique_ptr<SizeOrDelayPolicy> policy_;
  std::unique_ptr<Executor> executor_;
  std::unique_ptr<Batcher> batcher_;

  std::atomic<bool> shutting_down_{false};
};

}  // namespace coalesce

#endif  // COALESCE_CORE_SERVED_MODEL_H_
