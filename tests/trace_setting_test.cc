// The TraceSetting RPC (Triton's trace extension, file mode) over a real server on loopback with
// two echo models: sampled requests leave one JSON line each in the trace file, with their
// stages' timestamps in order.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "proto/inference.grpc.pb.h"
#include "tests/echo_test_server.h"

namespace coalesce {
namespace {

namespace fs = std::filesystem;

// One trace line, read back with string searches (the format is fixed; see RequestTracer).
struct TraceLine {
  std::string model;
  std::string request_id;
  std::vector<std::pair<std::string, int64_t>> stages;
};

std::string Field(const std::string& line, const std::string& key) {
  const std::string start = absl::StrCat("\"", key, "\":\"");
  size_t at = line.find(start);
  if (at == std::string::npos) return "";
  at += start.size();
  return line.substr(at, line.find('"', at) - at);
}

std::vector<TraceLine> ReadTraces(const fs::path& file) {
  std::vector<TraceLine> traces;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    TraceLine trace;
    trace.model = Field(line, "model_name");
    trace.request_id = Field(line, "request_id");
    for (absl::string_view part : absl::StrSplit(line, "{\"name\":\"")) {
      const size_t quote = part.find('"');
      const size_t ns = part.find("\"ns\":");
      if (quote == absl::string_view::npos || ns == absl::string_view::npos) continue;
      int64_t value = 0;
      absl::string_view digits = part.substr(ns + 5, part.find('}') - ns - 5);
      if (!absl::SimpleAtoi(digits, &value)) continue;
      trace.stages.emplace_back(std::string(part.substr(0, quote)), value);
    }
    traces.push_back(std::move(trace));
  }
  return traces;
}

class TraceSettingTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(testing::TempDir()) /
           absl::StrCat("coalesce_trace_",
                        testing::UnitTest::GetInstance()->current_test_info()->name(), "_",
                        getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    file_ = dir_ / "trace.json";
    Server::Options options;
    options.trace.file = file_.string();
    auto metrics = std::make_unique<ServerMetrics>(std::make_shared<prometheus::Registry>());
    auto registry = std::make_unique<ModelRegistry>();
    for (const char* name : {"demo", "other"}) {
      ModelMetadata metadata = DemoModel::Metadata(kEchoMaxBatch);
      metadata.name = name;
      auto backend = EchoBackend::Create(metadata);
      ASSERT_TRUE(backend.ok());
      ServedModel::Options model_options;
      model_options.num_workers = 1;
      auto model = ServedModel::Create(model_options, *std::move(backend), metrics.get(),
                                       Clock::Real());
      ASSERT_TRUE(model.ok()) << model.status();
      ASSERT_TRUE(registry->Add(*std::move(model)).ok());
    }
    options.grpc_address = "127.0.0.1:0";
    options.metrics_address = "127.0.0.1:0";
    auto server = Server::Start(options, std::move(registry), std::move(metrics), Clock::Real());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = inference::GRPCInferenceService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_->grpc_port()), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(5));
    server_.reset();
    fs::remove_all(dir_);
  }

  // Sets `settings` (name -> values; an empty list clears) for `model` ("" global).
  grpc::Status Set(const std::map<std::string, std::vector<std::string>>& settings,
                   const std::string& model = "",
                   inference::TraceSettingResponse* response = nullptr) {
    inference::TraceSettingRequest request;
    request.set_model_name(model);
    for (const auto& [name, values] : settings) {
      auto& setting = (*request.mutable_settings())[name];
      for (const std::string& v : values) setting.add_value(v);
    }
    inference::TraceSettingResponse ignored;
    grpc::ClientContext context;
    return stub_->TraceSetting(&context, request, response != nullptr ? response : &ignored);
  }
  // `n` requests to `model`, one after another, with ids "<model>-0", "<model>-1", ...
  void Run(const std::string& model, int n) {
    for (int k = 0; k < n; ++k) {
      inference::ModelInferRequest request = EchoRequest(1);
      request.set_model_name(model);
      request.set_id(absl::StrCat(model, "-", k));
      inference::ModelInferResponse response;
      grpc::ClientContext context;
      ASSERT_TRUE(stub_->ModelInfer(&context, request, &response).ok());
    }
  }

  fs::path dir_, file_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
};

TEST_F(TraceSettingTest, EachSampledRequestIsOneLineWithItsStagesInOrder) {
  ASSERT_TRUE(Set({{"trace_level", {"TIMESTAMPS"}}, {"trace_rate", {"1"}}}).ok());
  Run("demo", 5);
  std::vector<TraceLine> traces = ReadTraces(file_);
  ASSERT_EQ(traces.size(), 5u);
  int64_t previous_end = 0;
  for (int k = 0; k < 5; ++k) {
    SCOPED_TRACE(k);
    EXPECT_EQ(traces[k].model, "demo");
    EXPECT_EQ(traces[k].request_id, absl::StrCat("demo-", k));
    const std::vector<std::string> names = {"REQUEST_START", "QUEUE_START", "COMPUTE_START",
                                            "COMPUTE_END", "REQUEST_END"};
    ASSERT_EQ(traces[k].stages.size(), names.size());
    for (size_t s = 0; s < names.size(); ++s) {
      EXPECT_EQ(traces[k].stages[s].first, names[s]);
      if (s > 0) EXPECT_LE(traces[k].stages[s - 1].second, traces[k].stages[s].second);
    }
    // Requests ran one after another: each starts after the previous one ended.
    EXPECT_GE(traces[k].stages.front().second, previous_end);
    previous_end = traces[k].stages.back().second;
  }
}

TEST_F(TraceSettingTest, RateTwoTracesEveryOtherRequest) {
  ASSERT_TRUE(Set({{"trace_level", {"TIMESTAMPS"}}, {"trace_rate", {"2"}}}).ok());
  Run("demo", 10);
  std::vector<TraceLine> traces = ReadTraces(file_);
  ASSERT_EQ(traces.size(), 5u);
  for (int k = 0; k < 5; ++k) EXPECT_EQ(traces[k].request_id, absl::StrCat("demo-", 2 * k));
}

TEST_F(TraceSettingTest, CountStopsSamplingAndReportsWhatIsLeft) {
  inference::TraceSettingResponse response;
  ASSERT_TRUE(Set({{"trace_level", {"TIMESTAMPS"}}, {"trace_rate", {"1"}}, {"trace_count", {"3"}}},
                  "", &response)
                  .ok());
  EXPECT_EQ(response.settings().at("trace_count").value(0), "3");
  Run("demo", 5);
  EXPECT_EQ(ReadTraces(file_).size(), 3u);
  ASSERT_TRUE(Set({}, "", &response).ok());
  EXPECT_EQ(response.settings().at("trace_count").value(0), "0");
}

TEST_F(TraceSettingTest, LevelOffWritesNothing) {
  ASSERT_TRUE(Set({{"trace_level", {"TIMESTAMPS"}}, {"trace_rate", {"1"}}}).ok());
  ASSERT_TRUE(Set({{"trace_level", {"OFF"}}}).ok());
  Run("demo", 3);
  EXPECT_EQ(ReadTraces(file_).size(), 0u);
}

TEST_F(TraceSettingTest, AModelOverrideTracesThatModelAloneAndClearsBackToGlobal) {
  inference::TraceSettingResponse response;
  ASSERT_TRUE(Set({{"trace_level", {"TIMESTAMPS"}}, {"trace_rate", {"1"}}}, "other", &response)
                  .ok());
  EXPECT_EQ(response.settings().at("trace_level").value(0), "TIMESTAMPS");
  ASSERT_TRUE(Set({}, "", &response).ok());
  EXPECT_EQ(response.settings().at("trace_level").value(0), "OFF");  // Global unchanged.
  Run("demo", 2);
  Run("other", 2);
  std::vector<TraceLine> traces = ReadTraces(file_);
  ASSERT_EQ(traces.size(), 2u);
  EXPECT_EQ(traces[0].request_id, "other-0");
  EXPECT_EQ(traces[1].request_id, "other-1");

  // A setting with no value follows the global one again.
  ASSERT_TRUE(Set({{"trace_level", {}}}, "other", &response).ok());
  EXPECT_EQ(response.settings().at("trace_level").value(0), "OFF");
  Run("other", 2);
  EXPECT_EQ(ReadTraces(file_).size(), 2u);
}

TEST_F(TraceSettingTest, EverySettingIsReportedInTritonsNames) {
  inference::TraceSettingResponse response;
  ASSERT_TRUE(Set({}, "", &response).ok());
  std::map<std::string, std::string> got;
  for (const auto& [name, value] : response.settings()) {
    ASSERT_EQ(value.value_size(), 1) << name;
    got[name] = value.value(0);
  }
  EXPECT_EQ(got, (std::map<std::string, std::string>{{"trace_level", "OFF"},
                                                     {"trace_rate", "1000"},
                                                     {"trace_count", "-1"},
                                                     {"log_frequency", "0"},
                                                     {"trace_file", file_.string()},
                                                     {"trace_mode", "triton"}}));
}

TEST_F(TraceSettingTest, LogFrequencySplitsTheFileEveryNTraces) {
  ASSERT_TRUE(
      Set({{"trace_level", {"TIMESTAMPS"}}, {"trace_rate", {"1"}}, {"log_frequency", {"2"}}})
          .ok());
  Run("demo", 5);
  EXPECT_EQ(ReadTraces(fs::path(file_.string() + ".0")).size(), 2u);
  EXPECT_EQ(ReadTraces(fs::path(file_.string() + ".1")).size(), 2u);
  EXPECT_EQ(ReadTraces(fs::path(file_.string() + ".2")).size(), 1u);
}

TEST_F(TraceSettingTest, BadSettingsAreRefusedNamingThem) {
  auto refused = [&](const std::map<std::string, std::vector<std::string>>& settings,
                     const std::string& named, const std::string& model = "",
                     grpc::StatusCode code = grpc::StatusCode::INVALID_ARGUMENT) {
    grpc::Status status = Set(settings, model);
    EXPECT_EQ(status.error_code(), code) << named;
    EXPECT_NE(status.error_message().find(named), std::string::npos) << status.error_message();
  };
  refused({{"trace_level", {"TENSORS"}}}, "TENSORS is not supported");
  refused({{"trace_level", {"LOUD"}}}, "'LOUD'");
  refused({{"trace_rate", {"0"}}}, "Unable to parse 'trace_rate', value is out of range");
  refused({{"trace_rate", {"often"}}}, "Unable to parse 'trace_rate', got: often");
  refused({{"trace_count", {"-2"}}}, "Unable to parse 'trace_count'");
  refused({{"trace_verbosity", {"1"}}}, "'trace_verbosity'");
  refused({{"log_frequency", {"5"}}}, "log_frequency is a global setting", "demo");
  refused({{"trace_rate", {"1"}}}, "'nope'", "nope", grpc::StatusCode::NOT_FOUND);
  refused({{"trace_file", {"/tmp/elsewhere.json"}}},
          "trace file location can not be updated through network protocol", "",
          grpc::StatusCode::UNIMPLEMENTED);
  inference::TraceSettingResponse response;
  ASSERT_TRUE(Set({}, "", &response).ok());
  EXPECT_EQ(response.settings().at("trace_rate").value(0), "1000");  // Nothing applied.
}

TEST(RequestTracerTest, AFileThatCannotBeWrittenIsRefusedNamingIt) {
  RequestTracer::Options options;
  options.file = "/nonexistent-folder/trace.json";
  auto tracer = RequestTracer::Create(options);
  EXPECT_EQ(tracer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(tracer.status().message(),
            "trace file '/nonexistent-folder/trace.json' is not writable: No such file or "
            "directory");
}

TEST(RequestTracerTest, TracingCannotBeTurnedOnWithoutAFile) {
  auto tracer = RequestTracer::Create({});
  ASSERT_TRUE(tracer.ok());
  RequestTracer::Update on;
  on.level = {on.level.kSet, RequestTracer::Level::kTimestamps};
  absl::Status status = (*tracer)->Apply("", on);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("--trace_file"), std::string::npos);
  EXPECT_EQ((*tracer)->Sample("demo"), nullptr);
}

}  // namespace
}  // namespace coalesce
