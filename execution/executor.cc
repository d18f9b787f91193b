#include "execution/executor.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <numeric>
#include <optional>
#include <string>
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

absl::Status Executor::ResolveStagingLayouts() {
  const ModelMetadata& metadata = backend_->metadata();
  auto check = [&](const TensorSpec& spec, const StagingLayout& layout,
                   const char* kind) -> absl::Status {
    absl::Status fits = layout.Fits(spec);
    if (fits.ok()) return fits;
    return absl::InvalidArgumentError(absl::StrCat("model '", metadata.name, "' ", kind, " '",
                                                   spec.name, "': ", fits.message()));
  };
  for (size_t i = 0; i < metadata.inputs.size(); ++i) {
    const StagingLayout& layout = backend_->InputStaging(static_cast<int>(i));
    if (absl::Status s = check(metadata.inputs[i], layout, "input"); !s.ok()) return s;
    input_layouts_.push_back(&layout);
    lone_in_place_ = lone_in_place_ && layout.keeps_wire_bytes();
  }
  for (size_t o = 0; o < metadata.outputs.size(); ++o) {
    const StagingLayout& layout = backend_->OutputStaging(static_cast<int>(o));
    if (absl::Status s = check(metadata.outputs[o], layout, "output"); !s.ok()) return s;
    output_layouts_.push_back(&layout);
  }
  if (!metadata.padding.has_value()) return absl::OkStatus();
  // Padding and cutting work on the wire bytes.
  padded_input_.assign(metadata.inputs.size(), -1);
  cut_output_.assign(metadata.outputs.size(), -1);
  for (size_t p = 0; p < metadata.padding->inputs.size(); ++p) {
    const int i = metadata.padding->inputs[p].input;
    padded_input_[i] = static_cast<int>(p);
    if (!input_layouts_[i]->keeps_wire_bytes()) {
      return absl::InvalidArgumentError(absl::StrCat("model '", metadata.name, "' input '",
                                                     metadata.inputs[i].name,
                                                     "' is padded, so it must stage as sent"));
    }
  }
  for (size_t c = 0; c < metadata.padding->outputs.size(); ++c) {
    const int o = metadata.padding->outputs[c].output;
    cut_output_[o] = static_cast<int>(c);
    if (!output_layouts_[o]->keeps_wire_bytes()) {
      return absl::InvalidArgumentError(absl::StrCat("model '", metadata.name, "' output '",
                                                     metadata.outputs[o].name,
                                                     "' is cut, so it must stage as sent"));
    }
  }
  absl::StatusOr<PaddedRows> padded = PaddedRows::Create(metadata);
  if (!padded.ok()) return padded.status();
  padded_rows_.emplace(*std::move(padded));
  return absl::OkStatus();
}

int64_t Executor::StagedInputBytes(size_t i, int64_t wire_bytes) const {
  return input_layouts_[i]->StagedBytes(wire_bytes);
}

int64_t Executor::OutputStagingRowBytes(size_t o) const {
  return output_layouts_[o]->StagedBytes(backend_->metadata().outputs[o].RowBytes());
}

bool Executor::RetriesOnSplit(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kResourceExhausted:
      return true;
    default:
      return false;
  }
}

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

char* Executor::Reserve(Staging& staging, int64_t bytes) {
  const bool hit = options_.pool_staging && staging.data != nullptr && bytes <= staging.bytes;
  metrics_->RecordStaging(hit);
  if (!hit) {
    staging.data = backend_->AllocateStaging(bytes);
    staging.bytes = bytes;
  }
  return staging.data.get();
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

absl::Status Executor::ReserveFullBatch(WorkerBuffers& buffers) {
  const ModelMetadata& metadata = backend_->metadata();
  const int64_t max_rows = std::max<int64_t>(1, metadata.max_batch_size);
  buffers.inputs.resize(metadata.inputs.size());
  buffers.outputs.resize(metadata.outputs.size());
  auto reserve = [&](Staging& staging, int64_t bytes, const char* kind,
                     const std::string& name) -> absl::Status {
    try {
      Reserve(staging, bytes);
      return absl::OkStatus();
    } catch (const std::exception& e) {
      const std::string what = e.what();  // LibTorch's carry a backtrace after the first line.
      return absl::ResourceExhaustedError(absl::StrCat(
          "model '", metadata.name, "' ", kind, " '", name, "': cannot allocate ", bytes,
          " bytes of staging for a batch of ", max_rows, ": ", what.substr(0, what.find('\n'))));
    }
  };
  // Variable-size tensors get their buffers from the first batch that needs them, and keep
  // them (grown to the largest seen).
  for (size_t i = 0; options_.pool_staging && i < metadata.inputs.size(); ++i) {
    if (metadata.inputs[i].HasVariableDims()) continue;
    absl::Status s =
        reserve(buffers.inputs[i], StagedInputBytes(i, max_rows * metadata.inputs[i].RowBytes()),
                "input", metadata.inputs[i].name);
    if (!s.ok()) return s;
  }
  for (size_t o = 0; options_.pool_staging && o < metadata.outputs.size(); ++o) {
    if (metadata.outputs[o].HasVariableDims()) continue;
    absl::Status s = reserve(buffers.outputs[o], max_rows * OutputStagingRowBytes(o), "output",
                             metadata.outputs[o].name);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
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

void Executor::DropDead(Batch& batch) {
  const absl::Time now = clock_->Now();
  // Compacts in place: the common batch has no dead request and must not allocate.
  size_t kept = 0;
  for (size_t i = 0; i < batch.requests.size(); ++i) {
    std::unique_ptr<InferRequest>& request = batch.requests[i];
    const int64_t rows = request->rows();
    switch (FinishIfDead(*request, now)) {
      case DeadReason::kAlive:
        if (kept != i) batch.requests[kept] = std::move(request);
        ++kept;
        continue;
      case DeadReason::kCancelled:
        metrics_->RecordCancelled();
        break;
      case DeadReason::kDeadlinePassed:
        metrics_->RecordExpired();
        break;
    }
    batch.rows -= rows;
  }
  batch.requests.resize(kept);
}

void Executor::LeftModel(int worker) {
  absl::MutexLock lock(&mu_);
  --bound_[worker];
}

void Executor::BoundAgain(int worker) {
  absl::MutexLock lock(&mu_);
  ++bound_[worker];
}

void Executor::FailAll(Batch& batch, const absl::Status& status) {
  for (const auto& request : batch.requests) request->Finish(status);
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

void Executor::RetrySplit(int worker, WorkerBuffers& buffers, Batch batch) {
  metrics_->RecordSplitBatch();
  // Parts waiting to run, in the order they were split off: the bisection goes level by level,
  // so a budget that runs out leaves the deepest parts unsplit, not a whole half.
  std::deque<Batch> parts;
  int budget = options_.max_retry_executions;
  auto split = [&](Batch& failed) {
    const size_t half = failed.requests.size() / 2;
    Batch first, second;
    for (size_t j = 0; j < failed.requests.size(); ++j) {
      Batch& to = j < half ? first : second;
      to.rows += failed.requests[j]->rows();
      to.requests.push_back(std::move(failed.requests[j]));
    }
    parts.push_back(std::move(first));
    parts.push_back(std::move(second));
    budget -= 2;  // Spent now, so a part dropped before it runs never lets the budget grow.
  };
  split(batch);
  while (!parts.empty()) {
    Batch part = std::move(parts.front());
    parts.pop_front();
    DropDead(part);
    if (part.requests.empty()) continue;
    BoundAgain(worker);
    metrics_->RecordRetryExecution();
    const absl::Status status = Execute(worker, buffers, part, /*retry=*/true);
    if (status.ok()) continue;
    if (part.requests.size() > 1 && budget >= 2 && RetriesOnSplit(status)) {
      split(part);
    } else {
      FailAll(part, status);
    }
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

void Executor::Gather(WorkerBuffers& buffers, const Batch& batch, bool retry,
                      BackendCall& call) {
  const ModelMetadata& metadata = backend_->metadata();
  call.gather_start = clock_->Now();
  for (size_t j = 0; !retry && j < batch.requests.size(); ++j) {
    const absl::Duration waited = call.gather_start - batch.requests[j]->arrival();
    metrics_->RecordQueued(waited);
    if (options_.statistics != nullptr) options_.statistics->RecordQueued(waited);
  }
  call.padded_length = PaddedLengthOf(batch);
  if (batch.requests.size() == 1 && lone_in_place_ && AlignedForItsElements(*batch.requests[0])) {
    // A lone request whose inputs stage as they are is passed through without a copy.
    for (size_t i = 0; i < call.inputs.size(); ++i) {
      call.inputs[i] = batch.requests[0]->input(i).data();
    }
  } else {
    // Every request of a batch has the same input sizes (the batcher groups them), or pads to
    // them, so rows stack contiguously.
    std::vector<char*> staging(call.inputs.size());
    for (size_t i = 0; i < staging.size(); ++i) {
      int64_t bytes = 0;
      for (const auto& request : batch.requests) {
        bytes += StagedBytesOf(*request, i, call.padded_length);
      }
      staging[i] = Reserve(buffers.inputs[i], bytes);
      call.inputs[i] = staging[i];
    }
    GatherRows(batch, staging, call.padded_length);
  }
  if (padded_rows_.has_value()) RecordPadding(batch, call.padded_length);
  // Each output's bytes for the whole batch: known now for fixed dims, from the backend once it
  // ran for variable ones.
  if (!metadata.HasVariableDims()) {
    for (size_t o = 0; o < call.outputs.size(); ++o) {
      call.output_bytes[o] = batch.rows * OutputStagingRowBytes(o);
      call.outputs[o] = Reserve(buffers.outputs[o], call.output_bytes[o]);
    }
  }
  call.gathered = clock_->Now();
}

int64_t Executor::PaddedLengthOf(const Batch& batch) const {
  if (!padded_rows_.has_value() || batch.requests.size() < 2) return 0;
  // The policy batches requests of one bucket, or smaller ones with it; requests that run as
  // sent (bucket 0) only with requests of their own dims.
  int64_t length = 0;
  for (const auto& request : batch.requests) {
    const PaddedLength padded = LengthOf(*backend_->metadata().padding, request->input_dims());
    if (padded.bucket == 0) return 0;
    length = std::max(length, padded.bucket);
  }
  return length;
}

int64_t Executor::StagedBytesOf(const InferRequest& request, size_t i,
                                int64_t padded_length) const {
  if (padded_length > 0 && padded_input_[i] >= 0) {
    return padded_rows_->PaddedInputBytes(padded_input_[i], request.input_dims()[i],
                                          request.rows(), padded_length);
  }
  return StagedInputBytes(i, static_cast<int64_t>(request.input(i).size()));
}

void Executor::RecordPadding(const Batch& batch, int64_t padded_length) {
  const ModelMetadata& metadata = backend_->metadata();
  int64_t staged = 0;
  int64_t pad = 0;
  for (const PaddingSpec::Input& in : metadata.padding->inputs) {
    const int64_t element = DataTypeSize(metadata.inputs[in.input].dtype);
    for (const auto& request : batch.requests) {
      const int64_t own = static_cast<int64_t>(request->input(in.input).size()) / element;
      const int64_t bytes = StagedBytesOf(*request, in.input, padded_length);
      staged += bytes / element;
      pad += bytes / element - own;
    }
  }
  metrics_->RecordPadding(pad, staged);
}

bool Executor::AlignedForItsElements(const InferRequest& request) const {
  // A request's input may be a view into the bytes gRPC received, where a tensor starts at any
  // byte; the backend reads its elements as their type (staging is aligned for any type).
  const ModelMetadata& metadata = backend_->metadata();
  for (size_t i = 0; i < metadata.inputs.size(); ++i) {
    const uintptr_t address = reinterpret_cast<uintptr_t>(request.input(i).data());
    const int64_t element = std::max<int64_t>(1, DataTypeSize(metadata.inputs[i].dtype));
    if (address % static_cast<uintptr_t>(element) != 0) return false;
  }
  return true;
}

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

void Executor::Scatter(const Batch& batch, const BackendCall& call) {
  if (call.status.ok()) {
    ScatterRows(batch, call.outputs, call.output_bytes, call.padded_length);
  }
  // Recorded before the answers go out, so that a client reading statistics after its answer
  // sees its batch counted.
  const absl::Duration gather = call.gathered - call.gather_start;
  const absl::Duration took = call.scatter_start - call.start;
  const absl::Duration scatter = clock_->Now() - call.scatter_start;
  metrics_->RecordStages(gather, scatter);
  if (options_.statistics != nullptr && call.status.ok()) {
    options_.statistics->RecordBatch(batch.rows, gather, took, scatter);
  }
  for (const auto& request : batch.requests) request->TraceCompute(call.start, call.scatter_start);
}

void Executor::Answer(Batch& batch, const BackendCall& call) {
  // Each answer serialises its response on the answering thread: split like the scatter.
  const int64_t answer_bytes =
      std::accumulate(call.output_bytes.begin(), call.output_bytes.end(), int64_t{0});
  ForEachRequest(batch, answer_bytes,
                 [&](size_t j) { batch.requests[j]->Finish(absl::OkStatus()); });
}

void Executor::ForEachRequest(const Batch& batch, int64_t bytes,
                              const std::function<void(size_t)>& work) {
  const size_t n = batch.requests.size();
  int64_t pieces = 1;
  if (copy_pool_ != nullptr) {
    pieces = std::min<int64_t>({options_.copy_threads, static_cast<int64_t>(n),
                                bytes / options_.copy_split_bytes});
  }
  if (pieces <= 1) {
    for (size_t j = 0; j < n; ++j) work(j);
    return;
  }
  parallel_copies_.fetch_add(1, std::memory_order_relaxed);
  // Piece k takes the requests whose first row lies in [k, k + 1) * rows / pieces: consecutive
  // requests of about equal bytes, since every row of a batch has the same size.
  int64_t rows = 0;
  for (const auto& request : batch.requests) rows += request->rows();
  std::vector<size_t> first(pieces + 1, n);
  first[0] = 0;
  int64_t k = 0, row = 0;
  for (size_t j = 0; j < n; ++j) {
    const int64_t piece = std::min(pieces - 1, row * pieces / std::max<int64_t>(rows, 1));
    while (k < piece) first[++k] = j;
    row += batch.requests[j]->rows();
  }
  copy_pool_->ParallelFor(static_cast<int>(pieces), [&](int piece) {
    for (size_t j = first[piece]; j < first[piece + 1]; ++j) work(j);
  });
}

void Executor::GatherRows(const Batch& batch, absl::Span<char* const> inputs,
                          int64_t padded_length) {
  // Where each request's rows start in each input's staging, so pieces can copy independently.
  const size_t n = batch.requests.size();
  std::vector<int64_t> offsets(n * inputs.size());
  int64_t bytes = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    int64_t offset = 0;
    for (size_t j = 0; j < n; ++j) {
      offsets[j * inputs.size() + i] = offset;
      offset += StagedBytesOf(*batch.requests[j], i, padded_length);
    }
    bytes += offset;
  }
  const bool streaming = options_.streaming_gather;
  ForEachRequest(batch, bytes, [&](size_t j) {
    const InferRequest& request = *batch.requests[j];
    for (size_t i = 0; i < inputs.size(); ++i) {
      char* to = inputs[i] + offsets[j * inputs.size() + i];
      if (padded_length > 0 && padded_input_[i] >= 0) {
        padded_rows_->Pad(padded_input_[i], request.input_dims()[i], request.rows(),
                          request.input(i), padded_length, to);
      } else {
        input_layouts_[i]->Stage(request.input(i), to, streaming);
      }
    }
    if (streaming) StagingFence();
  });
}

void Executor::ScatterRows(const Batch& batch, absl::Span<char* const> outputs,
                           absl::Span<const int64_t> output_bytes, int64_t padded_length) {
  std::vector<int64_t> first_row(batch.requests.size());
  int64_t row = 0;
  for (size_t j = 0; j < batch.requests.size(); ++j) {
    first_row[j] = row;
    row += batch.requests[j]->rows();
  }
  int64_t bytes = 0;
  for (int64_t b : output_bytes) bytes += b;
  // Each answer's memory is allocated as it is filled, on the copy threads too.
  ForEachRequest(batch, bytes, [&](size_t j) {
    const InferRequest& request = *batch.requests[j];
    for (size_t o = 0; o < outputs.size(); ++o) {
      OutputBuffer* out = request.output(o);
      if (out == nullptr) continue;
      const int64_t row_bytes = output_bytes[o] / batch.rows;  // In the staging layout.
      if (padded_length > 0 && cut_output_[o] >= 0) {
        const int c = cut_output_[o];
        const int64_t length = LengthOf(*backend_->metadata().padding, request.input_dims()).length;
        padded_rows_->Cut(c, request.rows(), padded_length, length,
                          outputs[o] + first_row[j] * row_bytes,
                          out->Allocate(padded_rows_->CutOutputBytes(c, request.rows(), length)));
        continue;
      }
      const int64_t staged_bytes = request.rows() * row_bytes;
      const StagingLayout& layout = *output_layouts_[o];
      layout.Unstage(outputs[o] + first_row[j] * row_bytes, staged_bytes,
                     out->Allocate(layout.WireBytes(staged_bytes)));
    }
  });
}

}  // namespace coalesce
