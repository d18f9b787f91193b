#ifndef COALESCE_SERVING_SERVED_MODEL_H_
#define COALESCE_SERVING_SERVED_MODEL_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/batch_policy.h"
#include "engine/batcher.h"
#include "engine/clock.h"
#include "engine/latency_model.h"
#include "engine/request_queue.h"
#include "engine/scheduling.h"
#include "engine/spread_sink.h"
#include "execution/backend.h"
#include "execution/executor.h"
#include "execution/model_statistics.h"
#include "serving/metrics.h"

namespace coalesce {

// Which BatchPolicy forms a model's batches.
enum class BatchPolicyKind {
  // DeadlinePolicy: latency-model sizing, shedding, eager dispatch.
  kDeadline,
  // SizeOrDelayPolicy: the classic full-or-delay rule (a baseline).
  kFixed,
};

// One model being served: its backend and the pipeline in front of it (queue -> batcher ->
// executor), plus the latency model that the batch policy and admission control consult.
//
// At creation the backend is profiled at every batch size the latency model tracks, so the
// first requests are already scheduled from measured times.
//
// Thread-safety: `Submit()` may be called from any number of threads. `Shutdown()` is called by
// the owner, once the server accepts no more calls.
class ServedModel {
 public:
  struct Options {
    // Executor workers (model instances), each run by batches_per_worker threads. Must be >= 1.
    int num_workers = 2;
    // Executor::Options::batches_per_worker; 0 takes the backend's
    // (Backend::DefaultBatchesPerWorker(): 2 on CUDA, else 1). Must be >= 0.
    int batches_per_worker = 0;
    // Executor::Options::exclusive_backend: one worker in the backend at a time.
    bool exclusive_backend = false;
    // Requests queued before Submit() answers RESOURCE_EXHAUSTED. Must be >= 1.
    int64_t max_queue_size = 4096;
    BatchPolicyKind batch_policy = BatchPolicyKind::kDeadline;
    // For kDeadline, zero dispatches as soon as a worker is free; for kFixed, the delay.
    absl::Duration max_queue_delay = absl::ZeroDuration();
    std::vector<int64_t> preferred_batch_sizes;
    // Deadlines and priorities of requests that do not say.
    SchedulingOptions scheduling;
    // How the load-time profile times one batch of `rows` rows, at each size the latency model
    // tracks. Unset: the backend runs a batch of zeros twice and the faster run counts. A timer
    // that runs nothing suits a backend that must not run at load.
    std::function<absl::StatusOr<absl::Duration>(int64_t rows)> time_batch;
  };

  // `metrics` and `clock` must outlive the model. The model records into metrics' series of
  // its name and version, and its batches count toward the busy time of its backend's device
  // (ServerMetrics::Device()).
  static absl::StatusOr<std::unique_ptr<ServedModel>> Create(const Options& options,
                                                             std::unique_ptr<Backend> backend,
                                                             ServerMetrics* metrics,
                                                             Clock* clock);

  // One device's instances of a model: the model loaded there, and the executor workers (model
  // instances) that call it.
  struct DeviceInstances {
    std::unique_ptr<Backend> backend;
    int num_workers = 1;  // Must be >= 1.
  };
  // A model whose instances sit on several devices (Options::num_workers is then ignored): one
  // executor per device, each with its own workers and staging and counting toward its own
  // device's busy time, fed by the model's one queue and batcher (SpreadSink). Every backend
  // must be the same model. The latency model is profiled on the first device and learns from
  // every device's batches: the devices are taken to be alike. `devices` must not be empty.
  static absl::StatusOr<std::unique_ptr<ServedModel>> Create(const Options& options,
                                                             std::vector<DeviceInstances> devices,
                                                             ServerMetrics* metrics,
                                                             Clock* clock);
  // Shuts down (see Shutdown()).
  ~ServedModel();

  const ModelMetadata& metadata() const { return backend_->metadata(); }
  // The first device's backend.
  const Backend& backend() const { return *backend_; }
  // The devices the model's instances sit on, one backend each (the first is backend()).
  int num_devices() const { return static_cast<int>(backends_.size()); }
  const Backend& backend(int device) const { return *backends_[device]; }
  ModelMetrics& metrics() { return *metrics_; }
  const SchedulingOptions& scheduling() const { return options_.scheduling; }
  const OnlineLatencyModel& latency() const { return *latency_; }
  // The executors' workers, on every device, and the batches each holds at once
  // (Options::batches_per_worker, resolved).
  int num_workers() const { return num_workers_; }
  int batches_per_worker() const { return batches_per_worker_; }
  // This version's cumulative statistics (the ModelStatistics RPC); the Prometheus series in
  // metrics() are this version's too (shared with another instance of it during a reload).
  ModelStatistics& statistics() { return statistics_; }

  // Queues `request` for execution. Ownership passes iff the call returns OK. Otherwise the
  // caller still owns the request and must answer it with the returned status:
  // DEADLINE_EXCEEDED when even running it alone right now would miss its deadline (admission
  // control), RESOURCE_EXHAUSTED when the queue is full, UNAVAILABLE once shutdown has begun.
  absl::Status Submit(std::unique_ptr<InferRequest>& request);

  // Requests waiting for a batch: queued or pending in the batcher. Any thread.
  int64_t queue_depth() const { return queue_->size(); }

  // Sets the series sampled before each scrape: queue depth, and the backend's fallback state
  // and device memory (ModelMetrics::SampleBackend()). Any thread.
  void SampleGauges();

  // Stops taking requests, runs every request already queued, and joins the threads.
  // Idempotent.
  void Shutdown();

 private:
  explicit ServedModel(const Options& options) : options_(options) {}

  // Times a batch at every size the latency model tracks (Options::time_batch) and records the
  // times.
  absl::Status Profile(Clock* clock);
  // The default Options::time_batch: the faster of two runs of the backend on zeros.
  absl::StatusOr<absl::Duration> TimeDryRun(int64_t rows, Clock* clock);

  const Options options_;
  // Constant after construction; declared so that the pipeline is destroyed before what it uses.
  // backend_ is backends_[0].
  std::vector<std::unique_ptr<Backend>> backends_;
  Backend* backend_ = nullptr;
  std::unique_ptr<ModelMetrics> metrics_;
  ModelStatistics statistics_;
  std::unique_ptr<OnlineLatencyModel> latency_;
  std::unique_ptr<RequestQueue> queue_;
  std::unique_ptr<BatchPolicy> policy_;
  // One per device, in backends_' order; spread_ feeds them when there are several.
  std::vector<std::unique_ptr<Executor>> executors_;
  std::unique_ptr<SpreadSink> spread_;
  std::unique_ptr<Batcher> batcher_;
  Clock* clock_ = nullptr;
  int batches_per_worker_ = 1;
  int num_workers_ = 0;

  std::atomic<bool> shutting_down_{false};
};

}  // namespace coalesce

#endif  // COALESCE_SERVING_SERVED_MODEL_H_
