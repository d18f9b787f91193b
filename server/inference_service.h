#ifndef COALESCE_SERVER_INFERENCE_SERVICE_H_
#define COALESCE_SERVER_INFERENCE_SERVICE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "engine/clock.h"
#include "engine/infer_request.h"
#include "proto/inference.grpc.pb.h"
#include "repository/model_repository.h"
#include "server/request_tracer.h"
#include "server/wire_messages.h"
#include "serving/model_registry.h"

namespace coalesce {

class SharedMemoryManager;
class SharedMemoryTensors;

// The Open Inference Protocol service over gRPC's callback API, with Triton's extensions
// (streaming, config, statistics, repository control).
//
// ModelInfer validates the request against the model's metadata, points the model's outputs at
// the answer's raw_output_contents as gRPC will send them (WireOutputs), and queues it; the
// handler returns at once and an executor worker later finishes the call. No thread waits while
// a batch forms. Every call is finished exactly once: on a validation error here, or by the
// request's done callback.
//
// Thread-safe: gRPC calls the handlers from many threads.
class InferenceService final : public inference::GRPCInferenceService::CallbackService {
 public:
  // Receives a request's final status, exactly once, on any thread.
  using AnswerCallback = absl::AnyInvocable<void(absl::Status) &&>;
  // Decides whether a call may proceed (a bearer-token check, say). A non-OK status is the
  // call's answer (UNAUTHENTICATED, PERMISSION_DENIED). Must be thread-safe.
  using Authorizer = std::function<absl::Status(const grpc::CallbackServerContext&)>;

  // `registry` and `clock` must outlive the service. `repository` may be null (no
  // --model_repository: the index lists the registry's models, load and unload are refused).
  InferenceService(ModelRegistry* registry, ModelRepository* repository, Clock* clock);
  // Waits for repository loads and unloads still running (gRPC has already stopped by then).
  ~InferenceService() override;

  // Checks every call of this service with `authorizer` (none by default). Call before serving.
  void set_authorizer(Authorizer authorizer) { authorizer_ = std::move(authorizer); }
  // Samples requests into `tracer` (TraceSetting); none by default, and then TraceSetting is
  // refused. Must outlive the service. Call before serving.
  void set_tracer(RequestTracer* tracer) { tracer_ = tracer; }

  // Serves Triton's shared-memory extension from `manager` (null, the default: the shared-memory
  // RPCs answer UNIMPLEMENTED and no tensor can name a region). Must outlive the service. Call
  // before serving.
  void set_shared_memory(SharedMemoryManager* manager) { shared_memory_ = manager; }

  // Most requests of one ModelStreamInfer stream read and not yet answered on the wire (see
  // StreamInferReactor); 64 by default. Call before serving.
  void set_max_pending_per_stream(int max_pending) { max_pending_per_stream_ = max_pending; }
  int max_pending_per_stream() const { return max_pending_per_stream_; }

  // Readiness: while false, ServerReady and ModelReady say no and ModelInfer answers
  // UNAVAILABLE (used while draining at shutdown).
  void set_ready(bool ready) { ready_.store(ready, std::memory_order_release); }
  bool ready() const { return ready_.load(std::memory_order_acquire); }

  // Runs one inference request: validates it, queues it on its model and, once it has run, fills
  // `response` and `outputs` (its raw_output_contents, see WireOutputs) and calls `done` with
  // OK; on any failure calls `done` with the error. `request`, `response` and `outputs` must stay
  // valid until `done` runs; `cancelled` (may be null) likewise.
  // `grpc_deadline` is the call's deadline, InfiniteFuture() for none. Shared by ModelInfer and
  // ModelStreamInfer.
  void Infer(const ParsedInferRequest& request, inference::ModelInferResponse* response,
             WireOutputs* outputs, absl::Time grpc_deadline, const std::atomic<bool>* cancelled,
             AnswerCallback done);

  // OK if no authorizer is set.
  absl::Status Authorize(const grpc::CallbackServerContext& context) const {
    return authorizer_ ? authorizer_(context) : absl::OkStatus();
  }

  Clock* clock() const { return clock_; }

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const inference::ServerLiveRequest* request,
                                       inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const inference::ServerReadyRequest* request,
                                        inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const inference::ServerMetadataRequest* request,
                                           inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const inference::ModelMetadataRequest* request,
                                          inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* context,
                                        const inference::ModelConfigRequest* request,
                                        inference::ModelConfigResponse* response) override;
  grpc::ServerUnaryReactor* ModelStatistics(grpc::CallbackServerContext* context,
                                            const inference::ModelStatisticsRequest* request,
                                            inference::ModelStatisticsResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryIndex(grpc::CallbackServerContext* context,
                                            const inference::RepositoryIndexRequest* request,
                                            inference::RepositoryIndexResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryModelLoad(
      grpc::CallbackServerContext* context, const inference::RepositoryModelLoadRequest* request,
      inference::RepositoryModelLoadResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryModelUnload(
      grpc::CallbackServerContext* context, const inference::RepositoryModelUnloadRequest* request,
      inference::RepositoryModelUnloadResponse* response) override;
  // System and CUDA shared memory (server/shared_memory_rpcs.cc).
  grpc::ServerUnaryReactor* SystemSharedMemoryStatus(
      grpc::CallbackServerContext* context,
      const inference::SystemSharedMemoryStatusRequest* request,
      inference::SystemSharedMemoryStatusResponse* response) override;
  grpc::ServerUnaryReactor* SystemSharedMemoryRegister(
      grpc::CallbackServerContext* context,
      const inference::SystemSharedMemoryRegisterRequest* request,
      inference::SystemSharedMemoryRegisterResponse* response) override;
  grpc::ServerUnaryReactor* SystemSharedMemoryUnregister(
      grpc::CallbackServerContext* context,
      const inference::SystemSharedMemoryUnregisterRequest* request,
      inference::SystemSharedMemoryUnregisterResponse* response) override;
  grpc::ServerUnaryReactor* CudaSharedMemoryStatus(
      grpc::CallbackServerContext* context, const inference::CudaSharedMemoryStatusRequest* request,
      inference::CudaSharedMemoryStatusResponse* response) override;
  grpc::ServerUnaryReactor* CudaSharedMemoryRegister(
      grpc::CallbackServerContext* context,
      const inference::CudaSharedMemoryRegisterRequest* request,
      inference::CudaSharedMemoryRegisterResponse* response) override;
  grpc::ServerUnaryReactor* CudaSharedMemoryUnregister(
      grpc::CallbackServerContext* context,
      const inference::CudaSharedMemoryUnregisterRequest* request,
      inference::CudaSharedMemoryUnregisterResponse* response) override;
  // Tracing and logging settings (server/settings_rpcs.cc).
  grpc::ServerUnaryReactor* TraceSetting(grpc::CallbackServerContext* context,
                                         const inference::TraceSettingRequest* request,
                                         inference::TraceSettingResponse* response) override;
  grpc::ServerUnaryReactor* LogSettings(grpc::CallbackServerContext* context,
                                        const inference::LogSettingsRequest* request,
                                        inference::LogSettingsResponse* response) override;

 private:
  // ModelInfer, over the request's bytes (see server/wire_messages.h). ModelStreamInfer is a
  // StreamInferReactor.
  grpc::ServerUnaryReactor* ModelInferBytes(grpc::CallbackServerContext* context,
                                            const grpc::ByteBuffer* request_bytes,
                                            grpc::ByteBuffer* response_bytes);
  // Validates `request` (whose raw_input_contents are `raw_inputs`) and resolves its deadline
  // and priority, describing the model's outputs in `response` and pointing them at `outputs`.
  // The result has no done callback yet. `shared_memory` (may be null) holds the request's
  // tensors in shared memory and must outlive the result.
  absl::StatusOr<std::unique_ptr<InferRequest>> MakeRequest(
      const ServedModel& model, const inference::ModelInferRequest& request,
      absl::Span<const absl::string_view> raw_inputs, absl::Time arrival,
      absl::Time grpc_deadline, const std::atomic<bool>* cancelled,
      const SharedMemoryTensors* shared_memory, inference::ModelInferResponse& response,
      WireOutputs& outputs) const;
  // The extensions ServerMetadata lists: ImplementedExtensions(), plus the shared-memory ones
  // where this server serves them.
  std::vector<std::string> ServedExtensions() const;
  // NOT_FOUND/INVALID_ARGUMENT unless `repository_name` is empty or this repository's.
  absl::Status CheckRepositoryName(const std::string& repository_name) const;
  // Runs slow work (a model load) on a thread of its own, joined at destruction, so that it
  // holds none of gRPC's callback threads.
  void RunInBackground(std::function<void()> work);

  ModelRegistry* const registry_;
  ModelRepository* const repository_;
  Clock* const clock_;
  std::atomic<bool> ready_{false};
  Authorizer authorizer_;
  RequestTracer* tracer_ = nullptr;
  SharedMemoryManager* shared_memory_ = nullptr;
  int max_pending_per_stream_ = 64;
  // A thread of RunInBackground() and whether its work is done (then it is joined on the next
  // call, so that finished threads do not pile up over a long life).
  struct Background {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  absl::Mutex background_mu_;
  std::vector<Background> background_ ABSL_GUARDED_BY(background_mu_);
};

// The one conversion from absl::Status to grpc::Status (the codes share their numbers). A message
// past 2 KiB is cut (see ClientText()), so that a client with default limits can read it.
grpc::Status ToGrpcStatus(const absl::Status& status);

// Answers a unary call at once with `status`, from a handler.
grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const absl::Status& status);

// The gRPC deadline of `context` as a Clock time (`now` is the clock's present), or
// InfiniteFuture() when the client set none.
absl::Time DeadlineOf(const grpc::CallbackServerContext& context, absl::Time now);

}  // namespace coalesce

#endif  // COALESCE_SERVER_INFERENCE_SERVICE_H_
