// Issue 15: models served from a repository answer exactly what Triton's PyTorch backend would
// give them, over real gRPC on loopback. The model sees each tensor as Triton hands it: no rows
// dimension for max_batch_size 0, its declared type (only FP32 follows --precision), and its
// config reshape, while clients see `dims`.
#include <atomic>
#include <chrono>
#include <cstdint>
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
#include "execution/torch/torch_backend.h"
#include "proto/inference.grpc.pb.h"
#include "repository/model_repository.h"
#include "server/server.h"
#include "server/torch_backend_factory.h"
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
                const std::string& forward) {
  WriteFile(root / name / "config.pbtxt", config);
  fs::create_directories(root / name / "1");
  absl::Status saved = SaveTorchScript((root / name / "1" / "model.pt").string(), forward);
  ASSERT_TRUE(saved.ok()) << saved;
}

// Does not batch, and answers by its input's rank: a rows dimension would change the sums (or
// fail them) and the rank.
constexpr char kRankConfig[] = R"pb(
  name: "rank0"
  platform: "pytorch_libtorch"
  max_batch_size: 0
  input [ { name: "X" data_type: TYPE_FP32 dims: [ 3, 4 ] } ]
  output [
    { name: "COLUMN_SUMS" data_type: TYPE_FP32 dims: [ 4 ] },
    { name: "RANK" data_type: TYPE_INT64 dims: [ 1 ] }
  ]
)pb";
constexpr char kRankForward[] = R"(
def forward(self, x):
    return x.sum(0), torch.tensor([x.dim()])
)";

// One input of each kind of type: only X (FP32) may follow the server's precision.
constexpr char kTypedConfig[] = R"pb(
  name: "typed"
  platform: "pytorch_libtorch"
  max_batch_size: 8
  input [
    { name: "D" data_type: TYPE_FP64 dims: [ 2 ] },
    { name: "N" data_type: TYPE_INT64 dims: [ 2 ] },
    { name: "H" data_type: TYPE_FP16 dims: [ 2 ] },
    { name: "X" data_type: TYPE_FP32 dims: [ 2 ] }
  ]
  output [
    { name: "D_OUT" data_type: TYPE_FP64 dims: [ 2 ] },
    { name: "N_OUT" data_type: TYPE_INT64 dims: [ 2 ] },
    { name: "H_BYTES" data_type: TYPE_INT64 dims: [ 1 ] },
    { name: "X_OUT" data_type: TYPE_FP32 dims: [ 2 ] }
  ]
)pb";
constexpr char kTypedForward[] = R"(
def forward(self, d, n, h, x):
    h_bytes = torch.zeros([h.size(0), 1]).long() + h.element_size()
    return d + 2e-9, n * 3 + 1, h_bytes, x + 0.0
)";

// Triton's densenet_onnx example config, platform pytorch_libtorch: the model takes
// [1, 3, 224, 224] and returns [1, 1000, 1, 1]; clients send [3, 224, 224] and get [1000].
constexpr char kDensenetConfig[] = R"pb(
  name: "densenet_onnx"
  platform: "pytorch_libtorch"
  max_batch_size : 0
  input [ {
    name: "data_0"
    data_type: TYPE_FP32
    format: FORMAT_NCHW
    dims: [ 3, 224, 224 ]
    reshape { shape: [ 1, 3, 224, 224 ] }
  } ]
  output [ {
    name: "fc6_1"
    data_type: TYPE_FP32
    dims: [ 1000 ]
    reshape { shape: [ 1, 1000, 1, 1 ] }
    label_filename: "densenet_labels.txt"
  } ]
)pb";
constexpr char kDensenetForward[] = R"(
def forward(self, x):
    return torch.arange(1000).float().reshape(1, 1000, 1, 1) + x[0, 2, 223, 223]
)";

// A batching model with a variable dim: clients send [rows, L, 4], the model takes and returns
// [rows, L, 2, 2] (transposing each 2x2 block, which only a 4-D tensor allows).
constexpr char kBlocksConfig[] = R"pb(
  name: "blocks"
  platform: "pytorch_libtorch"
  max_batch_size: 4
  input [ { name: "X" data_type: TYPE_FP32 dims: [ -1, 4 ] reshape { shape: [ -1, 2, 2 ] } } ]
  output [ { name: "Y" data_type: TYPE_FP32 dims: [ -1, 4 ] reshape { shape: [ -1, 2, 2 ] } } ]
)pb";
constexpr char kBlocksForward[] = R"(
def forward(self, x):
    return x.transpose(2, 3)
)";

constexpr char kBadReshapeConfig[] = R"pb(
  name: "badreshape"
  platform: "pytorch_libtorch"
  max_batch_size: 4
  input [ { name: "X" data_type: TYPE_FP32 dims: [ 4 ] reshape { shape: [ 2, 3 ] } } ]
  output [ { name: "Y" data_type: TYPE_FP32 dims: [ 4 ] } ]
)pb";

fs::path Repository() {
  static const fs::path* root = [] {
    auto* path = new fs::path(fs::path(testing::TempDir()) /
                              absl::StrCat("coalesce_conformance_", getpid()));
    fs::remove_all(*path);
    WriteModel(*path, "rank0", kRankConfig, kRankForward);
    WriteModel(*path, "typed", kTypedConfig, kTypedForward);
    WriteModel(*path, "densenet_onnx", kDensenetConfig, kDensenetForward);
    WriteModel(*path, "blocks", kBlocksConfig, kBlocksForward);
    WriteModel(*path, "badreshape", kBadReshapeConfig, "\ndef forward(self, x):\n    return x\n");
    return path;
  }();
  return *root;
}

template <typename T>
std::string Bytes(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

template <typename T>
std::vector<T> Values(const std::string& bytes) {
  std::vector<T> values(bytes.size() / sizeof(T));
  std::memcpy(values.data(), bytes.data(), values.size() * sizeof(T));
  return values;
}

std::vector<int64_t> ShapeOf(const google::protobuf::RepeatedField<int64_t>& shape) {
  return {shape.begin(), shape.end()};
}

void AddInput(ModelInferRequest& request, const std::string& name, const std::string& type,
              std::vector<int64_t> shape, std::string bytes) {
  auto* input = request.add_inputs();
  input->set_name(name);
  input->set_datatype(type);
  for (int64_t dim : shape) input->add_shape(dim);
  request.add_raw_input_contents(std::move(bytes));
}

class TritonConformanceTest : public testing::Test {
 protected:
  // Serves `models` of the repository on CPU in `precision`.
  void Start(std::vector<std::string> models, std::optional<Precision> precision = std::nullopt) {
    auto metrics = std::make_unique<ServerMetrics>(std::make_shared<prometheus::Registry>());
    auto registry = std::make_unique<ModelRegistry>();
    ModelRepository::Options options;
    options.root = Repository().string();
    options.control_mode = ModelRepository::ControlMode::kExplicit;
    options.startup_models = std::move(models);
    options.model_defaults.num_workers = 2;
    TorchBackend::Options torch;
    torch.device = DeviceKind::kCpu;
    torch.precision = precision;
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

  // Each model's state and reason, as RepositoryIndex reports them.
  std::map<std::string, std::pair<std::string, std::string>> Index() {
    grpc::ClientContext context;
    inference::RepositoryIndexResponse index;
    EXPECT_TRUE(stub_->RepositoryIndex(&context, {}, &index).ok());
    std::map<std::string, std::pair<std::string, std::string>> state;
    for (const auto& m : index.models()) state[m.name()] = {m.state(), m.reason()};
    return state;
  }

  inference::ModelMetadataResponse Metadata(const std::string& model) {
    grpc::ClientContext context;
    inference::ModelMetadataRequest request;
    request.set_name(model);
    inference::ModelMetadataResponse response;
    EXPECT_TRUE(stub_->ModelMetadata(&context, request, &response).ok());
    return response;
  }

  // A request for rank0: X = [[b, b+1, b+2, b+3], [b+4, ...], [b+8, ...]].
  static ModelInferRequest RankRequest(float base) {
    ModelInferRequest request;
    request.set_model_name("rank0");
    std::vector<float> x(12);
    for (int k = 0; k < 12; ++k) x[k] = base + static_cast<float>(k);
    AddInput(request, "X", "FP32", {3, 4}, Bytes(x));
    return request;
  }

  // The typed model's request: D's answers (1 + 2e-9) have no FP32 value, N's none in FP64.
  static ModelInferRequest TypedRequest() {
    ModelInferRequest request;
    request.set_model_name("typed");
    AddInput(request, "D", "FP64", {1, 2}, Bytes(std::vector<double>{1.0, -3.0}));
    AddInput(request, "N", "INT64", {1, 2},
             Bytes(std::vector<int64_t>{(int64_t{1} << 60) + 1, -7}));
    AddInput(request, "H", "FP16", {1, 2}, Bytes(std::vector<uint16_t>{0x3c00, 0x4000}));
    AddInput(request, "X", "FP32", {1, 2}, Bytes(std::vector<float>{1.001f, 2.0f}));
    return request;
  }

  std::unique_ptr<Server> server_;
  std::unique_ptr<GRPCInferenceService::Stub> stub_;
};

TEST_F(TritonConformanceTest, NonBatchingModelSeesExactlyItsDims) {
  Start({"rank0"});
  ModelInferResponse response;
  grpc::Status status = Infer(RankRequest(1), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.outputs_size(), 2);
  EXPECT_EQ(ShapeOf(response.outputs(0).shape()), (std::vector<int64_t>{4}));
  EXPECT_EQ(Values<float>(response.raw_output_contents(0)),
            (std::vector<float>{15, 18, 21, 24}));
  EXPECT_EQ(ShapeOf(response.outputs(1).shape()), (std::vector<int64_t>{1}));
  EXPECT_EQ(Values<int64_t>(response.raw_output_contents(1)), (std::vector<int64_t>{2}));
  // Clients see the same dims.
  inference::ModelMetadataResponse metadata = Metadata("rank0");
  ASSERT_EQ(metadata.inputs_size(), 1);
  EXPECT_EQ(ShapeOf(metadata.inputs(0).shape()), (std::vector<int64_t>{3, 4}));
}

TEST_F(TritonConformanceTest, NonBatchingModelRunsEveryConcurrentRequestAlone) {
  Start({"rank0"});
  constexpr int kClients = 6, kEach = 5;
  std::atomic<int> wrong{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      for (int k = 0; k < kEach; ++k) {
        const float base = static_cast<float>(100 * c + 10 * k);
        ModelInferResponse response;
        if (!Infer(RankRequest(base), &response).ok() ||
            Values<float>(response.raw_output_contents(0)) !=
                std::vector<float>{3 * base + 12, 3 * base + 15, 3 * base + 18,
                                   3 * base + 21}) {
          ++wrong;
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(wrong.load(), 0);
  grpc::ClientContext context;
  inference::ModelStatisticsRequest request;
  request.set_name("rank0");
  inference::ModelStatisticsResponse statistics;
  ASSERT_TRUE(stub_->ModelStatistics(&context, request, &statistics).ok());
  ASSERT_EQ(statistics.model_stats_size(), 1);
  ASSERT_GT(statistics.model_stats(0).batch_stats_size(), 0);
  for (const auto& batch : statistics.model_stats(0).batch_stats()) {
    EXPECT_EQ(batch.batch_size(), 1u);
  }
}

TEST_F(TritonConformanceTest, Fp64StaysExactUnderAReducedPrecision) {
  Start({"typed"}, Precision::kBf16);
  ModelInferResponse response;
  grpc::Status status = Infer(TypedRequest(), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.outputs_size(), 4);
  EXPECT_EQ(response.outputs(0).datatype(), "FP64");
  EXPECT_EQ(Values<double>(response.raw_output_contents(0)),
            (std::vector<double>{1.0 + 2e-9, -3.0 + 2e-9}));
}

TEST_F(TritonConformanceTest, Int64KeepsItsTypeUnderAReducedPrecision) {
  Start({"typed"}, Precision::kBf16);
  ModelInferResponse response;
  grpc::Status status = Infer(TypedRequest(), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.outputs(1).datatype(), "INT64");
  EXPECT_EQ(Values<int64_t>(response.raw_output_contents(1)),
            (std::vector<int64_t>{3 * (int64_t{1} << 60) + 4, -20}));
}

TEST_F(TritonConformanceTest, Fp16InputReachesTheModelAsFp16UnderFp32) {
  Start({"typed"}, Precision::kFp32);
  ModelInferResponse response;
  grpc::Status status = Infer(TypedRequest(), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(Values<int64_t>(response.raw_output_contents(2)), (std::vector<int64_t>{2}));
}

TEST_F(TritonConformanceTest, OnlyFp32FollowsTheReducedPrecision) {
  Start({"typed"}, Precision::kBf16);
  ModelInferResponse response;
  grpc::Status status = Infer(TypedRequest(), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  // 1.001 has no bf16 value; the nearest is 1.
  EXPECT_EQ(response.outputs(3).datatype(), "FP32");
  EXPECT_EQ(Values<float>(response.raw_output_contents(3)), (std::vector<float>{1.0f, 2.0f}));
  EXPECT_EQ(Values<double>(response.raw_output_contents(0))[0], 1.0 + 2e-9);
}

TEST_F(TritonConformanceTest, DensenetReshapesGiveTheModelItsShapeAndTheClientDims) {
  Start({"densenet_onnx"});
  EXPECT_EQ(Index()["densenet_onnx"].first, "READY") << Index()["densenet_onnx"].second;
  inference::ModelMetadataResponse metadata = Metadata("densenet_onnx");
  ASSERT_EQ(metadata.inputs_size(), 1);
  EXPECT_EQ(ShapeOf(metadata.inputs(0).shape()), (std::vector<int64_t>{3, 224, 224}));
  EXPECT_EQ(ShapeOf(metadata.outputs(0).shape()), (std::vector<int64_t>{1000}));

  ModelInferRequest request;
  request.set_model_name("densenet_onnx");
  std::vector<float> image(3 * 224 * 224, 0.0f);
  image[2 * 224 * 224 + 223 * 224 + 223] = 5.0f;  // [2, 223, 223]
  AddInput(request, "data_0", "FP32", {3, 224, 224}, Bytes(image));
  ModelInferResponse response;
  grpc::Status status = Infer(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(ShapeOf(response.outputs(0).shape()), (std::vector<int64_t>{1000}));
  std::vector<float> scores = Values<float>(response.raw_output_contents(0));
  ASSERT_EQ(scores.size(), 1000u);
  EXPECT_EQ(scores[0], 5.0f);
  EXPECT_EQ(scores[999], 1004.0f);
}

TEST_F(TritonConformanceTest, BatchedVariableReshapeMapsTheRequestsSizeInAndOut) {
  Start({"blocks"});
  ModelInferRequest request;
  request.set_model_name("blocks");
  AddInput(request, "X", "FP32", {1, 2, 4}, Bytes(std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8}));
  ModelInferResponse response;
  grpc::Status status = Infer(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(ShapeOf(response.outputs(0).shape()), (std::vector<int64_t>{1, 2, 4}));
  EXPECT_EQ(Values<float>(response.raw_output_contents(0)),
            (std::vector<float>{1, 3, 2, 4, 5, 7, 6, 8}));
}

TEST_F(TritonConformanceTest, ReshapeOfAnotherElementCountIsRefusedNamingTheTensor) {
  Start({"badreshape"});
  auto state = Index()["badreshape"];
  EXPECT_EQ(state.first, "UNAVAILABLE");
  EXPECT_NE(state.second.find("input 'X' reshape [2, 3]: expected 4 elements, as dims [4] "
                              "hold, got 6"),
            std::string::npos)
      << state.second;
}

}  // namespace
}  // namespace coalesce
