#include "server/server.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <map>
#include <utility>
#include <vector>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
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
  // Checked before anything starts, so that bad TLS never leaves a half-started server.
  if (absl::Status s = ValidateTls(options.tls); !s.ok()) return s;
  std::unique_ptr<RotatingTlsCredentials> tls;
  if (options.tls.enabled()) {
    absl::StatusOr<std::unique_ptr<RotatingTlsCredentials>> rotating =
        RotatingTlsCredentials::Create(options.tls);
    if (!rotating.ok()) return rotating.status();
    tls = *std::move(rotating);
  }
  if (options.shutdown_delay < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("shutdown_delay must be >= 0, got ",
                                                   absl::FormatDuration(options.shutdown_delay)));
  }

  if (absl::Status s = ValidateConnectionLimits(options.connections); !s.ok()) return s;

  absl::StatusOr<std::unique_ptr<RequestTracer>> tracer = RequestTracer::Create(options.trace);
  if (!tracer.ok()) return tracer.status();
  SharedMemoryManager::Options shared_memory_options;
  shared_memory_options.max_regions = options.max_shared_memory_regions;
  shared_memory_options.cuda_opener = options.cuda_ipc_opener;
  absl::StatusOr<std::unique_ptr<SharedMemoryManager>> shared_memory =
      SharedMemoryManager::Create(shared_memory_options);
  if (!shared_memory.ok()) return shared_memory.status();

  std::unique_ptr<Server> server(new Server());
  server->shutdown_delay_ = options.shutdown_delay;
  server->tracer_ = *std::move(tracer);
  server->metrics_ = std::move(metrics);
  server->registry_ = std::move(registry);
  server->repository_ = std::move(repository);
  server->service_ = std::make_unique<InferenceService>(server->registry_.get(),
                                                        server->repository_.get(), clock);
  if (options.authorizer) server->service_->set_authorizer(options.authorizer);
  server->service_->set_tracer(server->tracer_.get());
  server->service_->set_max_pending_per_stream(options.connections.max_pending_per_stream);
  server->shared_memory_ = *std::move(shared_memory);
  server->service_->set_shared_memory(server->shared_memory_.get());

  server->nvml_library_ = options.nvml_library;
  server->LoadNvmlOnce();
  absl::StatusOr<std::unique_ptr<MetricsEndpoint>> endpoint =
      MetricsEndpoint::Start(options.metrics_address, server->metrics_->registry(),
                             [s = server.get()] { s->SampleGauges(); });
  if (!endpoint.ok()) return endpoint.status();
  server->metrics_endpoint_ = *std::move(endpoint);
  server->metrics_port_ = server->metrics_endpoint_->port();

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  server->tls_ = std::move(tls);
  builder.AddListeningPort(
      options.grpc_address,
      server->tls_ != nullptr ? server->tls_->credentials() : grpc::InsecureServerCredentials(),
      &server->grpc_port_);
  builder.RegisterService(server->service_.get());
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  ApplyConnectionLimits(options.connections, builder);
  server->in_flight_ = std::make_unique<InFlightCalls>(absl::StrCat("/", kServiceName, "/"));
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> counters;
  counters.push_back(server->in_flight_->MakeInterceptorFactory());
  builder.experimental().SetInterceptorCreators(std::move(counters));
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

void Server::LoadNvmlOnce() {
  if (nvml_tried_ || nvml_library_.empty()) return;
  const std::vector<std::string> devices = metrics_->devices();
  if (std::none_of(devices.begin(), devices.end(),
                   [](const std::string& d) { return absl::StartsWith(d, "cuda:"); })) {
    return;
  }
  nvml_tried_ = true;
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  absl::StatusOr<std::unique_ptr<GpuUtilization>> nvml =
      GpuUtilization::Load(nvml_library_, *metrics_->registry(),
                           visible != nullptr ? std::optional<std::string>(visible) : std::nullopt);
  if (!nvml.ok()) {
    spdlog::info("NVML not loaded, so coalesce_gpu_utilization_ratio is not exported: {}",
                 std::string(nvml.status().message()));
    return;
  }
  spdlog::info("NVML loaded from {}: exporting coalesce_gpu_utilization_ratio", nvml_library_);
  gpu_utilization_ = *std::move(nvml);
}

void Server::SampleGauges() {
  metrics_->SampleProcess();
  metrics_->SampleThroughput(absl::Now());
  metrics_->SampleDevices();
  LoadNvmlOnce();
  if (gpu_utilization_ != nullptr) gpu_utilization_->Sample(metrics_->devices());
  // Two instances of one version (the old and the new during a reload) share its series: their
  // queues add up.
  std::map<std::pair<std::string, std::string>, std::pair<ModelMetrics*, int64_t>> depth;
  for (const auto& model : registry_->models()) {
    auto& [metrics, total] = depth[{model->metadata().name, model->metadata().version}];
    metrics = &model->metrics();
    total += model->queue_depth();
    // Backend figures (device memory, fallbacks) and the instance's own queue depth...
    model->SampleGauges();
  }
  // ...which the sum over instances then replaces.
  for (const auto& [key, entry] : depth) entry.first->SetQueueDepth(entry.second);
}

absl::Status Server::ReloadTls(const TlsOptions& tls) {
  if (tls_ == nullptr) {
    if (!tls.enabled()) return absl::OkStatus();
    return absl::FailedPreconditionError(
        "TLS: the endpoint serves plaintext; turning TLS on needs a restart");
  }
  return tls_->Replace(tls);
}

std::string Server::DescribeServedTls() const {
  return tls_ != nullptr ? tls_->Describe() : DescribeTls(TlsOptions());
}

std::string Server::ShutdownProgress() const {
  return absl::StrCat(shutdown_stage_.load(std::memory_order_acquire), "; ",
                      in_flight_ != nullptr ? in_flight_->count() : 0,
                      " inference call(s) in flight");
}

void Server::Shutdown(absl::Duration drain_timeout) {
  if (shut_down_) return;
  shut_down_ = true;
  auto stage = [this](const char* what) {
    shutdown_stage_.store(what, std::memory_order_release);
  };
  if (service_ != nullptr) service_->set_ready(false);
  if (grpc_server_ != nullptr) {
    SetHealth(*grpc_server_, false);
    stage("waiting out the shutdown delay");
    if (shutdown_delay_ > absl::ZeroDuration()) {
      spdlog::info("readiness off; accepting calls (answered UNAVAILABLE) for {} before closing "
                   "the gRPC listener", absl::FormatDuration(shutdown_delay_));
      // A deliberate wait: load balancers need time to see NOT_SERVING.
      absl::SleepFor(shutdown_delay_);
    }
    // Drain while the listener still accepts: calls made meanwhile reach the service, which
    // answers UNAVAILABLE. Once grpc::Server::Shutdown() starts, a call that crosses its GOAWAY
    // can be answered CANCELLED by gRPC itself (seen with gRPC 1.51), so that comes last.
    const absl::Time deadline = absl::Now() + drain_timeout;
    stage("draining inference calls in flight");
    if (!in_flight_->AwaitIdle(deadline)) {
      spdlog::warn("drain timeout ({}) passed with {} inference call(s) in flight; cancelling",
                   absl::FormatDuration(drain_timeout), in_flight_->count());
    }
    // Cancels whatever is still running (health watches, say) at the deadline; then waits for
    // every call to be finished, so a call whose model still runs holds it.
    stage("closing the gRPC endpoint (waiting for cancelled calls whose model still runs)");
    grpc_server_->Shutdown(absl::ToChronoTime(deadline));
  }
  spdlog::debug("gRPC endpoint closed; stopping models");
  // No more loads: the repository's poller stops before the models do.
  stage("stopping the model repository (waiting for a poll or load in progress)");
  repository_.reset();
  stage("stopping the models (waiting for the batches they run)");
  if (registry_ != nullptr) registry_->ShutdownAll();
  spdlog::debug("models stopped; closing metrics endpoint");
  stage("closing the metrics endpoint (waiting for a scrape in progress)");
  metrics_endpoint_.reset();
  stage("stopped");
}

}  // namespace coalesce
