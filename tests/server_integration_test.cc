// The server end to end over loopback: real gRPC, the real LibTorch demo model, the real
// Prometheus endpoint.
#include <grpcpp/grpcpp.h>

#include <cstring>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/synchronization/barrier.h"
#include "execution/demo_model.h"
#include "execution/torch/torch_backend.h"
#include "gtest/gtest.h"
#include "proto/health.grpc.pb.h"
#include "proto/inference.grpc.pb.h"
#include "server/server.h"
#include "tests/http_get.h"
#include "tests/test_server.h"

namespace coalesce {
namespace {

using inference::GRPCInferenceService;
using inference::ModelInferRequest;
using inference::ModelInferResponse;

constexpr int64_t kRow = DemoModel::kTokens * DemoModel::kWidth;

std::unique_ptr<TorchBackend> CpuDemo(int num_workers) {
  TorchBackend::Options options;
  options.device = DeviceKind::kCpu;
  options.num_workers = num_workers;
  auto backend = TorchBackend::CreateDemo(options, 64);
  EXPECT_TRUE(backend.ok()) << backend.status();
  return *std::move(backend);
}

class ServerIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServedModel::Options model_options;
    model_options.num_workers = 2;
    model_options.max_queue_delay = absl::Milliseconds(2);
    auto server = StartLoopbackServer(CpuDemo(2), model_options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->grpc_port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = GRPCInferenceService::NewStub(channel_);
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(5));
  }

  static ModelInferRequest DemoRequest(const std::vector<float>& input, int64_t rows) {
    ModelInferRequest request;
    request.set_model_name("demo");
    auto* tensor = request.add_inputs();
    tensor->set_name("INPUT0");
    tensor->set_datatype("FP32");
    for (int64_t d : {rows, DemoModel::kTokens, DemoModel::kWidth}) tensor->add_shape(d);
    request.add_raw_input_contents()->assign(reinterpret_cast<const char*>(input.data()),
                                             input.size() * sizeof(float));
    return request;
  }

  grpc::Status Infer(const ModelInferRequest& request, ModelInferResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return stub_->ModelInfer(&context, request, response);
  }

  std::string Metrics() { return HttpGet(server_->metrics_port(), "/metrics"); }

  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<GRPCInferenceService::Stub> stub_;
};

TEST_F(ServerIntegrationTest, ConcurrentSingleSamplesAreBatchedAndAnsweredCorrectly) {
  constexpr int kClients = 64;
  constexpr int kPerClient = 4;
  // Inputs and the model's own answers, computed directly, one sample at a time.
  std::vector<std::vector<float>> inputs(kClients * kPerClient);
  std::mt19937_64 rng(2026);
  std::uniform_real_distribution<float> dist(-1, 1);
  for (auto& input : inputs) {
    input.resize(kRow);
    for (float& v : input) v = dist(rng);
  }
  std::vector<std::vector<float>> expected(inputs.size(), std::vector<float>(kRow));
  auto reference = CpuDemo(1);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const char* in = reinterpret_cast<const char*>(inputs[i].data());
    char* out = reinterpret_cast<char*>(expected[i].data());
    ASSERT_TRUE(reference->Execute(0, 1, {&in, 1}, {&out, 1}).ok());
  }

  std::vector<grpc::Status> statuses(inputs.size());
  std::vector<ModelInferResponse> responses(inputs.size());
  grpc::Status bad_status;
  absl::Barrier* start = new absl::Barrier(kClients + 1);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      if (start->Block()) delete start;
      for (int k = 0; k < kPerClient; ++k) {
        int i = c * kPerClient + k;
        ModelInferRequest request = DemoRequest(inputs[i], 1);
        request.set_id(absl::StrCat("req-", i));
        statuses[i] = Infer(request, &responses[i]);
      }
    });
  }
  // One bad request in the middle of the load: a sample with 255 columns instead of 256.
  std::thread bad([&] {
    if (start->Block()) delete start;
    ModelInferRequest request = DemoRequest(std::vector<float>(32 * 255), 1);
    request.mutable_inputs(0)->set_shape(2, 255);
    ModelInferResponse response;
    bad_status = Infer(request, &response);
  });
  for (auto& t : clients) t.join();
  bad.join();

  EXPECT_EQ(bad_status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(bad_status.error_message().find("INPUT0"), std::string::npos);
  EXPECT_NE(bad_status.error_message().find("expected shape [-1, 32, 256], got [1, 32, 255]"),
            std::string::npos)
      << bad_status.error_message();

  // Batched and unbatched fp32 matmuls may sum in different orders: 1e-5 absolute on outputs of
  // magnitude ~0.1-1 is a few ulps, far below any real error.
  for (size_t i = 0; i < inputs.size(); ++i) {
    ASSERT_TRUE(statuses[i].ok()) << i << ": " << statuses[i].error_message();
    const ModelInferResponse& r = responses[i];
    EXPECT_EQ(r.id(), absl::StrCat("req-", i));
    ASSERT_EQ(r.outputs_size(), 1);
    EXPECT_EQ(r.outputs(0).name(), "OUTPUT0");
    EXPECT_EQ(r.outputs(0).datatype(), "FP32");
    EXPECT_EQ(std::vector<int64_t>(r.outputs(0).shape().begin(), r.outputs(0).shape().end()),
              (std::vector<int64_t>{1, 32, 256}));
    ASSERT_EQ(r.raw_output_contents(0).size(), kRow * sizeof(float));
    std::vector<float> got(kRow);
    std::memcpy(got.data(), r.raw_output_contents(0).data(), kRow * sizeof(float));
    for (int64_t j = 0; j < kRow; ++j) {
      ASSERT_NEAR(got[j], expected[i][j], 1e-5) << "request " << i << " element " << j;
    }
  }

  // Batches were really formed: fewer batches than samples, every sample counted once.
  std::string metrics = Metrics();
  // The demo model is version 1; every series of a model names its version. Labels are exposed
  // sorted by name.
  auto demo = [&metrics](const std::string& name, std::map<std::string, std::string> labels = {}) {
    labels.emplace("model", "demo");
    labels.emplace("version", "1");
    std::vector<std::string> pairs;
    for (const auto& [label, value] : labels) {
      pairs.push_back(absl::StrCat(label, "=\"", value, "\""));
    }
    return MetricValue(metrics, absl::StrCat(name, "{", absl::StrJoin(pairs, ","), "}"));
  };
  double samples = demo("coalesce_inferences_total");
  double batches = demo("coalesce_batches_total");
  EXPECT_EQ(samples, kClients * kPerClient);
  EXPECT_GT(batches, 0);
  EXPECT_LT(batches, samples) << "no request shared a batch";
  EXPECT_EQ(demo("coalesce_requests_total", {{"code", "OK"}}), kClients * kPerClient);
  EXPECT_EQ(demo("coalesce_requests_total", {{"code", "INVALID_ARGUMENT"}}), 1);
  EXPECT_EQ(demo("coalesce_batch_size_count"), batches);
  EXPECT_EQ(demo("coalesce_batch_size_sum"), samples);
  // Sampled at scrape time: nothing waits once every call is answered; the process holds at
  // least the model and gRPC (tens of MB); the p99 summary saw the requests; the CPU had
  // batches on it for some of the time.
  EXPECT_EQ(demo("coalesce_queue_depth"), 0);
  EXPECT_GT(MetricValue(metrics, "coalesce_process_resident_memory_bytes"), 20e6);
  EXPECT_GT(MetricValue(metrics, "coalesce_device_busy_seconds_total{device=\"cpu\"}"), 0);
  const double busy = MetricValue(metrics, "coalesce_device_busy_ratio{device=\"cpu\"}");
  EXPECT_GT(busy, 0);
  EXPECT_LE(busy, 1);
  // The CPU device never failed; every batch reused its worker's staging memory.
  EXPECT_EQ(demo("coalesce_device_fallbacks_total"), 0);
  EXPECT_EQ(demo("coalesce_model_on_fallback"), 0);
  EXPECT_GE(demo("coalesce_staging_pool_total", {{"result", "hit"}}), batches);
  EXPECT_EQ(demo("coalesce_request_latency_seconds_count"), kClients * kPerClient);
  // A summary's quantile label comes after the series' own.
  EXPECT_GT(MetricValue(metrics, "coalesce_request_latency_seconds"
                                 "{model=\"demo\",version=\"1\",quantile=\"0.99\"}"),
            0);
}

TEST_F(ServerIntegrationTest, MultiSampleRequestMatchesItsRowsAlone) {
  std::vector<float> input(3 * kRow);
  for (size_t i = 0; i < input.size(); ++i) input[i] = std::sin(0.001f * i);
  ModelInferResponse response;
  ASSERT_TRUE(Infer(DemoRequest(input, 3), &response).ok());
  ASSERT_EQ(response.raw_output_contents(0).size(), 3 * kRow * sizeof(float));
  EXPECT_EQ(response.outputs(0).shape(0), 3);

  std::vector<float> middle(input.begin() + kRow, input.begin() + 2 * kRow);
  ModelInferResponse alone;
  ASSERT_TRUE(Infer(DemoRequest(middle, 1), &alone).ok());
  std::vector<float> batched(kRow), single(kRow);
  std::memcpy(batched.data(), response.raw_output_contents(0).data() + kRow * sizeof(float),
              kRow * sizeof(float));
  std::memcpy(single.data(), alone.raw_output_contents(0).data(), kRow * sizeof(float));
  for (int64_t j = 0; j < kRow; ++j) ASSERT_NEAR(batched[j], single[j], 1e-5) << j;
}

TEST_F(ServerIntegrationTest, TypedContentsGiveTheSameAnswerAsRaw) {
  std::vector<float> input(kRow);
  for (size_t i = 0; i < input.size(); ++i) input[i] = std::cos(0.01f * i);
  ModelInferRequest typed = DemoRequest(input, 1);
  typed.clear_raw_input_contents();
  for (float v : input) typed.mutable_inputs(0)->mutable_contents()->add_fp32_contents(v);
  ModelInferResponse from_typed, from_raw;
  ASSERT_TRUE(Infer(typed, &from_typed).ok());
  ASSERT_TRUE(Infer(DemoRequest(input, 1), &from_raw).ok());
  std::vector<float> a(kRow), b(kRow);
  std::memcpy(a.data(), from_typed.raw_output_contents(0).data(), kRow * sizeof(float));
  std::memcpy(b.data(), from_raw.raw_output_contents(0).data(), kRow * sizeof(float));
  for (int64_t j = 0; j < kRow; ++j) ASSERT_NEAR(a[j], b[j], 1e-6) << j;
}

TEST_F(ServerIntegrationTest, UnknownModelOrVersionIsNotFoundInTritonsWords) {
  ModelInferRequest request = DemoRequest(std::vector<float>(kRow), 1);
  request.set_model_name("nope");
  ModelInferResponse response;
  grpc::Status status = Infer(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(status.error_message(),
            "Request for unknown model: 'nope' is not found (serving: demo)");

  request.set_model_name("demo");
  request.set_model_version("7");
  status = Infer(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(status.error_message(),
            "Request for unknown model: 'demo' version 7 is not found (versions: 1)");

  request.set_model_version("1");
  EXPECT_TRUE(Infer(request, &response).ok());
}

TEST_F(ServerIntegrationTest, VersionStringThatIsNotANumberIsInvalidArgumentInTritonsWords) {
  // Triton's text, which grpc_explicit_int8_content_client.py matches, on every RPC that takes
  // a version; checked before the model is looked up.
  const std::string not_a_number =
      "failed to get model version from specified version string 'wrong_specification' "
      "(details: stol), version should be an integral value > 0";
  ModelInferRequest request = DemoRequest(std::vector<float>(kRow), 1);
  request.set_model_version("wrong_specification");
  ModelInferResponse response;
  grpc::Status infer = Infer(request, &response);
  EXPECT_EQ(infer.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(infer.error_message(), not_a_number);
  request.set_model_name("nope");
  EXPECT_EQ(Infer(request, &response).error_message(), not_a_number);

  grpc::ClientContext c1, c2, c3, c4, c5;
  inference::ModelMetadataRequest metadata_request;
  metadata_request.set_name("demo");
  metadata_request.set_version("wrong_specification");
  inference::ModelMetadataResponse metadata;
  grpc::Status status = stub_->ModelMetadata(&c1, metadata_request, &metadata);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), not_a_number);

  inference::ModelConfigRequest config_request;
  config_request.set_name("demo");
  config_request.set_version("wrong_specification");
  inference::ModelConfigResponse config;
  status = stub_->ModelConfig(&c2, config_request, &config);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), not_a_number);

  inference::ModelStatisticsRequest statistics_request;  // No name: every model.
  statistics_request.set_version("wrong_specification");
  inference::ModelStatisticsResponse statistics;
  status = stub_->ModelStatistics(&c3, statistics_request, &statistics);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), not_a_number);

  // Triton's ModelReady parses the version first too: an error, not "not ready".
  inference::ModelReadyRequest ready_request;
  ready_request.set_name("demo");
  ready_request.set_version("wrong_specification");
  inference::ModelReadyResponse ready;
  status = stub_->ModelReady(&c4, ready_request, &ready);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), not_a_number);

  ready_request.set_version("-1");
  status = stub_->ModelReady(&c5, ready_request, &ready);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "invalid model version specified '-1' , version should be an integral value > 0");
}

TEST_F(ServerIntegrationTest, ClassificationOfAnOutputIsRefusedNotAnsweredWithRawScores) {
  ModelInferRequest request = DemoRequest(std::vector<float>(kRow), 1);
  auto* output = request.add_outputs();
  output->set_name("OUTPUT0");
  // As tritonclient's InferRequestedOutput("OUTPUT0", class_count=3) sends it.
  (*output->mutable_parameters())["classification"].set_int64_param(3);
  ModelInferResponse response;
  grpc::Status status = Infer(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message().rfind(
                "output 'OUTPUT0' of model 'demo': parameter 'classification' asks for Triton's "
                "classification extension",
                0),
            0u)
      << status.error_message();
  EXPECT_EQ(response.raw_output_contents_size(), 0);
}

TEST_F(ServerIntegrationTest, TypedContentsBesideRawAreRefusedInTritonsWords) {
  ModelInferRequest request = DemoRequest(std::vector<float>(kRow), 1);
  request.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1);
  ModelInferResponse response;
  grpc::Status status = Infer(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message().rfind("contents field must not be specified when using "
                                         "raw_input_contents for 'INPUT0' for model 'demo'",
                                         0),
            0u)
      << status.error_message();
}

TEST_F(ServerIntegrationTest, MetadataReadinessAndHealth) {
  grpc::ClientContext c1;
  inference::ModelMetadataRequest metadata_request;
  metadata_request.set_name("demo");
  inference::ModelMetadataResponse metadata;
  ASSERT_TRUE(stub_->ModelMetadata(&c1, metadata_request, &metadata).ok());
  EXPECT_EQ(metadata.name(), "demo");
  EXPECT_EQ(metadata.platform(), "pytorch_libtorch");
  ASSERT_EQ(metadata.inputs_size(), 1);
  EXPECT_EQ(metadata.inputs(0).name(), "INPUT0");
  EXPECT_EQ(metadata.inputs(0).datatype(), "FP32");
  EXPECT_EQ(std::vector<int64_t>(metadata.inputs(0).shape().begin(),
                                 metadata.inputs(0).shape().end()),
            (std::vector<int64_t>{-1, 32, 256}));
  EXPECT_EQ(metadata.outputs(0).name(), "OUTPUT0");

  grpc::ClientContext c2;
  inference::ServerReadyResponse ready;
  ASSERT_TRUE(stub_->ServerReady(&c2, {}, &ready).ok());
  EXPECT_TRUE(ready.ready());

  grpc::ClientContext c3;
  inference::ServerMetadataResponse server_metadata;
  ASSERT_TRUE(stub_->ServerMetadata(&c3, {}, &server_metadata).ok());
  EXPECT_EQ(server_metadata.name(), "coalesce");

  auto health = grpc::health::v1::Health::NewStub(channel_);
  for (const char* service : {"", "inference.GRPCInferenceService"}) {
    grpc::ClientContext c4;
    grpc::health::v1::HealthCheckRequest health_request;
    health_request.set_service(service);
    grpc::health::v1::HealthCheckResponse health_response;
    ASSERT_TRUE(health->Check(&c4, health_request, &health_response).ok()) << service;
    EXPECT_EQ(health_response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }
}

TEST_F(ServerIntegrationTest, ShutdownTurnsReadinessOffAndRefusesNewCalls) {
  server_->Shutdown(absl::Seconds(5));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  inference::ServerReadyResponse ready;
  grpc::Status status = stub_->ServerReady(&context, {}, &ready);
  EXPECT_FALSE(status.ok() && ready.ready());
}

}  // namespace
}  // namespace coalesce
