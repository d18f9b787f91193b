#include "serving/served_model.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/deadline_policy.h"
#include "engine/size_or_delay_policy.h"

namespace coalesce {
namespace {

// Variable dimensions need padding or shape-bucketed batching, which is not built yet.
// An output's shape follows from its size only if at most one of its dims is variable.
absl::Status CheckVariableDims(const ModelMetadata& metadata) {
  for (const TensorSpec& spec : metadata.outputs) {
    if (std::count(spec.dims.begin(), spec.dims.end(), -1) > 1) {
      return absl::UnimplementedError(absl::StrCat(
          "model '", metadata.name, "': output '", spec.name, "' has dims ",
          ShapeToString(spec.dims), "; at most one variable (-1) dimension per output is "
          "supported"));
    }
  }
  return absl::OkStatus();
}

// The dims profiling runs a tensor with: its own, with 1 for each variable dimension.
std::vector<int64_t> ProfileDims(const TensorSpec& spec) {
  std::vector<int64_t> dims = spec.dims;
  for (int64_t& dim : dims) dim = dim < 0 ? 1 : dim;
  return dims;
}

// `padding_ratio`: the model's PaddingSpec::max_padding_ratio, 0 for a model that does not pad.
absl::StatusOr<std::unique_ptr<BatchPolicy>> MakePolicy(const ServedModel::Options& options,
                                                        int64_t max_batch, double padding_ratio) {
  switch (options.batch_policy) {
    case BatchPolicyKind::kDeadline: {
      DeadlinePolicy::Options policy;
      policy.max_batch_size = max_batch;
      policy.max_queue_delay = options.max_queue_delay;
      policy.preferred_batch_sizes = options.preferred_batch_sizes;
      policy.max_padding_ratio = padding_ratio;
      auto created = DeadlinePolicy::Create(policy);
      if (!created.ok()) return created.status();
      return std::unique_ptr<BatchPolicy>(*std::move(created));
    }
    case BatchPolicyKind::kFixed: {
      SizeOrDelayPolicy::Options policy;
      policy.max_batch_size = max_batch;
      policy.max_queue_delay = options.max_queue_delay;
      policy.max_padding_ratio = padding_ratio;
      auto created = SizeOrDelayPolicy::Create(policy);
      if (!created.ok()) return created.status();
      return std::unique_ptr<BatchPolicy>(*std::move(created));
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown batch policy ",
                                                 static_cast<int>(options.batch_policy)));
}

absl::Status CheckScheduling(const SchedulingOptions& s) {
  if (s.priority_levels < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("priority levels must be at least 1, got ", s.priority_levels));
  }
  if (s.default_priority < 1 || s.default_priority > s.priority_levels) {
    return absl::InvalidArgumentError(absl::StrCat("default priority ", s.default_priority,
                                                   " is outside 1..", s.priority_levels));
  }
  if (s.default_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("default timeout must be positive, got ",
                                                   absl::FormatDuration(s.default_timeout)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ServedModel>> ServedModel::Create(const Options& options,
                                                                 std::unique_ptr<Backend> backend,
                                                                 ServerMetrics* metrics,
                                                                 Clock* clock) {
  std::vector<DeviceInstances> devices(1);
  devices[0].backend = std::move(backend);
  devices[0].num_workers = options.num_workers;
  return Create(options, std::move(devices), metrics, clock);
}

absl::StatusOr<std::unique_ptr<ServedModel>> ServedModel::Create(
    const Options& options, std::vector<DeviceInstances> devices, ServerMetrics* metrics,
    Clock* clock) {
  if (devices.empty()) return absl::InvalidArgumentError("a model needs at least one device");
  if (absl::Status s = CheckVariableDims(devices[0].backend->metadata()); !s.ok()) return s;
  if (absl::Status s = CheckScheduling(options.scheduling); !s.ok()) return s;
  std::unique_ptr<ServedModel> model(new ServedModel(options));
  model->clock_ = clock;
  for (DeviceInstances& device : devices) model->backends_.push_back(std::move(device.backend));
  model->backend_ = model->backends_[0].get();
  model->metrics_ = metrics->ForModel(model->metadata().name, model->metadata().version);
  // A model that does not batch (max_batch_size 0) runs one request per execution.
  const int64_t max_batch = std::max<int64_t>(1, model->metadata().max_batch_size);

  OnlineLatencyModel::Options latency_options;
  latency_options.max_batch_size = max_batch;
  auto latency = OnlineLatencyModel::Create(latency_options);
  if (!latency.ok()) return latency.status();
  model->latency_ = *std::move(latency);
  if (absl::Status s = model->Profile(clock); !s.ok()) return s;

  RequestQueue::Options queue_options;
  queue_options.capacity = options.max_queue_size;
  absl::StatusOr<std::unique_ptr<RequestQueue>> queue = RequestQueue::Create(queue_options);
  if (!queue.ok()) return queue.status();
  model->queue_ = *std::move(queue);

  const std::optional<PaddingSpec>& padding = model->metadata().padding;
  absl::StatusOr<std::unique_ptr<BatchPolicy>> policy =
      MakePolicy(options, max_batch, padding.has_value() ? padding->max_padding_ratio : 0);
  if (!policy.ok()) return policy.status();
  model->policy_ = *std::move(policy);

  RequestQueue* queue_ptr = model->queue_.get();
  Executor::Options executor_options;
  model->batches_per_worker_ = options.batches_per_worker != 0
                                  ? options.batches_per_worker
                                  : model->backend_->DefaultBatchesPerWorker();
  executor_options.batches_per_worker = model->batches_per_worker_;
  executor_options.exclusive_backend = options.exclusive_backend;
  executor_options.on_worker_idle = [queue_ptr] { queue_ptr->Wake(); };
  executor_options.latency = model->latency_.get();
  executor_options.statistics = &model->statistics_;
  std::vector<BatchSink*> sinks;
  for (size_t d = 0; d < devices.size(); ++d) {
    Backend* backend = model->backends_[d].get();
    executor_options.num_workers = devices[d].num_workers;
    executor_options.device_busy = metrics->Device(backend->DeviceName());
    absl::StatusOr<std::unique_ptr<Executor>> executor =
        Executor::Create(executor_options, backend, model->metrics_.get(), clock);
    if (!executor.ok()) return executor.status();
    model->num_workers_ += devices[d].num_workers;
    sinks.push_back(executor->get());
    model->executors_.push_back(*std::move(executor));
  }
  if (sinks.size() > 1) model->spread_ = std::make_unique<SpreadSink>(sinks);

  Batcher::Options batcher_options;
  batcher_options.queue = model->queue_.get();
  batcher_options.policy = model->policy_.get();
  batcher_options.sink = model->spread_ != nullptr ? static_cast<BatchSink*>(model->spread_.get())
                                                  : sinks[0];
  batcher_options.latency = model->latency_.get();
  batcher_options.clock = clock;
  batcher_options.metrics = model->metrics_.get();
  if (padding.has_value()) batcher_options.padding = &*padding;
  absl::StatusOr<std::unique_ptr<Batcher>> batcher = Batcher::Create(batcher_options);
  if (!batcher.ok()) return batcher.status();
  model->batcher_ = *std::move(batcher);
  model->batcher_->Start();
  return model;
}

ServedModel::~ServedModel() { Shutdown(); }

absl::Status ServedModel::Profile(Clock* clock) {
  const ModelMetadata& metadata = backend_->metadata();
  // Beyond this, one run is slow enough that larger sizes are extrapolated, not measured.
  const absl::Duration kMeasureBudget = absl::Seconds(1);
  absl::Duration last = absl::ZeroDuration();
  int64_t last_rows = 0;
  for (int64_t rows : latency_->sizes()) {
    absl::Duration best;
    if (last < kMeasureBudget) {
      absl::StatusOr<absl::Duration> measured =
          options_.time_batch ? options_.time_batch(rows) : TimeDryRun(rows, clock);
      if (!measured.ok()) {
        return absl::InternalError(absl::StrCat("model '", metadata.name,
                                                "' failed while profiling batch size ", rows,
                                                ": ", measured.status().message()));
      }
      best = *measured;
    } else {
      best = last * (static_cast<double>(rows) / static_cast<double>(last_rows));
    }
    latency_->SetProfile(rows, best);
    metrics_->SetPredictedBatchDuration(rows, best);
    last = best;
    last_rows = rows;
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::Duration> ServedModel::TimeDryRun(int64_t rows, Clock* clock) {
  const ModelMetadata& metadata = backend_->metadata();
  const bool variable = metadata.HasVariableDims();
  std::vector<std::vector<char>> in(metadata.inputs.size()), out(metadata.outputs.size());
  std::vector<const char*> in_ptrs;
  std::vector<char*> out_ptrs;
  Backend::VariableBatch shapes;
  for (size_t i = 0; i < in.size(); ++i) {
    shapes.input_dims.push_back(ProfileDims(metadata.inputs[i]));
    in[i].assign(rows * DimsElements(shapes.input_dims.back()) *
                     DataTypeSize(metadata.inputs[i].dtype), 0);
    in_ptrs.push_back(in[i].data());
  }
  for (size_t o = 0; o < out.size(); ++o) {
    if (!variable) out[o].assign(rows * metadata.outputs[o].RowBytes(), 0);
    out_ptrs.push_back(out[o].data());
  }
  shapes.output_buffer = [&out](int o, int64_t bytes) {
    out[o].assign(bytes, 0);
    return out[o].data();
  };
  // The first run at a new size may allocate or compile; keep the faster of two.
  absl::Duration best = absl::InfiniteDuration();
  for (int round = 0; round < 2; ++round) {
    absl::Time start = clock->Now();
    absl::Status status = variable ? backend_->ExecuteVariable(0, rows, in_ptrs, shapes)
                                   : backend_->Execute(0, rows, in_ptrs, out_ptrs);
    if (!status.ok()) return status;
    best = std::min(best, clock->Now() - start);
  }
  return best;
}

absl::Status ServedModel::Submit(std::unique_ptr<InferRequest>& request) {
  if (shutting_down_.load(std::memory_order_acquire)) {
    return absl::UnavailableError(absl::StrCat("model '", metadata().name, "' is shutting down"));
  }
  if (request->deadline() != absl::InfiniteFuture()) {
    absl::Duration needed = latency_->Predict(request->rows());
    absl::Duration left = request->deadline() - clock_->Now();
    if (left < needed) {
      metrics_->RecordShed();
      return absl::DeadlineExceededError(absl::StrCat(
          "cannot meet the deadline: ", request->rows(), " sample(s) need about ",
          absl::FormatDuration(needed), " on model '", metadata().name, "', but only ",
          absl::FormatDuration(std::max(left, absl::ZeroDuration())), " remain"));
    }
  }
  return queue_->Push(request);
}

void ServedModel::SampleGauges() {
  metrics_->SetQueueDepth(queue_depth());
  std::vector<const Backend*> backends;
  for (const std::unique_ptr<Backend>& backend : backends_) backends.push_back(backend.get());
  metrics_->SampleBackends(backends);
}

void ServedModel::Shutdown() {
  if (shutting_down_.exchange(true)) return;
  if (batcher_ != nullptr) batcher_->Stop();
  for (std::unique_ptr<Executor>& executor : executors_) executor->Stop();
  // A Submit() that raced with the start of shutdown may have queued after the batcher's last
  // round; answer it rather than leave it to a destructor.
  if (queue_ != nullptr) {
    std::vector<std::unique_ptr<InferRequest>> late;
    queue_->PopAll(late);
    queue_->Release(static_cast<int64_t>(late.size()));
    for (auto& request : late) {
      request->Finish(absl::UnavailableError(
          absl::StrCat("model '", metadata().name, "' shut down before running the request")));
    }
  }
}

}  // namespace coalesce
