#include "server/server.h"

#include <chrono>
#include <utility>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace coalesce {
namespace {

constexpr char kServiceName[] = "inference.GRPCInferenceService";

void SetHealth(grpc::Server& server, bool serving) {
  grpc::HealthCheckServiceInterface* health = server.GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus(serving);
  health->SetServingStatus(kServiceName, serving);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const Options& options,
                                                      std::unique_ptr<ModelRegistry> registry,
                                                      std::unique_ptr<ServerMetrics> metrics,
                                                      Clock* clock,
                                                      std::unique_ptr<ModelRepository> repository) {
  std::unique_ptr<Server> server(new Server());
  server->metrics_ = std::move(metrics);
  server->registry_ = std::move(registry);
  server->repository_ = std::move(repository);
  server->service_ = std::make_unique<InferenceService>(server->registry_.get(),
                                                        server->repository_.get(), clock);

  absl::StatusOr<std::unique_ptr<MetricsEndpoint>> endpoint =
      MetricsEndpoint::Start(options.metrics_address, server->metrics_->registry(),
                             [s = server.get()] { s->SampleGauges(); });
  if (!endpoint.ok()) return endpoint.status();
  server->metrics_endpoint_ = *std::move(endpoint);
  server->metrics_port_ = server->metrics_endpoint_->port();

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.grpc_address, grpc::InsecureServerCredentials(),
                           &server->grpc_port_);
  builder.RegisterService(server->service_.get());
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr || server->grpc_port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve gRPC on ", options.grpc_address,
                     " (address in use, or not an address of this machine?)"));
  }
  server->service_->set_ready(true);
  SetHealth(*server->grpc_server_, true);
  return server;
}

Server::~Server() { Shutdown(absl::ZeroDuration()); }

void Server::SampleGauges() {
  metrics_->SampleProcess();
  for (const auto& model : registry_->models()) {
    model->SampleGauges();
  }
}

void Server::Shutdown(absl::Duration drain_timeout) {
  if (shut_down_) return;
  shut_down_ = true;
  if (service_ != nullptr) service_->set_ready(false);
  if (grpc_server_ != nullptr) {
    SetHealth(*grpc_server_, false);
    // Waits for calls in flight, which the models' pipelines are still running, then cancels
    // whatever remains at the deadline.
    grpc_server_->Shutdown(std::chrono::system_clock::now() + absl::ToChronoNanoseconds(drain_timeout));
  }
  spdlog::debug("gRPC endpoint closed; stopping models");
  // No more loads: the repository's poller stops before the models do.
  repository_.reset();
  if (registry_ != nullptr) registry_->ShutdownAll();
  spdlog::debug("models stopped; closing metrics endpoint");
  metrics_endpoint_.reset();
}

}  // namespace coalesce
