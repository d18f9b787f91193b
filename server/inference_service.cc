#include "server/inference_service.h"

#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include "core/infer_request.h"
#include "core/request_validator.h"
#include "core/scheduling.h"

namespace coalesce {
namespace {

constexpr char kServerName[] = "coalesce";
constexpr char kServerVersion[] = "0.1.0";

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

void FillTensorMetadata(const TensorSpec& spec, bool batched,
                        inference::ModelMetadataResponse::TensorMetadata* out) {
  out->set_name(spec.name);
  out->set_datatype(std::string(DataTypeName(spec.dtype)));
  if (batched) out->add_shape(-1);
  for (int64_t dim : spec.dims) out->add_shape(dim);
}

// The reactor of one ModelInfer call. It records cancellation so that the batcher and executor
// can drop the request before it costs compute, and frees itself when gRPC is done with it,
// which is after Finish(): the request's pointer to `cancelled_` stays valid until it answers.
class InferReactor : public grpc::ServerUnaryReactor {
 public:
  void OnCancel() override { cancelled_.store(true, std::memory_order_release); }
  void OnDone() override { delete this; }
  const std::atomic<bool>* cancelled() const { return &cancelled_; }

 private:
  std::atomic<bool> cancelled_{false};
};

// The gRPC deadline as a Clock time, or InfiniteFuture() when the client set none.
absl::Time DeadlineOf(const grpc::CallbackServerContext& context, absl::Time now) {
  auto deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return now + absl::FromChrono(deadline - std::chrono::system_clock::now());
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

InferenceService::InferenceService(const ModelRegistry* registry, Clock* clock)
    : registry_(registry), clock_(clock) {}

grpc::ServerUnaryReactor* InferenceService::ServerLive(grpc::CallbackServerContext* context,
                                                       const inference::ServerLiveRequest*,
                                                       inference::ServerLiveResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  response->set_live(true);
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ServerReady(grpc::CallbackServerContext* context,
                                                        const inference::ServerReadyRequest*,
                                                        inference::ServerReadyResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  response->set_ready(ready());
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelReady(grpc::CallbackServerContext* context,
                                                       const inference::ModelReadyRequest* request,
                                                       inference::ModelReadyResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  absl::StatusOr<ServedModel*> model = registry_->Find(request->name(), request->version());
  if (!model.ok()) return FinishNow(context, model.status());
  response->set_ready(ready());
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ServerMetadata(
    grpc::CallbackServerContext* context, const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  response->set_name(kServerName);
  response->set_version(kServerVersion);
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelMetadata(
    grpc::CallbackServerContext* context, const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  absl::StatusOr<ServedModel*> model = registry_->Find(request->name(), request->version());
  if (!model.ok()) return FinishNow(context, model.status());
  const coalesce::ModelMetadata& metadata = (*model)->metadata();
  response->set_name(metadata.name);
  response->add_versions(metadata.version);
  response->set_platform(metadata.platform);
  bool batched = metadata.max_batch_size > 0;
  for (const TensorSpec& spec : metadata.inputs) {
    FillTensorMetadata(spec, batched, response->add_inputs());
  }
  for (const TensorSpec& spec : metadata.outputs) {
    FillTensorMetadata(spec, batched, response->add_outputs());
  }
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelInfer(
    grpc::CallbackServerContext* context, const inference::ModelInferRequest* request,
    inference::ModelInferResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  const absl::Time arrival = clock_->Now();
  absl::StatusOr<ServedModel*> found =
      registry_->Find(request->model_name(), request->model_version());
  if (!found.ok()) return FinishNow(context, found.status());
  ServedModel* model = *found;

  auto* reactor = new InferReactor();
  // Answers the call once, recording its outcome; `deadline` is InfiniteFuture() if none.
  auto answer = [reactor, model, arrival, clock = clock_](absl::Status s, absl::Time deadline) {
    absl::Time now = clock->Now();
    absl::Duration slack =
        deadline == absl::InfiniteFuture() ? absl::InfiniteDuration() : deadline - now;
    model->metrics().RecordRequest(s.code(), now - arrival, slack);
    reactor->Finish(ToGrpcStatus(s));
  };
  absl::StatusOr<std::unique_ptr<InferRequest>> infer =
      MakeRequest(*model, *context, *request, arrival, reactor->cancelled(), *response);
  if (!infer.ok()) {
    answer(infer.status(), absl::InfiniteFuture());
    return reactor;
  }
  absl::Time deadline = (*infer)->deadline();
  (*infer)->set_done([answer, deadline](absl::Status s) { answer(std::move(s), deadline); });
  // Ownership passes to the model iff Submit() succeeds; otherwise answer through the request.
  if (absl::Status status = model->Submit(*infer); !status.ok()) (*infer)->Finish(status);
  return reactor;
}

absl::StatusOr<std::unique_ptr<InferRequest>> InferenceService::MakeRequest(
    const ServedModel& model, const grpc::CallbackServerContext& context,
    const inference::ModelInferRequest& request, absl::Time arrival,
    const std::atomic<bool>* cancelled, inference::ModelInferResponse& response) const {
  if (!ready()) return absl::UnavailableError("server is shutting down");
  const coalesce::ModelMetadata& metadata = model.metadata();
  absl::StatusOr<ValidatedRequest> validated = ValidateInferRequest(metadata, request);
  if (!validated.ok()) return validated.status();
  absl::StatusOr<Scheduling> scheduling =
      ResolveScheduling(request, arrival, DeadlineOf(context, arrival), model.scheduling());
  if (!scheduling.ok()) return scheduling.status();

  response.set_model_name(metadata.name);
  response.set_model_version(metadata.version);
  response.set_id(request.id());
  InferRequest::Options options;
  options.rows = validated->rows;
  options.inputs = std::move(validated->inputs);
  options.owned_inputs = std::move(validated->owned_inputs);
  options.outputs.assign(metadata.outputs.size(), nullptr);
  for (int o : validated->outputs) {
    const TensorSpec& spec = metadata.outputs[o];
    auto* tensor = response.add_outputs();
    tensor->set_name(spec.name);
    tensor->set_datatype(std::string(DataTypeName(spec.dtype)));
    if (metadata.max_batch_size > 0) tensor->add_shape(validated->rows);
    for (int64_t dim : spec.dims) tensor->add_shape(dim);
    options.outputs[o] = response.add_raw_output_contents();
  }
  options.arrival = arrival;
  options.deadline = scheduling->deadline;
  options.priority = scheduling->priority;
  options.cancelled = cancelled;
  return std::make_unique<InferRequest>(std::move(options), nullptr);
}

}  // namespace coalesce
