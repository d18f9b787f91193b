#ifndef COALESCE_SERVER_SERVER_H_
#define COALESCE_SERVER_SERVER_H_

#include <atomic>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/clock.h"
#include "repository/model_repository.h"
#include "server/connection_limits.h"
#include "server/gpu_utilization.h"
#include "server/in_flight_calls.h"
#include "server/inference_service.h"
#include "server/metrics_endpoint.h"
#include "server/request_tracer.h"
#include "server/rotating_tls_credentials.h"
#include "server/shared_memory_manager.h"
#include "server/tls.h"
#include "serving/metrics.h"
#include "serving/model_registry.h"

namespace coalesce {

// A running coalesce server: the gRPC endpoint (inference service, health checking, reflection)
// and the Prometheus endpoint, over a set of models.
//
// Thread-safety: `Shutdown()` is called once, from the thread that owns the server.
// ReloadTls() may be called from any thread until the server is destroyed.
class Server {
 public:
  struct Options {
    // host:port of the gRPC endpoint; port 0 picks a free one (see grpc_port()).
    std::string grpc_address = "127.0.0.1:8001";
    // host:port of the /metrics endpoint; port 0 picks a free one (see metrics_port()).
    std::string metrics_address = "127.0.0.1:8002";
    // Largest request or response message, in bytes; larger ones are refused by gRPC with
    // RESOURCE_EXHAUSTED.
    int max_message_bytes = 64 << 20;
    // What one client connection may hold, and when idle or dead ones are closed.
    ConnectionLimits connections;
    // How the gRPC endpoint secures connections; plaintext by default (see TlsOptions). With
    // TLS, ReloadTls() replaces the certificates while the server runs.
    TlsOptions tls;
    // Checks every call of the inference service (a BearerTokenAuthorizer, say); none by
    // default. gRPC health checking and reflection are never checked, so that probes need no
    // credentials.
    InferenceService::Authorizer authorizer;
    // At Shutdown(), how long the endpoint keeps accepting calls after readiness turns false, so
    // that load balancers and Kubernetes see NOT_SERVING and stop routing here before the
    // listener closes. Calls in that window get UNAVAILABLE ("server is shutting down") from the
    // service; in-flight calls keep running. Zero (the default) closes the listener at once.
    absl::Duration shutdown_delay = absl::ZeroDuration();
    // Request tracing (TraceSetting): the trace file, writable at start, and the settings at
    // start (off by default). No file: tracing cannot be turned on.
    RequestTracer::Options trace;
    // Most shared-memory regions (Triton's system and CUDA shared-memory extensions) registered
    // at once; 0 turns the extension off (see SharedMemoryManager::Options).
    int max_shared_memory_regions = 64;
    // Opens CUDA IPC handles (OpenCudaIpcMemory, from the LibTorch layer); empty: the CUDA
    // shared-memory extension answers UNIMPLEMENTED.
    CudaIpcOpener cuda_ipc_opener;
    // NVML, dlopened once a model runs on a CUDA device, for coalesce_gpu_utilization_ratio
    // (GpuUtilization); whether it loaded is logged once. Empty: never loaded.
    std::string nvml_library = "libnvidia-ml.so.1";
  };

  // Starts serving `registry`'s models. `metrics` is the registry those models record into.
  // INVALID_ARGUMENT for bad options (TLS that does not validate, say), UNAVAILABLE if an
  // address cannot be served.
  // `repository`, if any, is where `registry`'s models were loaded from; it serves the
  // repository RPCs and keeps loading into `registry`.
  static absl::StatusOr<std::unique_ptr<Server>> Start(
      const Options& options, std::unique_ptr<ModelRegistry> registry,
      std::unique_ptr<ServerMetrics> metrics, Clock* clock,
      std::unique_ptr<ModelRepository> repository = nullptr);
  // Shuts down (see Shutdown()).
  ~Server();

  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  const ModelRegistry& registry() const { return *registry_; }

  // Readiness turns false (ServerReady, ModelReady, gRPC health) and new inference calls get
  // UNAVAILABLE from the service. After Options::shutdown_delay, the inference calls in flight
  // get up to `drain_timeout` to finish while the listener still accepts (so new calls keep
  // getting UNAVAILABLE from the service); then the gRPC listener closes, whatever still runs
  // is cancelled, the models run what they hold, and both endpoints close. Idempotent.
  void Shutdown(absl::Duration drain_timeout);

  // Serves `tls` to new connections from within RotatingTlsCredentials::kRefreshSeconds on;
  // open connections keep theirs. On error (it does not validate, TLS was off at start, or it
  // would change between TLS and mutual TLS) the current certificates keep serving; see
  // RotatingTlsCredentials::Replace(). Thread-safe.
  absl::Status ReloadTls(const TlsOptions& tls);
  // DescribeTls() of what the endpoint serves now.
  std::string DescribeServedTls() const;

  // What Shutdown() is doing now and the inference calls still in flight, in words (for the
  // report of a shutdown that takes too long; see ShutdownWatchdog). Thread-safe.
  std::string ShutdownProgress() const;

 private:
  Server() = default;
  // Refreshes the gauges that are sampled rather than counted (memory, queue depth, device
  // busy time, GPU utilisation).
  void SampleGauges();
  // Loads NVML (Options::nvml_library) the first time a model runs on a CUDA device. Called
  // before the metrics endpoint starts, then only on its thread (from SampleGauges()).
  void LoadNvmlOnce();

  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<ModelRegistry> registry_;
  // Loads into registry_; destroyed first.
  std::unique_ptr<ModelRepository> repository_;
  // Outlives service_, which writes traces into it.
  std::unique_ptr<RequestTracer> tracer_;
  // Regions that requests may name; outlives service_. Requests hold the regions they use.
  std::unique_ptr<SharedMemoryManager> shared_memory_;
  std::unique_ptr<InferenceService> service_;
  // Counts the service's calls for the drain; outlives grpc_server_, whose calls it counts.
  std::unique_ptr<InFlightCalls> in_flight_;
  // The TLS material gRPC watches (none for plaintext); outlives grpc_server_, which reads it.
  std::unique_ptr<RotatingTlsCredentials> tls_;
  std::unique_ptr<grpc::Server> grpc_server_;
  // NVML's utilisation, once loaded; used on the metrics endpoint's thread.
  std::string nvml_library_;
  bool nvml_tried_ = false;
  std::unique_ptr<GpuUtilization> gpu_utilization_;
  std::unique_ptr<MetricsEndpoint> metrics_endpoint_;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  absl::Duration shutdown_delay_ = absl::ZeroDuration();
  bool shut_down_ = false;
  // The step Shutdown() is in, for ShutdownProgress(); a string literal.
  std::atomic<const char*> shutdown_stage_{"not shutting down"};
};

}  // namespace coalesce

#endif  // COALESCE_SERVER_SERVER_H_
