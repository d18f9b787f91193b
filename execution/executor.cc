#include "execution/executor.h"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/padding.h"

namespace coalesce {

absl::StatusOr<std::unique_ptr<Executor>> Executor::Create(Options options, Backend* backend,
                                                           ExecutionObserver* metrics,
                                                           Clock* clock) {
  if (options.num_workers < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("executor needs at least 1 worker, got ", options.num_workers));
  }
  if (options.batches_per_worker < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "executor batches_per_worker must be >= 1, got ", options.batches_per_worker));
  }
  if (options.copy_threads < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("executor copy_threads must be >= 0, got ", options.copy_threads));
  }
  if (options.copy_split_bytes < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("executor copy_split_bytes must be >= 1, got ", options.copy_split_bytes));
  }
  if (options.max_retry_executions < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "executor max_retry_executions must be >= 0, got ", options.max_retry_executions));
  }
  std::unique_ptr<Executor> executor(new Executor(std::move(options), backend, metrics, clock));
  if (absl::Status s = executor->ResolveStagingLayouts(); !s.ok()) return s;
  if (executor->options_.copy_threads > 1) {
    CopyPool::Options pool;
    pool.threads = executor->options_.copy_threads - 1;
    absl::StatusOr<std::unique_ptr<CopyPool>> copy_pool = CopyPool::Create(pool);
    if (!copy_pool.ok()) return copy_pool.status();
    executor->copy_pool_ = *std::move(copy_pool);
  }
  // Thread t runs worker t % num_workers.
  const int workers = executor->options_.num_workers;
  const int threads = workers * executor->options_.batches_per_worker;
  if (executor->options_.batches_per_worker > 1) {
    executor->worker_mu_ = std::make_unique<absl::Mutex[]>(workers);
  }
  // Each thread's staging is allocated here, not on the thread: memory this machine cannot give
  // then fails the model's creation instead of throwing on a thread, which would end the process.
  std::vector<WorkerBuffers> buffers(threads);
  for (WorkerBuffers& thread_buffers : buffers) {
    if (absl::Status s = executor->ReserveFullBatch(thread_buffers); !s.ok()) return s;
  }
  for (int t = 0; t < threads; ++t) {
    executor->workers_.emplace_back(
        [e = executor.get(), w = t % workers, b = std::move(buffers[t])]() mutable {
          e->WorkerLoop(w, std::move(b));
        });
  }
  return executor;
}

Executor::Executor(Options options, Backend* backend, ExecutionObserver* metrics, Clock* clock)
    : options_(std::move(options)),
      backend_(backend),
      metrics_(metrics),
      clock_(clock),
      idle_(options_.num_workers * options_.batches_per_worker),
      bound_(options_.num_workers, 0),
      held_(options_.num_workers, 0) {}

Executor::~Executor() { Stop(); }

int Executor::DefaultCopyThreads() {
  const int hardware = static_cast<int>(std::thread::hardware_concurrency());
  return std::clamp(hardware / 2, 1, 4);
}

void Executor::Dispatch(Batch batch) {
  idle_.fetch_sub(1, std::memory_order_acq_rel);
  absl::MutexLock lock(&mu_);
  batches_.push_back(std::move(batch));
}

void Executor::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
  if (copy_pool_ != nullptr) copy_pool_->Stop();
}

bool Executor::Waiter::CanTake(Waiter* waiter) {
  const Executor& e = *waiter->executor;
  if (e.batches_.empty()) return e.stopping_;
  const int mine = e.bound_[waiter->worker];
  for (size_t w = 0; w < e.bound_.size(); ++w) {
    const bool has_free_thread = e.held_[w] < e.options_.batches_per_worker;
    if (has_free_thread && e.bound_[w] < mine) return false;
  }
  return true;
}

absl::Mutex* Executor::BackendLock(int worker) {
  if (options_.exclusive_backend) return &backend_mu_;
  if (worker_mu_ != nullptr) return &worker_mu_[worker];
  return nullptr;
}

void Executor::WorkerLoop(int worker, WorkerBuffers buffers) {
  Waiter waiter{this, worker};
  bool holding = false;  // A batch this thread ran, counted in held_ until the thread is back.
  while (true) {
    Batch batch;
    {
      absl::MutexLock lock(&mu_);
      if (holding) --held_[worker];
      mu_.Await(absl::Condition(&Waiter::CanTake, &waiter));
      if (batches_.empty()) return;  // Stopping, and nothing left to run.
      batch = std::move(batches_.front());
      batches_.pop_front();
      ++held_[worker];
      ++bound_[worker];
      holding = true;
    }
    Run(worker, buffers, batch);
    idle_.fetch_add(1, std::memory_order_acq_rel);
    if (options_.on_worker_idle) options_.on_worker_idle();
  }
}

absl::Status Executor::ExecuteGuarded(const std::function<absl::Status()>& execute) {
  // A backend that throws must fail its batch, not kill the worker thread (and the process).
  try {
    return execute();
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("model '", backend_->metadata().name,
                                            "' threw: ", e.what()));
  } catch (...) {
    return absl::InternalError(
        absl::StrCat("model '", backend_->metadata().name, "' threw a non-standard exception"));
  }
}

void Executor::LeftModel(int worker) {
  absl::MutexLock lock(&mu_);
  --bound_[worker];
}

void Executor::BoundAgain(int worker) {
  absl::MutexLock lock(&mu_);
  ++bound_[worker];
}

void Executor::Run(int worker, WorkerBuffers& buffers, Batch& batch) {
  DropDead(batch);
  if (batch.requests.empty()) {
    LeftModel(worker);
    return;
  }
  const absl::Status status = Execute(worker, buffers, batch, /*retry=*/false);
  if (status.ok()) return;
  if (batch.requests.size() > 1 && options_.max_retry_executions >= 2 &&
      RetriesOnSplit(status)) {
    RetrySplit(worker, buffers, std::move(batch));
  } else {
    FailAll(batch, status);
  }
}

absl::Status Executor::Execute(int worker, WorkerBuffers& buffers, Batch& batch, bool retry) {
  BackendCall call(backend_->metadata());
  Gather(buffers, batch, retry, call);
  CallBackend(worker, buffers, batch, call);
  Scatter(batch, call);
  if (!options_.pool_staging) {
    // Unpooled: this batch's memory goes now (the answers need none of it), and the next batch
    // allocates its own.
    for (Staging& staging : buffers.inputs) staging = Staging();
    for (Staging& staging : buffers.outputs) staging = Staging();
  }
  if (!call.status.ok()) return call.status;  // Run() answers, or splits and retries.
  Answer(batch, call);
  return absl::OkStatus();
}

Executor::BackendCall::BackendCall(const ModelMetadata& metadata)
    : inputs(metadata.inputs.size()),
      outputs(metadata.outputs.size()),
      output_bytes(metadata.outputs.size(), 0) {}

void Executor::CallBackend(int worker, WorkerBuffers& buffers, const Batch& batch,
                           BackendCall& call) {
  const absl::Duration predicted =
      options_.latency != nullptr ? options_.latency->Predict(batch.rows) : absl::ZeroDuration();
  std::optional<Backend::DeviceStages> stages;
  absl::Mutex* const backend_lock = BackendLock(worker);
  {
    // Wait for the backend (exclusive_backend: no other call; batches_per_worker > 1: none of
    // this worker's): its own stage, neither gather nor backend time.
    absl::MutexLockMaybe lock(backend_lock);
    call.start = backend_lock != nullptr ? clock_->Now() : call.gathered;
    {
      // The device's busy time (DeviceBusy): from entering the backend until it returns.
      DeviceBusy::Scope on_device(options_.device_busy);
      call.status = InvokeBackend(worker, buffers, batch, call);
    }
    call.scatter_start = clock_->Now();
    // Before the worker's next call, which may be another thread's.
    if (call.status.ok()) stages = backend_->TakeDeviceStages(worker);
  }
  LeftModel(worker);
  if (backend_lock != nullptr) metrics_->RecordBackendWait(call.start - call.gathered);
  const absl::Duration took = call.scatter_start - call.start;
  metrics_->RecordBatch(batch.rows, took, predicted);
  if (stages.has_value()) metrics_->RecordDeviceStages(*stages);
  if (call.status.ok() && options_.latency != nullptr) {
    options_.latency->Observe(batch.rows, took);
    int64_t size = options_.latency->SizeFor(batch.rows);
    metrics_->SetPredictedBatchDuration(size, options_.latency->Predict(size));
  }
}

absl::Status Executor::InvokeBackend(int worker, WorkerBuffers& buffers, const Batch& batch,
                                     BackendCall& call) {
  const ModelMetadata& metadata = backend_->metadata();
  const int64_t rows = batch.rows;
  if (!metadata.HasVariableDims()) {
    return ExecuteGuarded(
        [&] { return backend_->Execute(worker, rows, call.inputs, call.outputs); });
  }
  Backend::VariableBatch shapes;
  shapes.input_dims = call.padded_length > 0 ? WithLength(*metadata.padding,
                                                          batch.requests[0]->input_dims(),
                                                          call.padded_length)
                                             : batch.requests[0]->input_dims();
  shapes.output_buffer = [&](int o, int64_t bytes) {
    call.output_bytes[o] = bytes;
    call.outputs[o] = Reserve(buffers.outputs[o], bytes);
    return call.outputs[o];
  };
  absl::Status status =
      ExecuteGuarded([&] { return backend_->ExecuteVariable(worker, rows, call.inputs, shapes); });
  for (size_t o = 0; status.ok() && o < call.outputs.size(); ++o) {
    if (call.outputs[o] == nullptr || call.output_bytes[o] % rows != 0) {
      status = absl::InternalError(absl::StrCat("model '", metadata.name,
                                                "' produced no whole rows for output '",
                                                metadata.outputs[o].name, "'"));
    } else if (call.padded_length > 0 && cut_output_[o] >= 0 &&
               padded_rows_->OutputLength(cut_output_[o], call.output_bytes[o] / rows) !=
                   call.padded_length) {
      status = absl::InternalError(absl::StrCat(
          "model '", metadata.name, "' output '", metadata.outputs[o].name,
          "' is cut to each request's length, but its rows do not have the padded length ",
          call.padded_length));
    }
  }
  return status;
}

}  // namespace coalesce
