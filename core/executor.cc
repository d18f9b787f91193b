#include "core/executor.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace coalesce {

absl::StatusOr<std::unique_ptr<Executor>> Executor::Create(Options options, Backend* backend,
                                                           ModelMetrics* metrics, Clock* clock) {
  if (options.num_workers < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("executor needs at least 1 worker, got ", options.num_workers));
  }
  std::unique_ptr<Executor> executor(new Executor(std::move(options), backend, metrics, clock));
  for (int w = 0; w < executor->options_.num_workers; ++w) {
    executor->workers_.emplace_back([e = executor.get(), w] { e->WorkerLoop(w); });
  }
  return executor;
}

Executor::Executor(Options options, Backend* backend, ModelMetrics* metrics, Clock* clock)
    : options_(std::move(options)),
      backend_(backend),
      metrics_(metrics),
      clock_(clock),
      idle_(options_.num_workers) {}

Executor::~Executor() { Stop(); }

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
}

char* Executor::Reserve(Staging& staging, int64_t bytes) {
  if (bytes > staging.bytes) {
    staging.data = backend_->AllocateStaging(bytes);
    staging.bytes = bytes;
  }
  return staging.data.get();
}

void Executor::WorkerLoop(int worker) {
  const ModelMetadata& metadata = backend_->metadata();
  const int64_t max_rows = std::max<int64_t>(1, metadata.max_batch_size);
  WorkerBuffers buffers;
  buffers.inputs.resize(metadata.inputs.size());
  buffers.outputs.resize(metadata.outputs.size());
  for (size_t i = 0; i < metadata.inputs.size(); ++i) {
    Reserve(buffers.inputs[i], max_rows * metadata.inputs[i].RowBytes());
  }
  for (size_t o = 0; o < metadata.outputs.size(); ++o) {
    Reserve(buffers.outputs[o], max_rows * metadata.outputs[o].RowBytes());
  }
  while (true) {
    Batch batch;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &Executor::HasWorkOrStopping));
      if (batches_.empty()) return;  // Stopping, and nothing left to run.
      batch = std::move(batches_.front());
      batches_.pop_front();
    }
    Run(worker, buffers, batch);
    idle_.fetch_add(1, std::memory_order_acq_rel);
    if (options_.on_worker_idle) options_.on_worker_idle();
  }
}

absl::Status Executor::ExecuteGuarded(int worker, int64_t rows,
                                      absl::Span<const char* const> inputs,
                                      absl::Span<char* const> outputs) {
  // A backend that throws must fail its batch, not kill the worker thread (and the process).
  try {
    return backend_->Execute(worker, rows, inputs, outputs);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("model '", backend_->metadata().name,
                                            "' threw: ", e.what()));
  } catch (...) {
    return absl::InternalError(
        absl::StrCat("model '", backend_->metadata().name, "' threw a non-standard exception"));
  }
}

void Executor::DropDead(Batch& batch) {
  absl::Time now = clock_->Now();
  auto dead = [now](const std::unique_ptr<InferRequest>& r) {
    return r->cancelled() || r->deadline() <= now;
  };
  if (std::none_of(batch.requests.begin(), batch.requests.end(), dead)) return;
  std::vector<std::unique_ptr<InferRequest>> alive;
  for (auto& request : batch.requests) {
    if (request->cancelled()) {
      metrics_->RecordCancelled();
      batch.rows -= request->rows();
      request->Finish(absl::CancelledError("request was cancelled before it ran"));
    } else if (request->deadline() <= now) {
      metrics_->RecordExpired();
      batch.rows -= request->rows();
      request->Finish(absl::DeadlineExceededError("deadline passed before the request ran"));
    } else {
      alive.push_back(std::move(request));
    }
  }
  batch.requests = std::move(alive);
}

void Executor::Run(int worker, WorkerBuffers& buffers, Batch& batch) {
  DropDead(batch);
  if (batch.requests.empty()) return;
  const ModelMetadata& metadata = backend_->metadata();
  const int64_t rows = batch.rows;
  const bool single = batch.requests.size() == 1;

  // Gather: one memcpy per request and input, or none for a lone request.
  std::vector<const char*> inputs(metadata.inputs.size());
  for (size_t i = 0; i < metadata.inputs.size(); ++i) {
    if (single) {
      inputs[i] = batch.requests[0]->input(i).data();
      continue;
    }
    char* buffer = Reserve(buffers.inputs[i], rows * metadata.inputs[i].RowBytes());
    char* cursor = buffer;
    for (const auto& request : batch.requests) {
      absl::string_view bytes = request->input(i);
      std::memcpy(cursor, bytes.data(), bytes.size());
      cursor += bytes.size();
    }
    inputs[i] = buffer;
  }
  std::vector<char*> outputs(metadata.outputs.size());
  for (size_t o = 0; o < metadata.outputs.size(); ++o) {
    outputs[o] = Reserve(buffers.outputs[o], rows * metadata.outputs[o].RowBytes());
  }

  absl::Duration predicted =
      options_.latency != nullptr ? options_.latency->Predict(rows) : absl::ZeroDuration();
  absl::Time start = clock_->Now();
  absl::Status status = ExecuteGuarded(worker, rows, inputs, outputs);
  absl::Duration took = clock_->Now() - start;
  metrics_->RecordBatch(rows, took, predicted);
  if (status.ok() && options_.latency != nullptr) {
    options_.latency->Observe(rows, took);
    int64_t size = options_.latency->SizeFor(rows);
    metrics_->SetPredictedBatchDuration(size, options_.latency->Predict(size));
  }

  // Scatter: each request's rows of each output it asked for, then its answer.
  int64_t row = 0;
  for (auto& request : batch.requests) {
    if (status.ok()) {
      for (size_t o = 0; o < metadata.outputs.size(); ++o) {
        std::string* out = request->output(o);
        if (out == nullptr) continue;
        int64_t row_bytes = metadata.outputs[o].RowBytes();
        out->assign(outputs[o] + row * row_bytes, request->rows() * row_bytes);
      }
    }
    row += request->rows();
    request->Finish(status);
  }
}

}  // namespace coalesce
