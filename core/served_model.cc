#include "core/served_model.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/request_validator.h"

namespace coalesce {

absl::StatusOr<std::unique_ptr<ServedModel>> ServedModel::Create(const Options& options,
                                                                 std::unique_ptr<Backend> backend,
                                                                 ServerMetrics* metrics,
                                                                 Clock* clock) {
  for (const auto* specs : {&backend->metadata().inputs, &backend->metadata().outputs}) {
    for (const TensorSpec& spec : *specs) {
      for (int64_t dim : spec.dims) {
        if (dim < 0) {
          return absl::UnimplementedError(absl::StrCat(
              "model '", backend->metadata().name, "': tensor '", spec.name, "' has dims ",
              ShapeToString(spec.dims), "; variable dimensions are not supported yet"));
        }
      }
    }
  }
  std::unique_ptr<ServedModel> model(new ServedModel());
  model->backend_ = std::move(backend);
  model->metrics_ = metrics->ForModel(model->metadata().name);

  RequestQueue::Options queue_options;
  queue_options.capacity = options.max_queue_size;
  absl::StatusOr<std::unique_ptr<RequestQueue>> queue = RequestQueue::Create(queue_options);
  if (!queue.ok()) return queue.status();
  model->queue_ = *std::move(queue);

  // A model that does not batch (max_batch_size 0) runs one request per execution.
  int64_t max_batch = std::max<int64_t>(1, model->metadata().max_batch_size);
  SizeOrDelayPolicy::Options policy_options;
  policy_options.max_batch_size = max_batch;
  policy_options.max_queue_delay = options.max_queue_delay;
  absl::StatusOr<std::unique_ptr<SizeOrDelayPolicy>> policy =
      SizeOrDelayPolicy::Create(policy_options);
  if (!policy.ok()) return policy.status();
  model->policy_ = *std::move(policy);

  RequestQueue* queue_ptr = model->queue_.get();
  Executor::Options executor_options;
  executor_options.num_workers = options.num_workers;
  executor_options.on_worker_idle = [queue_ptr] { queue_ptr->Wake(); };
  absl::StatusOr<std::unique_ptr<Executor>> executor = Executor::Create(
      executor_options, model->backend_.get(), model->metrics_.get(), clock);
  if (!executor.ok()) return executor.status();
  model->executor_ = *std::move(executor);

  absl::StatusOr<std::unique_ptr<Batcher>> batcher =
      Batcher::Create(model->queue_.get(), model->policy_.get(), model->executor_.get(), clock);
  if (!batcher.ok()) return batcher.status();
  model->batcher_ = *std::move(batcher);
  model->batcher_->Start();
  return model;
}

ServedModel::~ServedModel() { Shutdown(); }

absl::Status ServedModel::Submit(std::unique_ptr<InferRequest>& request) {
  if (shutting_down_.load(std::memory_order_acquire)) {
    return absl::UnavailableError(
        absl::StrCat("model '", metadata().name, "' is shutting down"));
  }
  return queue_->Push(request);
}

void ServedModel::Shutdown() {
  if (shutting_down_.exchange(true)) return;
  if (batcher_ != nullptr) batcher_->Stop();
  if (executor_ != nullptr) executor_->Stop();
  // A Submit() that raced with the start of shutdown may have queued after the batcher's last
  // round; answer it rather than leave it to a destructor.
  if (queue_ != nullptr) {
    std::vector<std::unique_ptr<InferRequest>> late;
    queue_->PopAll(late);
    for (auto& request : late) {
      request->Finish(absl::UnavailableError(
          absl::StrCat("model '", metadata().name, "' shut down before running the request")));
    }
  }
}

}  // namespace coalesce
