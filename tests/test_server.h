#ifndef COALESCE_TESTS_TEST_SERVER_H_
#define COALESCE_TESTS_TEST_SERVER_H_

#include <memory>
#include <utility>

#include "absl/status/statusor.h"
#include "execution/backend.h"
#include "server/server.h"
#include "serving/served_model.h"

namespace coalesce {

// A real server on loopback, on ports the kernel picks, serving one model over `backend`.
inline absl::StatusOr<std::unique_ptr<Server>> StartLoopbackServer(
    std::unique_ptr<Backend> backend, const ServedModel::Options& model_options) {
  auto metrics = std::make_unique<ServerMetrics>(std::make_shared<prometheus::Registry>());
  auto model = ServedModel::Create(model_options, std::move(backend), metrics.get(),
                                   Clock::Real());
  if (!model.ok()) return model.status();
  auto registry = std::make_unique<ModelRegistry>();
  if (absl::Status s = registry->Add(*std::move(model)); !s.ok()) return s;
  Server::Options options;
  options.grpc_address = "127.0.0.1:0";
  options.metrics_address = "127.0.0.1:0";
  return Server::Start(options, std::move(registry), std::move(metrics), Clock::Real());
}

}  // namespace coalesce

#endif  // COALESCE_TESTS_TEST_SERVER_H_
