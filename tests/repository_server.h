#ifndef COALESCE_TESTS_REPOSITORY_SERVER_H_
#define COALESCE_TESTS_REPOSITORY_SERVER_H_

// A real server on loopback serving a model repository of small TorchScript models that the test
// writes (see tests/torchscript_models.h), on CPU, on ports the kernel picks.

#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "execution/torch/torch_backend.h"
#include "proto/inference.grpc.pb.h"
#include "repository/model_repository.h"
#include "server/server.h"
#include "server/torch_backend_factory.h"
#include "tests/torchscript_models.h"

namespace coalesce {

// A model of two FP32 values per row that multiplies them by `factor`, batched up to 16.
inline std::string ScaleModelConfig(const std::string& name) {
  return absl::StrCat(R"pb(name: ")pb", name, R"pb("
    platform: "pytorch_libtorch"
    max_batch_size: 16
    input [ { name: "X" data_type: TYPE_FP32 dims: [ 2 ] } ]
    output [ { name: "Y" data_type: TYPE_FP32 dims: [ 2 ] } ]
  )pb");
}
inline std::string ScaleModelForward(int factor) {
  return absl::StrCat("\ndef forward(self, x):\n    return x * ", factor, ".0\n");
}

// Writes <root>/<name>/config.pbtxt and <root>/<name>/<version>/model.pt.
inline absl::Status WriteRepositoryModel(const std::filesystem::path& root,
                                         const std::string& name, const std::string& config,
                                         int version, const std::string& forward) {
  std::filesystem::create_directories(root / name / std::to_string(version));
  std::ofstream(root / name / "config.pbtxt", std::ios::binary) << config;
  return SaveTorchScript((root / name / std::to_string(version) / "model.pt").string(), forward);
}

using ControlMode = ModelRepository::ControlMode;

// Serves the repository at `root` in `mode`, loading `startup`.
// `override_files` bounds loads that bring files. `configure`, if set, changes the repository's
// options last; `repository`, if set, receives the repository the server then owns.
inline absl::StatusOr<std::unique_ptr<Server>> StartRepositoryServer(
    const std::filesystem::path& root, ControlMode mode,
    std::vector<std::string> startup = {"*"},
    const OverrideModelFolder::Options& override_files = {},
    const std::function<void(ModelRepository::Options&)>& configure = nullptr,
    ModelRepository** repository_out = nullptr) {
  auto metrics = std::make_unique<ServerMetrics>(std::make_shared<prometheus::Registry>());
  auto registry = std::make_unique<ModelRegistry>();
  ModelRepository::Options options;
  options.root = root.string();
  options.control_mode = mode;
  options.startup_models = std::move(startup);
  options.model_defaults.num_workers = 1;
  TorchBackend::Options torch;
  torch.device = DeviceKind::kCpu;
  options.backend_factory = TorchBackendFactory(torch);
  options.override_files = override_files;
  if (configure) configure(options);
  auto repository = ModelRepository::Create(options, registry.get(), metrics.get(), Clock::Real());
  if (!repository.ok()) return repository.status();
  if (repository_out != nullptr) *repository_out = repository->get();
  Server::Options server_options;
  server_options.grpc_address = "127.0.0.1:0";
  server_options.metrics_address = "127.0.0.1:0";
  return Server::Start(server_options, std::move(registry), std::move(metrics), Clock::Real(),
                       *std::move(repository));
}

// A test with a repository of its own (a fresh folder per test, removed after it) and a server
// over it, with helpers for the control RPCs and for requests to ScaleModelConfig models.
class RepositoryServerTest : public testing::Test {
 protected:
  void SetUp() override {
    const testing::TestInfo* test = testing::UnitTest::GetInstance()->current_test_info();
    root_ = std::filesystem::path(testing::TempDir()) /
            absl::StrCat("coalesce_", test->test_suite_name(), "_", test->name(), "_", getpid());
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(5));
    server_.reset();
    std::filesystem::remove_all(root_);
  }

  void Start(ControlMode mode, std::vector<std::string> startup,
             const OverrideModelFolder::Options& override_files = {}) {
    auto server = StartRepositoryServer(root_, mode, std::move(startup), override_files,
                                        configure_, &repository_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = inference::GRPCInferenceService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_->grpc_port()), grpc::InsecureChannelCredentials()));
  }

  // ModelReady's answer; fails the test if the call itself fails.
  bool Ready(const std::string& name, const std::string& version = "") {
    grpc::ClientContext context;
    inference::ModelReadyRequest request;
    request.set_name(name);
    request.set_version(version);
    inference::ModelReadyResponse response;
    grpc::Status status = stub_->ModelReady(&context, request, &response);
    EXPECT_TRUE(status.ok()) << name << ": " << status.error_message();
    return response.ready();
  }
  grpc::Status Load(const inference::RepositoryModelLoadRequest& request) {
    grpc::ClientContext context;
    inference::RepositoryModelLoadResponse response;
    return stub_->RepositoryModelLoad(&context, request, &response);
  }
  grpc::Status Load(const std::string& name) {
    inference::RepositoryModelLoadRequest request;
    request.set_model_name(name);
    return Load(request);
  }
  grpc::Status Unload(const std::string& name) {
    grpc::ClientContext context;
    inference::RepositoryModelUnloadRequest request;
    request.set_model_name(name);
    inference::RepositoryModelUnloadResponse response;
    return stub_->RepositoryModelUnload(&context, request, &response);
  }
  // One request of `rows` rows [1, 2] to a ScaleModelConfig-shaped model.
  grpc::Status Infer(const std::string& name, inference::ModelInferResponse* response,
                     int rows = 1) {
    inference::ModelInferRequest request;
    request.set_model_name(name);
    auto* input = request.add_inputs();
    input->set_name("X");
    input->set_datatype("FP32");
    input->add_shape(rows);
    input->add_shape(2);
    std::vector<float> values;
    for (int r = 0; r < rows; ++r) values.insert(values.end(), {1, 2});
    request.add_raw_input_contents(
        std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return stub_->ModelInfer(&context, request, response);
  }
  // The first output of `response` as floats.
  static std::vector<float> Floats(const inference::ModelInferResponse& response) {
    const std::string& bytes = response.raw_output_contents(0);
    std::vector<float> values(bytes.size() / sizeof(float));
    std::memcpy(values.data(), bytes.data(), values.size() * sizeof(float));
    return values;
  }

  std::filesystem::path root_;
  // Set before Start() to change the repository's options.
  std::function<void(ModelRepository::Options&)> configure_;
  std::unique_ptr<Server> server_;
  // The repository server_ serves (owned by it), to poll by hand.
  ModelRepository* repository_ = nullptr;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
};

}  // namespace coalesce

#endif  // COALESCE_TESTS_REPOSITORY_SERVER_H_
