// A Triton-style model repository of small TorchScript models written by the test itself, served
// by a real server over loopback: several models at once, every datatype path, variable sizes,
// broken models beside good ones, and load/unload/reload while requests flow.
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "execution/torch/torch_backend.h"
#include "proto/inference.grpc.pb.h"
#include "repository/model_repository.h"
#include "server/server.h"
#include "server/torch_backend_factory.h"
#include "tests/http_get.h"
#include "tests/torchscript_models.h"

namespace coalesce {
namespace {

namespace fs = std::filesystem;
using inference::GRPCInferenceService;
using inference::ModelInferRequest;
using inference::ModelInferResponse;

void WriteFile(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

void WriteModel(const fs::path& root, const std::string& name, const std::string& config,
                int version, const std::string& forward) {
  WriteFile(root / name / "config.pbtxt", config);
  fs::create_directories(root / name / std::to_string(version));
  ASSERT_TRUE(SaveTorchScript((root / name / std::to_string(version) / "model.pt").string(),
                              forward)
                  .ok());
}

constexpr char kMultiConfig[] = R"pb(
  name: "multi"
  platform: "pytorch_libtorch"
  max_batch_size: 8
  input [
    { name: "X" data_type: TYPE_FP32 dims: [ 4 ] },
    { name: "N" data_type: TYPE_INT64 dims: [ 4 ] },
    { name: "FLAG" data_type: TYPE_BOOL dims: [ 4 ] }
  ]
  output [
    { name: "SUM" data_type: TYPE_FP32 dims: [ 4 ] },
    { name: "MASKED" data_type: TYPE_FP32 dims: [ 4 ] },
    { name: "POSITIVE" data_type: TYPE_BOOL dims: [ 4 ] }
  ]
)pb";
constexpr char kMultiForward[] = R"(
def forward(self, x, n, flag):
    return x + n.float(), torch.where(flag, x, torch.zeros_like(x)), x > 0
)";

constexpr char kSeqConfig[] = R"pb(
  name: "seq"
  backend: "pytorch"
  max_batch_size: 8
  input [ { name: "TOKENS" data_type: TYPE_INT64 dims: [ -1 ] } ]
  output [ { name: "DOUBLED" data_type: TYPE_INT64 dims: [ -1 ] } ]
)pb";
constexpr char kSeqForward[] = R"(
def forward(self, tokens):
    return tokens * 2
)";

std::string ScaleConfig(const std::string& name) {
  return absl::StrCat(R"pb(name: ")pb", name, R"pb("
    platform: "pytorch_libtorch"
    max_batch_size: 16
    input [ { name: "X" data_type: TYPE_FP32 dims: [ 2 ] } ]
    output [ { name: "Y" data_type: TYPE_FP32 dims: [ 2 ] } ]
  )pb");
}
std::string ScaleForward(int factor) {
  return absl::StrCat("\ndef forward(self, x):\n    return x * ", factor, ".0\n");
}

// The repository every test serves, written once.
fs::path Repository() {
  static const fs::path* root = [] {
    auto* path = new fs::path(fs::path(testing::TempDir()) /
                              absl::StrCat("coalesce_repo_", getpid()));
    fs::remove_all(*path);
    WriteModel(*path, "multi", kMultiConfig, 1, kMultiForward);
    WriteModel(*path, "seq", kSeqConfig, 1, kSeqForward);
    WriteModel(*path, "scale", ScaleConfig("scale"), 1, ScaleForward(1));
    // Not TorchScript.
    WriteFile(*path / "broken" / "config.pbtxt", ScaleConfig("broken"));
    WriteFile(*path / "broken" / "1" / "model.pt", "this is not a TorchScript archive");
    // Real TorchScript whose output contradicts the config's dims.
    WriteModel(*path, "mismatch", ScaleConfig("mismatch"), 1,
               "\ndef forward(self, x):\n    return torch.cat([x, x], 1)\n");
    // Two versions, both served.
    WriteModel(*path, "versions", ScaleConfig("versions") + "version_policy: { all: {} }\n", 1,
               ScaleForward(1));
    WriteModel(*path, "versions", ScaleConfig("versions") + "version_policy: { all: {} }\n", 2,
               ScaleForward(2));
    // Returns a wrong shape, but only for inputs above 1000: passes its dry run, fails later.
    WriteModel(*path, "wrongshape", ScaleConfig("wrongshape"), 1,
               "\ndef forward(self, x):\n    if bool(x.max() > 1000.0):\n"
               "        return torch.cat([x, x], 1)\n    return x\n");
    // A config and no version folder.
    WriteFile(*path / "noversion" / "config.pbtxt", ScaleConfig("noversion"));
    return path;
  }();
  return *root;
}

class RepositoryTest : public testing::Test {
 protected:
  // Serves a copy of the repository (tests that change it get their own).
  void Start(ModelRepository::ControlMode mode, const fs::path& root = Repository(),
             std::vector<std::string> startup = {"*"}) {
    auto metrics = std::make_unique<ServerMetrics>(std::make_shared<prometheus::Registry>());
    auto registry = std::make_unique<ModelRegistry>();
    ModelRepository::Options options;
    options.root = root.string();
    options.control_mode = mode;
    options.startup_models = std::move(startup);
    options.model_defaults.num_workers = 2;
    TorchBackend::Options torch;
    torch.device = DeviceKind::kCpu;
    options.backend_factory = TorchBackendFactory(torch);
    auto repository =
        ModelRepository::Create(options, registry.get(), metrics.get(), Clock::Real());
    ASSERT_TRUE(repository.ok()) << repository.status();
    Server::Options server_options;
    server_options.grpc_address = "127.0.0.1:0";
    server_options.metrics_address = "127.0.0.1:0";
    auto server = Server::Start(server_options, std::move(registry), std::move(metrics),
                                Clock::Real(), *std::move(repository));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = GRPCInferenceService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_->grpc_port()), grpc::InsecureChannelCredentials()));
  }

  grpc::Status Infer(const ModelInferRequest& request, ModelInferResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return stub_->ModelInfer(&context, request, response);
  }

  // A request for `scale`-shaped models: one row [value, -value].
  static ModelInferRequest ScaleRequest(const std::string& model, float value) {
    ModelInferRequest request;
    request.set_model_name(model);
    auto* input = request.add_inputs();
    input->set_name("X");
    input->set_datatype("FP32");
    input->add_shape(1);
    input->add_shape(2);
    float row[2] = {value, -value};
    request.add_raw_input_contents(std::string(reinterpret_cast<char*>(row), sizeof(row)));
    return request;
  }

  template <typename T>
  static std::vector<T> Values(const std::string& bytes) {
    std::vector<T> values(bytes.size() / sizeof(T));
    std::memcpy(values.data(), bytes.data(), values.size() * sizeof(T));
    return values;
  }

  std::unique_ptr<Server> server_;
  std::unique_ptr<GRPCInferenceService::Stub> stub_;
};

TEST_F(RepositoryTest, MultiInputMultiOutputModelTakesFp32Int64AndBool) {
  Start(ModelRepository::ControlMode::kNone);
  ModelInferRequest request;
  request.set_model_name("multi");
  request.set_id("multi-1");
  auto add = [&](const char* name, const char* type) {
    auto* input = request.add_inputs();
    input->set_name(name);
    input->set_datatype(type);
    input->add_shape(1);
    input->add_shape(4);
    return input;
  };
  // Typed contents for each datatype: fp32, int64 and bool.
  auto* x = add("X", "FP32");
  for (float v : {1.5f, -2.0f, 0.25f, -0.5f}) x->mutable_contents()->add_fp32_contents(v);
  auto* n = add("N", "INT64");
  for (int64_t v : {10, 20, -30, 40}) n->mutable_contents()->add_int64_contents(v);
  auto* flag = add("FLAG", "BOOL");
  for (bool v : {true, false, true, false}) flag->mutable_contents()->add_bool_contents(v);

  ModelInferResponse response;
  grpc::Status status = Infer(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.id(), "multi-1");
  ASSERT_EQ(response.outputs_size(), 3);
  EXPECT_EQ(response.outputs(0).name(), "SUM");
  EXPECT_EQ(response.outputs(2).datatype(), "BOOL");
  EXPECT_EQ(Values<float>(response.raw_output_contents(0)),
            (std::vector<float>{11.5f, 18.0f, -29.75f, 39.5f}));
  EXPECT_EQ(Values<float>(response.raw_output_contents(1)),
            (std::vector<float>{1.5f, 0.0f, 0.25f, 0.0f}));
  EXPECT_EQ(Values<uint8_t>(response.raw_output_contents(2)),
            (std::vector<uint8_t>{1, 0, 1, 0}));
}

TEST_F(RepositoryTest, RequestedOutputSubsetComesBackAlone) {
  Start(ModelRepository::ControlMode::kNone);
  ModelInferRequest request;
  request.set_model_name("multi");
  const char* names[] = {"X", "N", "FLAG"};
  const char* types[] = {"FP32", "INT64", "BOOL"};
  const int sizes[] = {4, 8, 1};
  for (int i = 0; i < 3; ++i) {
    auto* input = request.add_inputs();
    input->set_name(names[i]);
    input->set_datatype(types[i]);
    input->add_shape(2);
    input->add_shape(4);
    std::string bytes(2 * 4 * sizes[i], '\0');
    if (i == 0) {
      float x[8] = {1, -1, 2, -2, 3, -3, 4, -4};
      std::memcpy(bytes.data(), x, sizeof(x));
    }
    request.add_raw_input_contents(bytes);
  }
  request.add_outputs()->set_name("POSITIVE");
  ModelInferResponse response;
  grpc::Status status = Infer(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).name(), "POSITIVE");
  EXPECT_EQ(std::vector<int64_t>(response.outputs(0).shape().begin(),
                                 response.outputs(0).shape().end()),
            (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(Values<uint8_t>(response.raw_output_contents(0)),
            (std::vector<uint8_t>{1, 0, 1, 0, 1, 0, 1, 0}));
}

TEST_F(RepositoryTest, VariableLengthRequestsOfMixedLengthsAreAllAnsweredWithTheirOwnShape) {
  Start(ModelRepository::ControlMode::kNone);
  constexpr int kClients = 6, kEach = 8;
  std::atomic<int> wrong{0}, failed{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      for (int k = 0; k < kEach; ++k) {
        const int length = 1 + (c + k) % 5;
        ModelInferRequest request;
        request.set_model_name("seq");
        auto* input = request.add_inputs();
        input->set_name("TOKENS");
        input->set_datatype("INT64");
        input->add_shape(1);
        input->add_shape(length);
        std::vector<int64_t> tokens(length);
        for (int t = 0; t < length; ++t) tokens[t] = 100 * c + 10 * k + t;
        request.add_raw_input_contents(
            std::string(reinterpret_cast<char*>(tokens.data()), length * sizeof(int64_t)));
        ModelInferResponse response;
        if (!Infer(request, &response).ok()) {
          ++failed;
          continue;
        }
        std::vector<int64_t> expected(length);
        for (int t = 0; t < length; ++t) expected[t] = 2 * tokens[t];
        std::vector<int64_t> shape(response.outputs(0).shape().begin(),
                                   response.outputs(0).shape().end());
        if (Values<int64_t>(response.raw_output_contents(0)) != expected ||
            shape != std::vector<int64_t>{1, length}) {
          ++wrong;
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
}

TEST_F(RepositoryTest, BrokenModelsAreUnavailableWithTheirReasonWhileOthersServe) {
  Start(ModelRepository::ControlMode::kNone);
  grpc::ClientContext context;
  inference::RepositoryIndexRequest index_request;
  inference::RepositoryIndexResponse index;
  ASSERT_TRUE(stub_->RepositoryIndex(&context, index_request, &index).ok());
  std::map<std::string, std::pair<std::string, std::string>> state;
  for (const auto& m : index.models()) state[m.name()] = {m.state(), m.reason()};
  EXPECT_EQ(state["multi"].first, "READY");
  EXPECT_EQ(state["seq"].first, "READY");
  EXPECT_EQ(state["broken"].first, "UNAVAILABLE");
  EXPECT_NE(state["broken"].second.find("TorchScript"), std::string::npos) << state["broken"].second;
  EXPECT_EQ(state["mismatch"].first, "UNAVAILABLE");
  EXPECT_NE(state["mismatch"].second.find("shape"), std::string::npos) << state["mismatch"].second;
  EXPECT_EQ(state["noversion"].first, "UNAVAILABLE");
  EXPECT_NE(state["noversion"].second.find("version"), std::string::npos)
      << state["noversion"].second;

  grpc::ClientContext ready_context;
  inference::ModelReadyRequest ready_request;
  ready_request.set_name("broken");
  inference::ModelReadyResponse ready;
  ASSERT_TRUE(stub_->ModelReady(&ready_context, ready_request, &ready).ok());
  EXPECT_FALSE(ready.ready());

  ModelInferResponse response;
  grpc::Status status = Infer(ScaleRequest("broken", 1), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(status.error_message().rfind("Request for unknown model: 'broken' has no available "
                                        "versions (load failed for model 'broken': ",
                                        0),
            0u)
      << status.error_message();
  ASSERT_TRUE(Infer(ScaleRequest("scale", 3), &response).ok());
  EXPECT_EQ(Values<float>(response.raw_output_contents(0)), (std::vector<float>{3, -3}));
}

TEST_F(RepositoryTest, AModelReturningAWrongShapeFailsItsBatchClearlyAndServesTheNext) {
  Start(ModelRepository::ControlMode::kNone);
  ModelInferResponse response;
  grpc::Status bad = Infer(ScaleRequest("wrongshape", 5000), &response);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_NE(bad.error_message().find("returned shape [1, 4] for output 'Y', expected [1, 2]"),
            std::string::npos)
      << bad.error_message();
  for (float value : {1.0f, 7.0f}) {
    ModelInferResponse good;
    ASSERT_TRUE(Infer(ScaleRequest("wrongshape", value), &good).ok());
    EXPECT_EQ(Values<float>(good.raw_output_contents(0)), (std::vector<float>{value, -value}));
  }
}

TEST_F(RepositoryTest, ModelConfigAndStatisticsDescribeTheServedModel) {
  Start(ModelRepository::ControlMode::kNone);
  ModelInferResponse response;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Infer(ScaleRequest("scale", i), &response).ok());

  grpc::ClientContext config_context;
  inference::ModelConfigRequest config_request;
  config_request.set_name("scale");
  inference::ModelConfigResponse config;
  ASSERT_TRUE(stub_->ModelConfig(&config_context, config_request, &config).ok());
  EXPECT_EQ(config.config().name(), "scale");
  EXPECT_EQ(config.config().max_batch_size(), 16);
  ASSERT_EQ(config.config().input_size(), 1);
  EXPECT_EQ(config.config().input(0).data_type(), inference::TYPE_FP32);

  grpc::ClientContext stats_context;
  inference::ModelStatisticsRequest stats_request;
  stats_request.set_name("scale");
  inference::ModelStatisticsResponse stats;
  ASSERT_TRUE(stub_->ModelStatistics(&stats_context, stats_request, &stats).ok());
  ASSERT_EQ(stats.model_stats_size(), 1);
  const auto& s = stats.model_stats(0);
  EXPECT_EQ(s.version(), "1");
  EXPECT_EQ(s.inference_count(), 3u);
  EXPECT_EQ(s.inference_stats().success().count(), 3u);
  EXPECT_EQ(s.inference_stats().fail().count(), 0u);
  EXPECT_EQ(s.inference_stats().queue().count(), 3u);
  // Three sequential requests: three batches of one.
  EXPECT_EQ(s.execution_count(), 3u);
  ASSERT_EQ(s.batch_stats_size(), 1);
  EXPECT_EQ(s.batch_stats(0).batch_size(), 1u);
  EXPECT_EQ(s.batch_stats(0).compute_infer().count(), 3u);
  EXPECT_GT(s.batch_stats(0).compute_infer().ns(), 0u);
  EXPECT_GT(s.last_inference(), 0u);
}

TEST_F(RepositoryTest, ControlRpcsNeedExplicitModeAndNamesInsideTheRepository) {
  Start(ModelRepository::ControlMode::kNone);
  auto load = [&](const std::string& name) {
    grpc::ClientContext context;
    inference::RepositoryModelLoadRequest request;
    request.set_model_name(name);
    inference::RepositoryModelLoadResponse response;
    return stub_->RepositoryModelLoad(&context, request, &response);
  };
  EXPECT_EQ(load("scale").error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  server_.reset();

  Start(ModelRepository::ControlMode::kExplicit, Repository(), {"scale"});
  EXPECT_EQ(load("../etc").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(load("scale/1").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(load(".hidden").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(load("").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::Status missing = load("no_such_model");
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::INTERNAL);  // Triton's "failed to poll".
  EXPECT_NE(missing.error_message().find("no_such_model"), std::string::npos);
  // Only the named model was loaded at start.
  ModelInferResponse response;
  EXPECT_EQ(Infer(ScaleRequest("multi", 1), &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(load("multi").ok());
  EXPECT_TRUE(Infer(ScaleRequest("scale", 1), &response).ok());
}

TEST_F(RepositoryTest, ReloadUnderLoadDropsNoRequestAndUnloadThenLoadServesAgain) {
  // A repository of its own: this test adds a version.
  const fs::path root = fs::path(testing::TempDir()) / absl::StrCat("coalesce_reload_", getpid());
  fs::remove_all(root);
  WriteModel(root, "scale", ScaleConfig("scale"), 1, ScaleForward(1));
  Start(ModelRepository::ControlMode::kExplicit, root, {"scale"});

  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0}, wrong{0}, doubled{0};
  std::string first_failure;
  std::mutex failure_mu;
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      for (int k = 0; !stop.load(); ++k) {
        const float value = static_cast<float>(c * 1000 + k % 1000 + 1);
        ModelInferResponse response;
        grpc::Status status = Infer(ScaleRequest("scale", value), &response);
        if (!status.ok()) {
          std::lock_guard<std::mutex> lock(failure_mu);
          if (failed++ == 0) first_failure = status.error_message();
          continue;
        }
        ++ok;
        std::vector<float> y = Values<float>(response.raw_output_contents(0));
        // Version 1 doubles nothing, version 2 doubles; either is right, nothing else is.
        if (y == std::vector<float>{value, -value} && response.model_version() == "1") continue;
        if (y == std::vector<float>{2 * value, -2 * value} && response.model_version() == "2") {
          ++doubled;
          continue;
        }
        ++wrong;
      }
    });
  }
  auto load = [&](const std::string& name) {
    grpc::ClientContext context;
    inference::RepositoryModelLoadRequest request;
    request.set_model_name(name);
    inference::RepositoryModelLoadResponse response;
    return stub_->RepositoryModelLoad(&context, request, &response);
  };
  while (ok.load() < 50) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  // Version 2 appears; reloading serves the latest version.
  fs::create_directories(root / "scale" / "2");
  ASSERT_TRUE(SaveTorchScript((root / "scale" / "2" / "model.pt").string(), ScaleForward(2)).ok());
  grpc::Status reloaded = load("scale");
  ASSERT_TRUE(reloaded.ok()) << reloaded.error_message();
  const int before = doubled.load();
  while (doubled.load() < before + 50) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_EQ(failed.load(), 0) << first_failure;
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(doubled.load(), 0);

  // Unload: the model is gone; load again: it serves.
  grpc::ClientContext unload_context;
  inference::RepositoryModelUnloadRequest unload_request;
  unload_request.set_model_name("scale");
  inference::RepositoryModelUnloadResponse unloaded;
  ASSERT_TRUE(stub_->RepositoryModelUnload(&unload_context, unload_request, &unloaded).ok());
  ModelInferResponse response;
  EXPECT_EQ(Infer(ScaleRequest("scale", 1), &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(load("scale").ok());
  ASSERT_TRUE(Infer(ScaleRequest("scale", 4), &response).ok());
  EXPECT_EQ(response.model_version(), "2");
  EXPECT_EQ(Values<float>(response.raw_output_contents(0)), (std::vector<float>{8, -8}));
  fs::remove_all(root);
}

TEST_F(RepositoryTest, EachVersionsSeriesCountItsOwnRequestsThroughAReload) {
  // A repository of its own: this test removes a version.
  const fs::path root = fs::path(testing::TempDir()) / absl::StrCat("coalesce_rollout_", getpid());
  fs::remove_all(root);
  const std::string config = ScaleConfig("rollout") + "version_policy: { all: {} }\n";
  WriteModel(root, "rollout", config, 1, ScaleForward(1));
  WriteModel(root, "rollout", config, 2, ScaleForward(2));
  Start(ModelRepository::ControlMode::kExplicit, root, {"rollout"});
  auto load = [&] {
    grpc::ClientContext context;
    inference::RepositoryModelLoadRequest request;
    request.set_model_name("rollout");
    inference::RepositoryModelLoadResponse response;
    return stub_->RepositoryModelLoad(&context, request, &response);
  };
  auto series = [&](const std::string& name, const std::string& version) {
    return MetricValue(HttpGet(server_->metrics_port(), "/metrics"),
                       absl::StrCat(name, "{code=\"OK\",model=\"rollout\",version=\"", version,
                                    "\"}"));
  };

  // One client per version, each sending kRequests while the model reloads: the reload swaps
  // in new instances of both versions, which go on counting into the same series.
  constexpr int kRequests = 60;
  std::atomic<int> sent[2] = {0, 0};
  std::atomic<int> failed{0};
  std::vector<std::thread> clients;
  for (int v = 0; v < 2; ++v) {
    clients.emplace_back([&, v] {
      for (int k = 0; k < kRequests; ++k) {
        ModelInferRequest request = ScaleRequest("rollout", 1);
        request.set_model_version(std::to_string(v + 1));
        ModelInferResponse response;
        grpc::Status status = Infer(request, &response);
        if (!status.ok() || response.model_version() != request.model_version()) ++failed;
        ++sent[v];
      }
    });
  }
  while (sent[0].load() < 10 || sent[1].load() < 10) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  grpc::Status reloaded = load();
  EXPECT_TRUE(reloaded.ok()) << reloaded.error_message();
  for (auto& t : clients) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(series("coalesce_requests_total", "1"), kRequests);
  EXPECT_EQ(series("coalesce_requests_total", "2"), kRequests);

  // Version 1 leaves the repository: its series go at the reload, version 2's stay.
  fs::remove_all(root / "rollout" / "1");
  reloaded = load();
  ASSERT_TRUE(reloaded.ok()) << reloaded.error_message();
  EXPECT_EQ(series("coalesce_requests_total", "1"), -1);
  EXPECT_EQ(series("coalesce_requests_total", "2"), kRequests);
  fs::remove_all(root);
}

TEST_F(RepositoryTest, VersionsResolveAsTritonDoesWithTheLatestByDefault) {
  Start(ModelRepository::ControlMode::kNone);
  auto infer_version = [&](const std::string& version, ModelInferResponse* response) {
    ModelInferRequest request = ScaleRequest("versions", 5);
    request.set_model_version(version);
    return Infer(request, response);
  };
  ModelInferResponse response;
  ASSERT_TRUE(infer_version("", &response).ok());
  EXPECT_EQ(response.model_version(), "2");
  EXPECT_EQ(Values<float>(response.raw_output_contents(0)), (std::vector<float>{10, -10}));
  ASSERT_TRUE(infer_version("1", &response).ok());
  EXPECT_EQ(response.model_version(), "1");
  EXPECT_EQ(Values<float>(response.raw_output_contents(0)), (std::vector<float>{5, -5}));
  grpc::Status missing = infer_version("3", &response);
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(missing.error_message().find("versions: 1, 2"), std::string::npos)
      << missing.error_message();

  grpc::ClientContext context;
  inference::ModelMetadataRequest request;
  request.set_name("versions");
  inference::ModelMetadataResponse metadata;
  ASSERT_TRUE(stub_->ModelMetadata(&context, request, &metadata).ok());
  EXPECT_EQ(std::vector<std::string>(metadata.versions().begin(), metadata.versions().end()),
            (std::vector<std::string>{"1", "2"}));
}

TEST_F(RepositoryTest, TheConfigsGroupsAndCudaGraphsReachTheBackendFactory) {
  const fs::path root =
      fs::path(testing::TempDir()) / absl::StrCat("coalesce_settings_", getpid());
  fs::remove_all(root);
  WriteModel(root, "graphs",
             ScaleConfig("graphs") +
                 "instance_group [ { count: 3 kind: KIND_CPU } ]\n"
                 "optimization { cuda { graphs: true } }\n",
             1, ScaleForward(1));
  WriteModel(root, "plain", ScaleConfig("plain"), 1, ScaleForward(1));
  auto metrics = std::make_unique<ServerMetrics>(std::make_shared<prometheus::Registry>());
  ModelRegistry registry;
  ModelRepository::Options options;
  options.root = root.string();
  options.model_defaults.num_workers = 2;
  TorchBackend::Options torch;
  torch.device = DeviceKind::kCpu;
  std::map<std::string, ModelRepository::BackendSettings> seen;
  absl::Mutex mu;
  options.backend_factory = [&, real = TorchBackendFactory(torch)](
                                const std::string& path, const ModelMetadata& metadata,
                                const ModelRepository::BackendSettings& settings) {
    {
      absl::MutexLock lock(&mu);
      seen[metadata.name] = settings;
    }
    return real(path, metadata, settings);
  };
  auto repository = ModelRepository::Create(options, &registry, metrics.get(), Clock::Real());
  ASSERT_TRUE(repository.ok()) << repository.status();
  absl::MutexLock lock(&mu);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen["graphs"].device, DeviceKind::kCpu);
  EXPECT_EQ(seen["graphs"].num_workers, 3);
  EXPECT_TRUE(seen["graphs"].cuda_graphs);
  EXPECT_EQ(seen["plain"].device, std::nullopt);
  EXPECT_EQ(seen["plain"].num_workers, 2);
  EXPECT_FALSE(seen["plain"].cuda_graphs);
  // Both serve (graphs are a CUDA option: the CPU backend ignores them).
  EXPECT_TRUE(registry.Find("graphs", "").ok());
  EXPECT_TRUE(registry.Find("plain", "").ok());
}

TEST_F(RepositoryTest, ConfigWarningsGoToTheWarnCallbackNamingModelAndFile) {
  const fs::path root = fs::path(testing::TempDir()) / absl::StrCat("coalesce_warn_", getpid());
  fs::remove_all(root);
  WriteModel(root, "warmed", ScaleConfig("warmed") + "model_warmup [ { name: \"w\" } ]\n", 1,
             ScaleForward(1));
  auto metrics = std::make_unique<ServerMetrics>(std::make_shared<prometheus::Registry>());
  ModelRegistry registry;
  ModelRepository::Options options;
  options.root = root.string();
  TorchBackend::Options torch;
  torch.device = DeviceKind::kCpu;
  options.backend_factory = TorchBackendFactory(torch);
  std::vector<std::string> warnings;
  options.warn = [&warnings](const std::string& warning) { warnings.push_back(warning); };
  auto repository = ModelRepository::Create(options, &registry, metrics.get(), Clock::Real());
  ASSERT_TRUE(repository.ok()) << repository.status();
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].rfind("warmed/config.pbtxt: model_warmup", 0), 0u) << warnings[0];
  repository->reset();
  registry.ShutdownAll();
  fs::remove_all(root);
}

TEST_F(RepositoryTest, PollingLoadsNewModelsReloadsChangedOnesAndUnloadsRemovedOnes) {
  const fs::path root = fs::path(testing::TempDir()) / absl::StrCat("coalesce_poll_", getpid());
  fs::remove_all(root);
  WriteModel(root, "first", ScaleConfig("first"), 1, ScaleForward(1));
  auto metrics = std::make_unique<ServerMetrics>(std::make_shared<prometheus::Registry>());
  ModelRegistry registry;
  ModelRepository::Options options;
  options.root = root.string();
  options.control_mode = ModelRepository::ControlMode::kPoll;
  options.poll_interval = absl::Hours(1);  // Polled by hand below.
  TorchBackend::Options torch;
  torch.device = DeviceKind::kCpu;
  options.backend_factory = TorchBackendFactory(torch);
  auto repository = ModelRepository::Create(options, &registry, metrics.get(), Clock::Real());
  ASSERT_TRUE(repository.ok()) << repository.status();
  EXPECT_TRUE(registry.Find("first", "").ok());
  EXPECT_EQ((*repository)->Load("first").code(), absl::StatusCode::kFailedPrecondition);

  WriteModel(root, "second", ScaleConfig("second"), 1, ScaleForward(3));
  fs::create_directories(root / "first" / "2");
  ASSERT_TRUE(SaveTorchScript((root / "first" / "2" / "model.pt").string(), ScaleForward(2)).ok());
  (*repository)->PollOnce();
  auto second = registry.Find("second", "");
  ASSERT_TRUE(second.ok()) << second.status();
  auto first = registry.Find("first", "");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ((*first)->metadata().version, "2");
  // Held models are not retired until let go (up to a bound); let go of them.
  second = absl::NotFoundError("released");
  first = absl::NotFoundError("released");

  fs::remove_all(root / "second");
  (*repository)->PollOnce();
  EXPECT_EQ(registry.Find("second", "").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(registry.Find("first", "").ok());
  repository->reset();
  registry.ShutdownAll();
  fs::remove_all(root);
}

}  // namespace
}  // namespace coalesce
