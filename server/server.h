#ifndef COALESCE_SERVER_SERVER_H_
#define COALESCE_SERVER_SERVER_H_

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "core/model_registry.h"
#include "core/model_repository.h"
#include "server/inference_service.h"
#include "server/metrics_endpoint.h"

namespace coalesce {

// A running coalesce server: the gRPC endpoint (inference service, health checking, reflection)
// and the Prometheus endpoint, over a set of models.
//
// Thread-safety: `Shutdown()` is called once, from the thread that owns the server.
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
  };

  // Starts serving `registry`'s models. `metrics` is the registry those models record into.
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

  // Readiness turns false (ServerReady, ModelReady, gRPC health), new calls get UNAVAILABLE or
  // are refused, calls in flight finish for up to `drain_timeout` (then are cancelled), the
  // models run what they hold, and both endpoints close. Idempotent.
  void Shutdown(absl::Duration drain_timeout);

 private:
  Server() = default;
  // Refreshes the gauges that are sampled rather than counted (memory, queue depth).
  void SampleGauges();

  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<ModelRegistry> registry_;
  // Loads into registry_; destroyed first.
  std::unique_ptr<ModelRepository> repository_;
  std::unique_ptr<InferenceService> service_;
  std::unique_ptr<grpc::Server> grpc_server_;
  std::unique_ptr<MetricsEndpoint> metrics_endpoint_;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  bool shut_down_ = false;
};

}  // namespace coalesce

#endif  // COALESCE_SERVER_SERVER_H_
