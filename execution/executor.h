#ifndef COALESCE_EXECUTION_EXECUTOR_H_
#define COALESCE_EXECUTION_EXECUTOR_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/batch.h"
#include "engine/clock.h"
#include "engine/latency_model.h"
#include "execution/backend.h"
#include "execution/copy_pool.h"
#include "execution/device_busy.h"
#include "execution/execution_observer.h"
#include "execution/model_statistics.h"
#include "execution/padded_rows.h"
#include "execution/staging_layout.h"

namespace coalesce {

// Runs closed batches on a model with a fixed set of threads.
//
// A worker is one of the backend's model instances (the `worker` index of Backend::Execute),
// run by Options::batches_per_worker threads, each with staging of its own. With more than one,
// the worker's threads take turns at its backend: one thread's batch is on the model while the
// others gather and scatter theirs, so the model does not idle through its own copies.
//
// A thread takes a batch, answers and drops the requests that were cancelled or expired while it
// waited, gathers the remaining requests' input rows into its own contiguous buffers (a
// single-request batch is passed through without a copy), calls the backend, copies each
// request's rows of every requested output into that request's response, and answers every
// request of the batch. Buffers belong to one thread, come from the backend (pinned memory on
// CUDA) and are sized for a full batch when the thread starts: no batch allocates (unless
// Options::pool_staging is off). Each request for staging memory is counted in the model's
// metrics as a pool hit (reused) or miss (allocated).
//
// Each row is copied through the staging layout the backend asks for (Backend::InputStaging(),
// OutputStaging()): as on the wire, or converted (FP32 narrowed to FP16 and back); the executor
// itself knows no conversion.
//
// For a model that pads (ModelMetadata::padding), a batch of more than one request pads each
// padded input to the batch's length, the largest bucket among its requests (the policy lets
// requests of smaller buckets join), with the input's pad value while it gathers, and cuts each
// cut output back to each request's own length while it scatters (PaddedRows); a lone request
// runs as sent. Every batch of such a model reports its padding (ExecutionObserver::
// RecordPadding()).
//
// Gather and scatter of a large batch (Options::copy_split_bytes) are split by requests into
// pieces of about equal bytes, which the executor's copy threads (Options::copy_threads, one
// pool shared by all threads) and the batch's own thread copy at once: one core's memcpy
// bandwidth would otherwise bound a large batch's copies. Each piece writes only its own
// requests' bytes.
//
// The answers are split the same way, by the scatter's bytes (a failed batch has none, so it
// answers on its own thread alone): each answer serialises its response on the thread that gives
// it (in the server, the gRPC reactor's Finish), as many bytes as it copied. They go out only
// after every scatter piece has finished and the batch's statistics are recorded, so that a
// client reading ModelStatistics after its answer sees its batch counted.
//
// A failed batch of more than one request is split and retried, so that one request that makes
// the model fail (a value it raises on, an index out of range, a huge allocation) fails alone
// instead of taking its batch with it. The executor cannot tell which request failed a batch,
// so it bisects: it runs the failed batch's two halves (by requests, in order), answers every
// half that succeeds, and splits every half of more than one request that fails again, level by
// level; a part of one request that fails is answered with its own error. Only an error the
// model's inputs can cause is retried (RetriesOnSplit()); one that says the backend cannot run
// at all (UNAVAILABLE, UNIMPLEMENTED, ...) fails the whole batch at once. The cost is bounded:
// each request that fails alone costs at most 2 * ceil(log2(n)) extra backend calls in a batch
// of n, each level of the bisection runs at most the batch's rows again, and one batch spends
// at most Options::max_retry_executions extra calls, after which every part still failing is
// answered with its error. Before each retry the part's cancelled and expired requests are
// dropped and answered as before a batch, so a request's deadline still holds and each request
// is answered once. A retry is a batch like any other in the metrics (batches, inferences,
// stages), and is counted in coalesce_split_batches_total and
// coalesce_split_retry_executions_total.
//
// Thread-safety: `Dispatch()` and `idle_workers()` may be called from any thread (in practice the
// batcher's). `Stop()` is called once, by the owner. Requests' done callbacks run on the batch
// threads and on the copy threads, concurrently with each other (those of one batch too) and with
// other batches' copies. A done callback must not throw, block, or call into the executor: it
// holds a copy thread that every batch thread shares.
class Executor : public BatchSink {
 public:
  struct Options {
    // Workers: the backend's model instances, each called by one thread at a time. Must be
    // >= 1.
    int num_workers = 2;
    // Batches each worker holds at once, each on a thread of its own with staging of its own
    // (num_workers * batches_per_worker threads in all). With 2, one batch's gather and scatter
    // overlap the other's backend call on the same model instance: the device's queue stays
    // fed without the copies of another model instance. A thread waits for its worker's other
    // backend call (stage "backend_wait" in the metrics), so a batch can finish up to one
    // backend call later than the latency model predicts. Must be >= 1.
    int batches_per_worker = 1;
    // Called (from an executor thread, with no lock held) each time a thread becomes free, so
    // the batcher can close its next batch. May be empty.
    std::function<void()> on_worker_idle;
    // Learns from every executed batch and predicts its time (for metrics). May be null; not
    // owned.
    OnlineLatencyModel* latency = nullptr;
    // Receives each request's queueing time and each batch's stage times. May be null; not
    // owned.
    ModelStatistics* statistics = nullptr;
    // The busy time of the device the backend runs on, shared with every other model on it:
    // each backend call counts from entering the backend until it returns. May be null; not
    // owned.
    DeviceBusy* device_busy = nullptr;
    // Keep each thread's staging buffers from batch to batch (reserved once at start-up). Off,
    // every batch allocates fresh staging memory from the backend and frees it afterwards:
    // only for measuring what pooling saves (bench/engine_bench.cc).
    bool pool_staging = true;
    // Threads that copy one batch's gather or scatter and give its answers, the batch's own
    // thread included: the executor starts copy_threads - 1 copy threads, shared by all its
    // threads. 0 or 1 does everything on the batch's thread alone, with no copy thread.
    // Default: min(4, half the hardware threads), at least 1 (so 1 on a 2-core machine, 4 on a
    // 16-core GPU host). Must be >= 0.
    int copy_threads = DefaultCopyThreads();
    // The smallest share of a gather or scatter worth handing to another thread: a stage that
    // moves `bytes` in total is split into min(copy_threads, requests, bytes / copy_split_bytes)
    // pieces, so under 2 * copy_split_bytes it runs on the batch's thread alone. The answers
    // count the scatter's bytes. Must be >= 1.
    int64_t copy_split_bytes = int64_t{256} << 10;
    // Gather with non-temporal (cache-bypassing) stores where the CPU has them (x86-64 SSE2;
    // elsewhere plain memcpy). The staging buffer is next read by the GPU's DMA engine, not by
    // a CPU core, and a DMA read of lines still dirty in several cores' caches is slow, most of
    // all when the gather is split over copy threads (bench/results/2026-11-26-engine.md). Off:
    // memcpy, which leaves the rows in cache for a backend that reads them on the CPU.
    bool streaming_gather = true;
    // At most one backend call at a time: a thread that has gathered its batch waits until no
    // other thread is in the backend (the wait is stage "backend_wait" in the metrics, not the
    // backend's time). Two workers then take turns, each gathering and scattering while the
    // other's batch is on the device, instead of drifting into step (both on the device at
    // once, slowing each other, then both on the host while the device idles). Off, the
    // workers' backend calls overlap freely, which more workers need to overlap copies with
    // compute. The latency model learns the backend call without the wait, so with this on a
    // batch can finish up to one other backend call later than predicted. See docs/engine.md.
    bool exclusive_backend = false;
    // Extra backend calls one failed batch may spend on finding the requests that fail alone
    // (split and retry, above). The default lets a batch of up to 33 requests isolate every
    // failing request, and a larger one at least 64 / (2 * ceil(log2(n))) of them. 0: a failed
    // batch fails every request in it. Must be >= 0.
    int max_retry_executions = 64;
  };

  // Options::copy_threads' default on this machine.
  static int DefaultCopyThreads();

  // Whether a batch that failed with `status` is split and retried: for the codes a model's
  // inputs can cause (INTERNAL, UNKNOWN, INVALID_ARGUMENT, OUT_OF_RANGE, RESOURCE_EXHAUSTED).
  // Not for those that say the backend cannot run any batch now (UNAVAILABLE: its device is
  // lost; UNIMPLEMENTED, FAILED_PRECONDITION, ABORTED, DATA_LOSS, CANCELLED,
  // DEADLINE_EXCEEDED and the rest), which a smaller batch would only repeat.
  static bool RetriesOnSplit(const absl::Status& status);

  // `backend`, `metrics` and `clock` must outlive the executor.
  static absl::StatusOr<std::unique_ptr<Executor>> Create(Options options, Backend* backend,
                                                          ExecutionObserver* metrics,
                                                          Clock* clock);
  // Stops (see Stop()).
  ~Executor() override;

  int idle_workers() const override { return idle_.load(std::memory_order_acquire); }
  void Dispatch(Batch batch) override;

  // Runs every batch already dispatched, then joins the executor's threads and copy threads.
  // Idempotent.
  void Stop();

  // Gather, scatter and answer stages split over the copy threads so far (for tests and
  // benchmarks).
  int64_t parallel_copies() const { return parallel_copies_.load(std::memory_order_relaxed); }

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

  // Creation, the worker loop and one backend call (executor.cc).

  Executor(Options options, Backend* backend, ExecutionObserver* metrics, Clock* clock);
  // A thread of `worker` waiting for a batch. It takes the next one only if no other worker with
  // a free thread (one holding no batch, even if not yet waiting: just started, or on its way
  // back) has fewer batches bound for its model (taken and not yet out of its backend), so that
  // a batch goes to the model that frees up first: two batches run on two models rather than
  // queue on one, and a model whose last batch is already scattering counts as free.
  struct Waiter {
    Executor* executor;
    int worker;
    static bool CanTake(Waiter* waiter) ABSL_EXCLUSIVE_LOCKS_REQUIRED(waiter->executor->mu_);
  };
  // The lock a thread holds around worker `worker`'s backend call, or null for none.
  absl::Mutex* BackendLock(int worker);
  // Runs batches with `buffers` (from ReserveFullBatch()) until stopped.
  void WorkerLoop(int worker, WorkerBuffers buffers);
  // Runs `batch` on `worker` and answers every request in it, splitting and retrying it if it
  // fails; calls LeftModel(worker) once per backend call, when the batch (or a part of it) is out
  // of the backend, or once if the batch was dropped whole before it.
  void Run(int worker, WorkerBuffers& buffers, Batch& batch);
  // One backend call: gathers `batch`, runs it, and on success scatters and answers every
  // request. On failure answers nothing and returns the error (every request still in `batch`).
  // `retry`: a part of a failed batch, whose requests' queueing was recorded already.
  absl::Status Execute(int worker, WorkerBuffers& buffers, Batch& batch, bool retry);
  // What one backend call's steps (Gather, CallBackend, Scatter, Answer) hand on to the next.
  struct BackendCall {
    explicit BackendCall(const ModelMetadata& metadata);
    // Per model input: its rows for the whole batch in staging, or a lone request's own bytes.
    std::vector<const char*> inputs;
    // Per model output: room for the whole batch in staging, and its bytes there (for variable
    // dims, set by the backend once it ran).
    std::vector<char*> outputs;
    std::vector<int64_t> output_bytes;
    // The length every padded input is padded to (PaddedLength::bucket), or 0 for a batch that
    // runs as sent (its requests' dims are equal).
    int64_t padded_length = 0;
    // When the gather began and ended, the backend call began (after any wait for the backend)
    // and ended (the scatter began).
    absl::Time gather_start, gathered, start, scatter_start;
    // The backend call's outcome.
    absl::Status status;
  };
  // Waits for the backend (BackendLock()), runs the batch on it, and records the call in the
  // metrics and the latency model. Calls LeftModel(worker).
  void CallBackend(int worker, WorkerBuffers& buffers, const Batch& batch, BackendCall& call);
  // The call into the backend itself, for fixed or variable dims; any exception becomes INTERNAL.
  absl::Status InvokeBackend(int worker, WorkerBuffers& buffers, const Batch& batch,
                             BackendCall& call);
  // Runs `execute` (a call into the backend) with any exception turned into INTERNAL.
  absl::Status ExecuteGuarded(const std::function<absl::Status()>& execute);
  // A batch (or a part of a failed one) is no longer bound for `worker`'s model: out of its
  // backend, or dropped before it.
  void LeftModel(int worker);
  // The reverse of LeftModel(): a part of a failed batch is bound for `worker`'s model again.
  void BoundAgain(int worker);

  // Staging layouts and buffers (executor_staging.cc).

  // Checks the backend's staging layouts and fills input_layouts_, output_layouts_ and
  // lone_in_place_.
  absl::Status ResolveStagingLayouts();
  // Whether each of `request`'s inputs starts at an address aligned for its element type, so that
  // a lone request may be handed to the backend where it lies.
  bool AlignedForItsElements(const InferRequest& request) const;
  // What `wire_bytes` of input `i` take in its staging layout.
  int64_t StagedInputBytes(size_t i, int64_t wire_bytes) const;
  // Bytes of one row of output `o` in its staging layout.
  int64_t OutputStagingRowBytes(size_t o) const;
  // The bytes input `i` of `request` takes in staging, padded to `padded_length` (0: as sent).
  int64_t StagedBytesOf(const InferRequest& request, size_t i, int64_t padded_length) const;
  // `staging`'s memory, grown to at least `bytes` (only a request larger than max_batch_size
  // rows, which validation refuses, could make it grow after start-up); with pooling off, always
  // fresh. Counts a pool hit or miss.
  char* Reserve(Staging& staging, int64_t bytes);
  // Allocates `buffers` for a full batch of every tensor of fixed dims (with pool_staging).
  // RESOURCE_EXHAUSTED, naming the tensor and the bytes, if the backend cannot allocate them.
  absl::Status ReserveFullBatch(WorkerBuffers& buffers);

  // Gather and scatter (executor_copies.cc).

  // Records each request's queueing (unless `retry`), then stages the batch's inputs in
  // `buffers` (or passes a lone request's through) and reserves its fixed-size outputs.
  void Gather(WorkerBuffers& buffers, const Batch& batch, bool retry, BackendCall& call);
  // The length `batch`'s padded inputs pad to (BackendCall::padded_length).
  int64_t PaddedLengthOf(const Batch& batch) const;
  // Stages every request's input rows into `inputs` (one staging buffer per model input), padded
  // to `padded_length` (0: as sent).
  void GatherRows(const Batch& batch, absl::Span<char* const> inputs, int64_t padded_length);
  // Reports the padding of a batch of a model that pads.
  void RecordPadding(const Batch& batch, int64_t padded_length);
  // After a successful call, copies each request's rows of every output it asked for into its
  // response. Records the batch's stages, failed or not.
  void Scatter(const Batch& batch, const BackendCall& call);
  // Copies each request's rows of every output it asked for out of `outputs`, which hold
  // `output_bytes` for all the batch's rows (each cut output's rows cut from `padded_length`).
  void ScatterRows(const Batch& batch, absl::Span<char* const> outputs,
                   absl::Span<const int64_t> output_bytes, int64_t padded_length);
  // Runs `work(j)` for every request j of `batch`, which together move `bytes`: on this thread,
  // or split into pieces of consecutive requests for the copy threads and this thread.
  void ForEachRequest(const Batch& batch, int64_t bytes, const std::function<void(size_t)>& work);

  // Answers, dead requests, and split and retry (executor_answers.cc).

  // Answers every request of the successful `batch` OK.
  void Answer(Batch& batch, const BackendCall& call);
  // Answers every request of `batch` with `status`.
  static void FailAll(Batch& batch, const absl::Status& status);
  // Answers cancelled and expired requests of `batch` and removes them.
  void DropDead(Batch& batch);
  // Splits the failed `batch` (more than one request) and runs its parts until each is answered:
  // see the class comment.
  void RetrySplit(int worker, WorkerBuffers& buffers, Batch batch);

  // Constant after construction.
  const Options options_;
  Backend* const backend_;
  ExecutionObserver* const metrics_;
  Clock* const clock_;

  // Threads free minus batches waiting; the batcher reserves one per dispatch.
  std::atomic<int> idle_;

  absl::Mutex mu_;
  std::deque<Batch> batches_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Per worker: batches its threads have taken that are not yet out of its backend, and
  // batches its threads hold (from taking one to being back for the next).
  std::vector<int> bound_ ABSL_GUARDED_BY(mu_);
  std::vector<int> held_ ABSL_GUARDED_BY(mu_);
  // Held around each backend call with Options::exclusive_backend.
  absl::Mutex backend_mu_;
  // Per worker: held around its backend calls with batches_per_worker > 1 (and no
  // exclusive_backend, whose lock covers them).
  std::unique_ptr<absl::Mutex[]> worker_mu_;

  // Per input and output: its staging layout (Backend::InputStaging()), which the gather and
  // the scatter copy through. Constant after Create().
  std::vector<const StagingLayout*> input_layouts_;
  std::vector<const StagingLayout*> output_layouts_;
  // Whether every input stages as it is, so a lone request is passed through without a copy.
  // Constant after Create().
  bool lone_in_place_ = true;
  // For a model that pads: its padded rows, and per input (output) its index in PaddingSpec's
  // inputs (outputs), or -1. Constant after Create().
  std::optional<PaddedRows> padded_rows_;
  std::vector<int> padded_input_;
  std::vector<int> cut_output_;

  std::vector<std::thread> workers_;
  // Null with copy_threads <= 1. Outlives the workers (Stop() joins them first).
  std::unique_ptr<CopyPool> copy_pool_;
  std::atomic<int64_t> parallel_copies_{0};
};

}  // namespace coalesce

#endif  // COALESCE_EXECUTION_EXECUTOR_H_
