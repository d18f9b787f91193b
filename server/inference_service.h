#ifndef COALESCE_SERVER_INFERENCE_SERVICE_H_
#define COALESCE_SERVER_INFERENCE_SERVICE_H_

#include <atomic>
#include <functional>

#include <grpcpp/grpcpp.h>

#include "core/clock.h"
#include "core/infer_request.h"
#include "core/model_registry.h"
#include "proto/inference.grpc.pb.h"

namespace coalesce {

// The Open Inference Protocol service over gRPC's callback API.
//
// ModelInfer validates the request against the model's metadata, points the model's outputs at
// the response's raw_output_contents, and queues it; the handler returns at once and an executor
// worker later finishes the call. No thread waits while a batch forms. Every call is finished
// exactly once: on a validation error here, or by the request's done callback.
//
// Thread-safe: gRPC calls the handlers from many threads.
class InferenceService final : public inference::GRPCInferenceService::CallbackService {
 public:
  // `registry` and `clock` must outlive the service.
  InferenceService(const ModelRegistry* registry, Clock* clock);

  // Decides whether a call may proceed (a bearer-token check, say). A non-OK status is the
  // call's answer (UNAUTHENTICATED, PERMISSION_DENIED). Must be thread-safe.
  using Authorizer = std::function<absl::Status(const grpc::CallbackServerContext&)>;

  // Checks every call of this service with `authorizer` (none by default). Call before serving.
  void set_authorizer(Authorizer authorizer) { authorizer_ = std::move(authorizer); }

  // Readiness: while false, ServerReady and ModelReady say no and ModelInfer answers
  // UNAVAILABLE (used while draining at shutdown).
  void set_ready(bool ready) { ready_.store(ready, std::memory_order_release); }
  bool ready() const { return ready_.load(std::memory_order_acquire); }

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
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override;

 private:
  // Validates `request` and resolves its deadline and priority, pointing the model's outputs at
  // `response`. The result has no done callback yet.
  absl::StatusOr<std::unique_ptr<InferRequest>> MakeRequest(
      const ServedModel& model, const grpc::CallbackServerContext& context,
      const inference::ModelInferRequest& request, absl::Time arrival,
      const std::atomic<bool>* cancelled, inference::ModelInferResponse& response) const;

  // OK if no authorizer is set.
  absl::Status Authorize(const grpc::CallbackServerContext& context) const {
    return authorizer_ ? authorizer_(context) : absl::OkStatus();
  }

  const ModelRegistry* const registry_;
  Clock* const clock_;
  std::atomic<bool> ready_{false};
  Authorizer authorizer_;
};

// The one conversion from absl::Status to grpc::Status (the codes share their numbers).
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace coalesce

#endif  // COALESCE_SERVER_INFERENCE_SERVICE_H_
