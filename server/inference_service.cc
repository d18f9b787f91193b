#include "server/inference_service.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/client_text.h"
#include "engine/infer_request.h"
#include "repository/model_config.h"
#include "server/load_parameters.h"
#include "server/proto_conversions.h"
#include "server/protocol_extensions.h"
#include "server/request_validator.h"
#include "server/scheduling_parameters.h"
#include "server/shared_memory_manager.h"
#include "server/shared_memory_tensors.h"
#include "server/stream_infer_reactor.h"
#include "server/version.h"
#include "server/wire_messages.h"
#include "spdlog/spdlog.h"

namespace coalesce {
namespace {

constexpr char kServerName[] = "coalesce";

// A model's state as Triton's RepositoryIndex names it.
std::string TritonStateName(ModelRepository::State state) {
  switch (state) {
    case ModelRepository::State::kReady:
      return "READY";
    case ModelRepository::State::kUnavailable:
      return "UNAVAILABLE";
    case ModelRepository::State::kNotLoaded:
      return "";
  }
  return "";
}

// Bytes of a status message sent to a client. A client with gRPC's default metadata limit (8 KiB)
// cannot receive a longer message (percent-encoding may triple its size on the wire): it would see
// RESOURCE_EXHAUSTED instead of the error. Messages quote client text through ClientText(); this
// bounds what other layers quote whole.
constexpr size_t kMaxStatusMessageBytes = 2048;

// The access line of one ModelInfer request, at debug level (log_verbose_level 1), whether or not
// it found its model.
void LogAccess(absl::string_view model, absl::string_view version, absl::string_view id,
               int64_t rows, absl::StatusCode code, absl::Duration latency) {
  if (!spdlog::should_log(spdlog::level::debug)) return;
  spdlog::debug("access model={} version={} id={} rows={} code={} latency_us={}", ClientText(model),
                ClientText(version), ClientText(id), rows, absl::StatusCodeToString(code),
                absl::ToInt64Microseconds(latency));
}

void FillTensorMetadata(const TensorSpec& spec, bool batched,
                        inference::ModelMetadataResponse::TensorMetadata* out) {
  out->set_name(spec.name);
  out->set_datatype(std::string(DataTypeName(spec.dtype)));
  if (batched) out->add_shape(-1);
  for (int64_t dim : spec.dims) out->add_shape(dim);
}

// The reactor of one ModelInfer call. It owns the parsed request and its answer until the answer
// is serialized, records cancellation so that the batcher and executor can drop the request
// before it costs compute, and frees itself when gRPC is done with it, which is after Finish():
// the request's pointer to `cancelled_` stays valid until it answers.
class InferReactor : public grpc::ServerUnaryReactor {
 public:
  // `answer_bytes` is gRPC's response message of the call.
  explicit InferReactor(grpc::ByteBuffer* answer_bytes) : answer_bytes_(answer_bytes) {}

  void OnCancel() override { cancelled_.store(true, std::memory_order_release); }
  void OnDone() override { delete this; }
  const std::atomic<bool>* cancelled() const { return &cancelled_; }
  ParsedInferRequest& request() { return messages_->request; }
  inference::ModelInferResponse* response() { return &messages_->response; }
  WireOutputs* outputs() { return &messages_->outputs; }

  // Finishes the call with `status` and, if OK, the response. The messages are freed first: a
  // client slow to read its answer then holds only the answer's bytes on their way to it.
  void Answer(absl::Status status) {
    if (status.ok()) {
      status = messages_->outputs.Serialize(messages_->response, /*in_stream=*/false,
                                            answer_bytes_);
    }
    messages_.reset();
    Finish(ToGrpcStatus(status));
  }

 private:
  struct Messages {
    ParsedInferRequest request;
    inference::ModelInferResponse response;
    WireOutputs outputs;
  };
  std::unique_ptr<Messages> messages_ = std::make_unique<Messages>();
  grpc::ByteBuffer* const answer_bytes_;
  std::atomic<bool> cancelled_{false};
};

// Where gRPC's generated service registered `method` of the inference service (its index in the
// proto's service, as the generated code numbers them).
int MethodIndex(const char* method) {
  return inference::ModelInferRequest::descriptor()
      ->file()
      ->FindServiceByName("GRPCInferenceService")
      ->FindMethodByName(method)
      ->index();
}

// Fills in each output's variable (-1) dimension from the bytes the model produced into
// `outputs` (a model has at most one per output; see ServedModel).
void ResolveVariableOutputShapes(const WireOutputs& outputs,
                                 inference::ModelInferResponse& response) {
  for (int k = 0; k < response.outputs_size() && k < outputs.size(); ++k) {
    auto* shape = response.mutable_outputs(k)->mutable_shape();
    int64_t fixed = DataTypeSize(ParseDataType(response.outputs(k).datatype()).value());
    int variable = -1;
    for (int d = 0; d < shape->size(); ++d) {
      if (shape->Get(d) < 0) {
        variable = d;
      } else {
        fixed *= shape->Get(d);
      }
    }
    if (variable < 0) continue;
    const int64_t bytes = outputs.bytes(k);
    shape->Set(variable, fixed > 0 ? bytes / fixed : 0);
  }
}

// Triton's text for model control that is not enabled, with why.
absl::Status NoRepositoryToControl() {
  return absl::FailedPreconditionError(
      "explicit model load / unload is not allowed if polling is enabled (coalesce: model "
      "control needs --model_repository; it serves the built-in demo model)");
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      TruncateText(status.message(), kMaxStatusMessageBytes));
}

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

absl::Time DeadlineOf(const grpc::CallbackServerContext& context, absl::Time now) {
  auto deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return now + absl::FromChrono(deadline - std::chrono::system_clock::now());
}

InferenceService::InferenceService(ModelRegistry* registry, ModelRepository* repository,
                                   Clock* clock)
    : registry_(registry), repository_(repository), clock_(clock) {
  // The inference calls take bytes (server/wire_messages.h): the token is checked before the
  // request is parsed, and bytes that are not a request get an answer that says so.
  MarkMethodRawCallback(
      MethodIndex("ModelInfer"),
      new grpc::internal::CallbackUnaryHandler<grpc::ByteBuffer, grpc::ByteBuffer>(
          [this](grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                 grpc::ByteBuffer* response) {
            return ModelInferBytes(context, request, response);
          }));
  MarkMethodRawCallback(
      MethodIndex("ModelStreamInfer"),
      new grpc::internal::CallbackBidiHandler<grpc::ByteBuffer, grpc::ByteBuffer>(
          [this](grpc::CallbackServerContext* context) {
            return new StreamInferReactor(this, context);
          }));
}

InferenceService::~InferenceService() {
  std::vector<Background> threads;
  {
    absl::MutexLock lock(&background_mu_);
    threads.swap(background_);
  }
  for (Background& b : threads) b.thread.join();
}

void InferenceService::RunInBackground(std::function<void()> work) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  absl::MutexLock lock(&background_mu_);
  // Join those that finished; a done flag is set as the work's last step, so a join waits only
  // for the thread to exit.
  auto finished = std::partition(background_.begin(), background_.end(),
                                 [](const Background& b) { return !b.done->load(); });
  for (auto it = finished; it != background_.end(); ++it) it->thread.join();
  background_.erase(finished, background_.end());
  background_.push_back({std::thread([work = std::move(work), done] {
                           work();
                           done->store(true);
                         }),
                         done});
}

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
  // As Triton's released servers answer (and its client's is_model_ready() expects): a model
  // that is unknown, not loaded, unloaded or failed to load, or a version that is not served,
  // is "not ready", not an error. A version string that is no number is an error, as there.
  if (auto version = ParseRequestedVersion(request->version()); !version.ok()) {
    return FinishNow(context, version.status());
  }
  auto model = registry_->Find(request->name(), request->version());
  response->set_ready(model.ok() && ready());
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ServerMetadata(
    grpc::CallbackServerContext* context, const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  response->set_name(kServerName);
  response->set_version(kCoalesceVersion);
  for (const std::string& extension : ServedExtensions()) response->add_extensions(extension);
  return FinishNow(context, absl::OkStatus());
}

std::vector<std::string> InferenceService::ServedExtensions() const {
  std::vector<std::string> names;
  for (const ProtocolExtension& extension : ImplementedExtensions()) {
    names.push_back(extension.name);
  }
  if (shared_memory_ != nullptr) {
    names.push_back("system_shared_memory");
    if (shared_memory_->cuda_opener()) names.push_back("cuda_shared_memory");
  }
  return names;
}

grpc::ServerUnaryReactor* InferenceService::ModelMetadata(
    grpc::CallbackServerContext* context, const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  auto model = registry_->Find(request->name(), request->version());
  if (!model.ok()) return FinishNow(context, model.status());
  const coalesce::ModelMetadata& metadata = (*model)->metadata();
  response->set_name(metadata.name);
  // Every version being served, as Triton lists them.
  for (const auto& served : registry_->models()) {
    if (served->metadata().name == metadata.name) response->add_versions(served->metadata().version);
  }
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

grpc::ServerUnaryReactor* InferenceService::ModelInferBytes(grpc::CallbackServerContext* context,
                                                            const grpc::ByteBuffer* request_bytes,
                                                            grpc::ByteBuffer* response_bytes) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  auto* reactor = new InferReactor(response_bytes);
  // gRPC holds the request's bytes until the call is done, which for a client slow to read its
  // answer is long after they are parsed: the parse consumes them (the parsed request keeps what
  // its inputs view until it is answered). They are gRPC's buffer, const only in the handler's
  // signature.
  if (absl::Status s = ParseInferRequest(*const_cast<grpc::ByteBuffer*>(request_bytes),
                                         &reactor->request());
      !s.ok()) {
    reactor->Answer(std::move(s));
    return reactor;
  }
  Infer(reactor->request(), reactor->response(), reactor->outputs(),
        DeadlineOf(*context, clock_->Now()), reactor->cancelled(),
        [reactor](absl::Status s) { reactor->Answer(std::move(s)); });
  return reactor;
}

void InferenceService::Infer(const ParsedInferRequest& parsed,
                             inference::ModelInferResponse* response, WireOutputs* outputs,
                             absl::Time grpc_deadline, const std::atomic<bool>* cancelled,
                             AnswerCallback done) {
  const inference::ModelInferRequest& request = parsed.message();
  const absl::Time arrival = clock_->Now();
  absl::StatusOr<std::shared_ptr<ServedModel>> found =
      registry_->Find(request.model_name(), request.model_version());
  if (!found.ok()) {
    LogAccess(request.model_name(), request.model_version(), request.id(), 0, found.status().code(),
              clock_->Now() - arrival);
    std::move(done)(found.status());
    return;
  }
  // Held until Submit() returns: the registry does not retire a model somebody holds.
  std::shared_ptr<ServedModel> model = *std::move(found);
  ServedModel* served = model.get();
  // Null unless this request is sampled for tracing.
  std::unique_ptr<RequestTracer::Trace> trace =
      tracer_ != nullptr ? tracer_->Sample(served->metadata().name) : nullptr;
  RequestTrace* stages = trace != nullptr ? &trace->stages : nullptr;
  if (stages != nullptr) stages->request_start = arrival;
  // Answers the call once, recording its outcome; `deadline` is InfiniteFuture() if none.
  auto answer = [served, arrival, clock = clock_, done = std::move(done), id = request.id(),
                 tracer = tracer_, trace = std::move(trace)](absl::Status s, absl::Time deadline,
                                                             int64_t rows) mutable {
    const absl::Time now = clock->Now();
    if (trace != nullptr) {
      trace->stages.request_end = now;
      tracer->Write(*trace, served->metadata().name, served->metadata().version, id);
    }
    const absl::Duration latency = now - arrival;
    absl::Duration slack =
        deadline == absl::InfiniteFuture() ? absl::InfiniteDuration() : deadline - now;
    served->metrics().RecordRequest(s.code(), latency, slack);
    served->statistics().RecordRequest(s.ok(), rows, latency, absl::Now());
    LogAccess(served->metadata().name, served->metadata().version, id, rows, s.code(), latency);
    std::move(done)(std::move(s));
  };
  // Null unless a tensor is in shared memory. Held by the done callback, so that its regions stay
  // mapped until the request has been answered, even if they are unregistered meanwhile.
  absl::StatusOr<std::unique_ptr<SharedMemoryTensors>> shm =
      SharedMemoryTensors::Resolve(shared_memory_, request);
  if (!shm.ok()) {
    answer(shm.status(), absl::InfiniteFuture(), 0);
    return;
  }
  absl::StatusOr<std::unique_ptr<InferRequest>> infer = MakeRequest(
      *served, request, parsed.raw_inputs(), arrival, grpc_deadline, cancelled, shm->get(),
      *response, *outputs);
  if (!infer.ok()) {
    answer(infer.status(), absl::InfiniteFuture(), 0);
    return;
  }
  const absl::Time deadline = (*infer)->deadline();
  const int64_t rows = (*infer)->rows();
  const bool variable = served->metadata().HasVariableDims();
  (*infer)->set_done([answer = std::move(answer), deadline, rows, variable, response, outputs,
                      shm = *std::move(shm)](absl::Status s) mutable {
    if (s.ok() && variable) ResolveVariableOutputShapes(*outputs, *response);
    if (s.ok() && shm != nullptr) {
      // Shared memory takes its outputs from the message (the rare path pays a copy).
      outputs->MoveInto(response);
      s = shm->WriteOutputs(*response);
    }
    answer(std::move(s), deadline, rows);
  });
  if (stages != nullptr) {
    (*infer)->set_trace(stages);
    stages->queue_start = clock_->Now();
  }
  // Ownership passes to the model iff Submit() succeeds; otherwise answer through the request.
  if (absl::Status status = served->Submit(*infer); !status.ok()) (*infer)->Finish(status);
}

absl::StatusOr<std::unique_ptr<InferRequest>> InferenceService::MakeRequest(
    const ServedModel& model, const inference::ModelInferRequest& request,
    absl::Span<const absl::string_view> raw_inputs, absl::Time arrival,
    absl::Time grpc_deadline, const std::atomic<bool>* cancelled,
    const SharedMemoryTensors* shared_memory, inference::ModelInferResponse& response,
    WireOutputs& outputs) const {
  if (!ready()) return absl::UnavailableError("server is shutting down");
  const coalesce::ModelMetadata& metadata = model.metadata();
  absl::StatusOr<ValidatedRequest> validated =
      shared_memory == nullptr
          ? ValidateInferRequest(metadata, request, raw_inputs, {})
          : ValidateInferRequest(metadata, request, raw_inputs, shared_memory->inputs());
  if (!validated.ok()) return validated.status();
  absl::StatusOr<Scheduling> scheduling =
      ResolveScheduling(request, arrival, grpc_deadline, model.scheduling());
  if (!scheduling.ok()) return scheduling.status();

  response.set_model_name(metadata.name);
  response.set_model_version(metadata.version);
  response.set_id(request.id());
  InferRequest::Options options;
  options.rows = validated->rows;
  options.inputs = std::move(validated->inputs);
  options.owned_inputs = std::move(validated->owned_inputs);
  if (metadata.HasVariableDims()) {
    const size_t skip = metadata.max_batch_size > 0 ? 1 : 0;
    for (const std::vector<int64_t>& shape : validated->input_shapes) {
      options.input_dims.emplace_back(shape.begin() + skip, shape.end());
    }
  }
  options.outputs.assign(metadata.outputs.size(), nullptr);
  for (int o : validated->outputs) {
    const TensorSpec& spec = metadata.outputs[o];
    auto* tensor = response.add_outputs();
    tensor->set_name(spec.name);
    tensor->set_datatype(std::string(DataTypeName(spec.dtype)));
    if (metadata.max_batch_size > 0) tensor->add_shape(validated->rows);
    for (int64_t dim : spec.dims) tensor->add_shape(dim);
    options.outputs[o] = outputs.Add();
  }
  if (shared_memory != nullptr) {
    if (absl::Status s = shared_memory->CheckOutputsFit(response); !s.ok()) return s;
  }
  options.arrival = arrival;
  options.deadline = scheduling->deadline;
  options.priority = scheduling->priority;
  options.cancelled = cancelled;
  return std::make_unique<InferRequest>(std::move(options), nullptr);
}

grpc::ServerUnaryReactor* InferenceService::ModelConfig(
    grpc::CallbackServerContext* context, const inference::ModelConfigRequest* request,
    inference::ModelConfigResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  auto model = registry_->Find(request->name(), request->version());
  if (!model.ok()) return FinishNow(context, model.status());
  if (repository_ != nullptr) {
    absl::StatusOr<inference::ModelConfig> config = repository_->Config(request->name());
    if (config.ok()) {
      *response->mutable_config() = *std::move(config);
      return FinishNow(context, absl::OkStatus());
    }
  }
  // A model built in (the demo): its config as a repository would state it.
  *response->mutable_config() = ConfigFromMetadata((*model)->metadata());
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelStatistics(
    grpc::CallbackServerContext* context, const inference::ModelStatisticsRequest* request,
    inference::ModelStatisticsResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  // Checked first, as Triton does, also when no name narrows the answer.
  if (auto version = ParseRequestedVersion(request->version()); !version.ok()) {
    return FinishNow(context, version.status());
  }
  if (!request->name().empty()) {
    // Checks that the name (and version, if given) exist.
    auto model = registry_->Find(request->name(), request->version());
    if (!model.ok()) return FinishNow(context, model.status());
  }
  for (const std::shared_ptr<ServedModel>& model : registry_->models()) {
    const coalesce::ModelMetadata& metadata = model->metadata();
    if (!request->name().empty() && metadata.name != request->name()) continue;
    if (!request->version().empty() && metadata.version != request->version()) continue;
    FillModelStatistics(metadata.name, metadata.version, model->statistics().Get(),
                        response->add_model_stats());
  }
  return FinishNow(context, absl::OkStatus());
}

absl::Status InferenceService::CheckRepositoryName(const std::string& repository_name) const {
  if (repository_name.empty()) return absl::OkStatus();
  if (repository_ == nullptr || repository_name != repository_->name()) {
    return absl::NotFoundError(
        absl::StrCat("unknown repository '", ClientText(repository_name), "' (",
                     repository_ == nullptr ? std::string("the server has none")
                                            : absl::StrCat("serving '", repository_->name(), "'"),
                     ")"));
  }
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* InferenceService::RepositoryIndex(
    grpc::CallbackServerContext* context, const inference::RepositoryIndexRequest* request,
    inference::RepositoryIndexResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  if (absl::Status s = CheckRepositoryName(request->repository_name()); !s.ok()) {
    return FinishNow(context, s);
  }
  if (repository_ == nullptr) {
    for (const auto& model : registry_->models()) {
      auto* entry = response->add_models();
      entry->set_name(model->metadata().name);
      entry->set_version(model->metadata().version);
      entry->set_state(TritonStateName(ModelRepository::State::kReady));
    }
    return FinishNow(context, absl::OkStatus());
  }
  for (const ModelRepository::IndexEntry& e : repository_->Index(request->ready())) {
    auto* entry = response->add_models();
    entry->set_name(e.name);
    entry->set_version(e.version);
    entry->set_state(TritonStateName(e.state));
    entry->set_reason(e.reason);
  }
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::RepositoryModelLoad(
    grpc::CallbackServerContext* context, const inference::RepositoryModelLoadRequest* request,
    inference::RepositoryModelLoadResponse*) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  if (absl::Status s = CheckRepositoryName(request->repository_name()); !s.ok()) {
    return FinishNow(context, s);
  }
  if (repository_ == nullptr) {
    return FinishNow(context, NoRepositoryToControl());
  }
  absl::StatusOr<ModelRepository::LoadOverrides> overrides =
      LoadOverridesFromParameters(request->parameters());
  if (!overrides.ok()) {
    // Triton finds bad parameters while polling the model, so they fail as polling does.
    return FinishNow(context, LoadPollFailure(request->model_name(), overrides.status().message()));
  }
  // Loading runs dry runs and profiles: it can take seconds, so it runs off gRPC's threads.
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  RunInBackground([this, reactor, name = request->model_name(),
                   overrides = *std::move(overrides)] {
    absl::Status s = repository_->Load(name, overrides);
    // The repository's message may quote the name whole, line breaks and all.
    spdlog::info("RepositoryModelLoad '{}': {}", ClientText(name),
                 s.ok() ? std::string("loaded") : LogText(s.ToString()));
    reactor->Finish(ToGrpcStatus(s));
  });
  return reactor;
}

grpc::ServerUnaryReactor* InferenceService::RepositoryModelUnload(
    grpc::CallbackServerContext* context, const inference::RepositoryModelUnloadRequest* request,
    inference::RepositoryModelUnloadResponse*) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  if (absl::Status s = CheckRepositoryName(request->repository_name()); !s.ok()) {
    return FinishNow(context, s);
  }
  if (repository_ == nullptr) {
    return FinishNow(context, NoRepositoryToControl());
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  RunInBackground([this, reactor, name = request->model_name()] {
    absl::Status s = repository_->Unload(name);
    spdlog::info("RepositoryModelUnload '{}': {}", ClientText(name),
                 s.ok() ? std::string("unloaded") : LogText(s.ToString()));
    reactor->Finish(ToGrpcStatus(s));
  });
  return reactor;
}

}  // namespace coalesce
