#ifndef COALESCE_TESTS_ECHO_TEST_SERVER_H_
#define COALESCE_TESTS_ECHO_TEST_SERVER_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "execution/demo_model.h"
#include "execution/echo_backend.h"
#include "proto/inference.grpc.pb.h"
#include "server/server.h"

namespace coalesce {

// The demo model's shape ([batch, 32, 256] FP32 in, the same out) over the echo backend: a
// server that costs one memcpy per batch, for tests of the RPC layer.
inline constexpr int64_t kEchoMaxBatch = 8;
inline constexpr int64_t kEchoRowFloats = DemoModel::kTokens * DemoModel::kWidth;

// The echo demo model's backend.
inline std::unique_ptr<EchoBackend> MakeEchoBackend() {
  auto backend = EchoBackend::Create(DemoModel::Metadata(kEchoMaxBatch));
  return backend.ok() ? *std::move(backend) : nullptr;
}

// A real server on loopback, on ports the kernel picks, serving one model over `backend` (one
// worker) with `options` (whose addresses are replaced).
inline absl::StatusOr<std::unique_ptr<Server>> StartServerWith(std::unique_ptr<Backend> backend,
                                                               Server::Options options) {
  if (backend == nullptr) return absl::InternalError("no backend");
  auto metrics = std::make_unique<ServerMetrics>(std::make_shared<prometheus::Registry>());
  ServedModel::Options model_options;
  model_options.num_workers = 1;
  auto model = ServedModel::Create(model_options, std::move(backend), metrics.get(),
                                   Clock::Real());
  if (!model.ok()) return model.status();
  auto registry = std::make_unique<ModelRegistry>();
  if (absl::Status s = registry->Add(*std::move(model)); !s.ok()) return s;
  options.grpc_address = "127.0.0.1:0";
  options.metrics_address = "127.0.0.1:0";
  return Server::Start(options, std::move(registry), std::move(metrics), Clock::Real());
}

// StartServerWith() the echo demo model.
inline absl::StatusOr<std::unique_ptr<Server>> StartEchoServer(Server::Options options) {
  return StartServerWith(MakeEchoBackend(), std::move(options));
}

// A stub for `server`'s gRPC endpoint over a plaintext loopback channel with gRPC's default
// arguments (its default metadata and message limits among them).
inline std::unique_ptr<inference::GRPCInferenceService::Stub> LoopbackStub(const Server& server) {
  return inference::GRPCInferenceService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", server.grpc_port()), grpc::InsecureChannelCredentials()));
}

// A request for the echo demo model of `rows` rows, every value `value`.
inline inference::ModelInferRequest EchoRequest(int64_t rows, float value = 1.5f) {
  inference::ModelInferRequest request;
  request.set_model_name("demo");
  auto* tensor = request.add_inputs();
  tensor->set_name("INPUT0");
  tensor->set_datatype("FP32");
  for (int64_t d : {rows, DemoModel::kTokens, DemoModel::kWidth}) tensor->add_shape(d);
  std::vector<float> values(rows * kEchoRowFloats, value);
  request.add_raw_input_contents()->assign(reinterpret_cast<const char*>(values.data()),
                                           values.size() * sizeof(float));
  return request;
}

}  // namespace coalesce

#endif  // COALESCE_TESTS_ECHO_TEST_SERVER_H_
