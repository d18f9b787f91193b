#ifndef COALESCE_CORE_EXECUTOR_H_
#define COALESCE_CORE_EXECUTOR_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/backend.h"
#include "core/batch.h"
#include "core/clock.h"
#include "core/latency_model.h"
#include "core/metrics.h"
#include "core/model_statistics.h"

namespace coalesce {

// Runs closed batches on a model with a fixed set of worker threads.
//
// A worker takes a batch, answers and drops the requests that were cancelled or expired while it
// waited, gathers the remaining requests' input rows into the worker's own contiguous
// buffers (a single-request batch is passed through without a copy), calls the backend, copies
// each request's rows of every requested output into that request's response, and answers every
// request of the batch. Buffers belong to one worker, come from the backend (pinned memory on
// CUDA) and are sized for a full batch when the worker starts: no batch allocates (unless
// Options::pool_staging is off). Each request for staging memory is counted in the model's
// metrics as a pool hit (reused) or miss (allocated).
//
// Thread-safety: `Dispatch()` and `idle_workers()` may be called from any thread (in practice the
// batcher's). `Stop()` is called once, by the owner.
class Executor : public BatchSink {
 public:
  struct Options {
    // Worker threads, each running one batch at a time. Must be >= 1.
    int num_workers = 2;
    // Called (from a worker thread, with no lock held) each time a worker becomes free, so the
    // batcher can close its next batch. May be empty.
    std::function<void()> on_worker_idle;
    // Learns from every executed batch and predicts its time (for metrics). May be null; not
    // owned.
    OnlineLatencyModel* latency = nullptr;
    // Receives each request's queueing time and each batch's stage times. May be null; not
    // owned.
    ModelStatistics* statistics = nullptr;
    // Keep each worker's staging buffers from batch to batch (reserved once at start-up). Off,
    // every batch allocates fresh staging memory from the backend and frees it afterwards:
    // only for measuring what pooling saves (bench/engine_bench.cc).
    bool pool_staging = true;
  };

  // `backend`, `metrics` and `clock` must outlive the executor.
  static absl::StatusOr<std::unique_ptr<Executor>> Create(Options options, Backend* backend,
                                                          ModelMetrics* metrics, Clock* clock);
  // Stops (see Stop()).
  ~Executor() override;

  int idle_workers() const override { return idle_.load(std::memory_order_acquire); }
  void Dispatch(Batch batch) override;

  // Runs every batch already dispatched, then joins the workers. Idempotent.
  void Stop();

 private:
  // Staging memory from Backend::AllocateStaging(), sized for a full batch.
  struct Staging {
    std::shared_ptr<char> data;
    int64_t bytes = 0;
  };
  // Per-worker gather/scatter buffers, one per model input and output.
  struct WorkerBuffers {
    std::vector<Staging> inputs;
    std::vector<Staging> outputs;
  };

  // `staging`'s memory, grown to at least `bytes` (only a request larger than max_batch_size
  // rows, which validation refuses, could make it grow after start-up); with pooling off, always
  // fresh. Counts a pool hit or miss.
  char* Reserve(Staging& staging, int64_t bytes);

  Executor(Options options, Backend* backend, ModelMetrics* metrics, Clock* clock);

  bool HasWorkOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !batches_.empty() || stopping_;
  }
  void WorkerLoop(int worker);
  void Run(int worker, WorkerBuffers& buffers, Batch& batch);
  // Runs `execute` (a call into the backend) with any exception turned into INTERNAL.
  absl::Status ExecuteGuarded(const std::function<absl::Status()>& execute);
  // Answers cancelled and expired requests of `batch` and removes them.
  void DropDead(Batch& batch);

  // Constant after construction.
  const Options options_;
  Backend* const backend_;
  ModelMetrics* const metrics_;
  Clock* const clock_;

  // Workers free minus batches waiting; the batcher reserves one per dispatch.
  std::atomic<int> idle_;

  absl::Mutex mu_;
  std::deque<Batch> batches_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::vector<std::thread> workers_;
};

}  // namespace coalesce

#endif  // COALESCE_CORE_EXECUTOR_H_
