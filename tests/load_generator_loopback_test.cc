// coalesce-bench's LoadGenerator over loopback against an in-process fake server: asserting
// counts and codes, never speed.
#include "client/load_generator.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/inference.grpc.pb.h"
#include "tests/load_generator_test_util.h"

namespace coalesce {
namespace {

using ::testing::HasSubstr;

// A fake Open Inference Protocol server: one model "demo" with INPUT0 FP32 [-1, 4] (or
// [-1, -1] with `variable_length`). ModelInfer answers OK for the first `ok_calls` calls and
// `error_code` after that, each after `delay` (cut short if the client cancels), refuses a
// tensor whose bytes do not match its shape, and notes the client address (hence the
// connection) each call came from and the size of its second dim. Thread-safe.
class FakeInferenceServer final : public inference::GRPCInferenceService::Service {
 public:
  struct Options {
    int64_t ok_calls = INT64_MAX;
    grpc::StatusCode error_code = grpc::StatusCode::RESOURCE_EXHAUSTED;
    absl::Duration delay = absl::ZeroDuration();
    std::string input_datatype = "FP32";
    bool variable_length = false;
  };

  explicit FakeInferenceServer(Options options) : options_(std::move(options)) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~FakeInferenceServer() override { server_->Shutdown(); }

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  int64_t infer_calls() const { return infer_calls_.load(); }
  // How many distinct connections ModelInfer calls came over since the last call of this.
  int TakeInferConnections() {
    absl::MutexLock lock(&mu_);
    const int n = static_cast<int>(peers_.size());
    peers_.clear();
    return n;
  }
  // How many ModelInfer calls came with each size of INPUT0's second dim.
  std::map<int64_t, int64_t> lengths() const {
    absl::MutexLock lock(&mu_);
    return lengths_;
  }

  grpc::Status ModelMetadata(grpc::ServerContext*, const inference::ModelMetadataRequest* request,
                             inference::ModelMetadataResponse* response) override {
    if (request->name() != "demo") return grpc::Status(grpc::StatusCode::NOT_FOUND, "no model");
    response->set_name("demo");
    auto* input = response->add_inputs();
    input->set_name("INPUT0");
    input->set_datatype(options_.input_datatype);
    input->add_shape(-1);
    input->add_shape(options_.variable_length ? -1 : 4);
    return grpc::Status::OK;
  }

  grpc::Status ModelInfer(grpc::ServerContext* context, const inference::ModelInferRequest* request,
                          inference::ModelInferResponse* response) override {
    const int64_t call = infer_calls_.fetch_add(1);
    {
      absl::MutexLock lock(&mu_);
      peers_.insert(context->peer());
      if (request->inputs_size() == 1 && request->inputs(0).shape_size() == 2) {
        ++lengths_[request->inputs(0).shape(1)];
      }
    }
    const absl::Time until = absl::Now() + options_.delay;
    while (absl::Now() < until && !context->IsCancelled()) absl::SleepFor(absl::Milliseconds(1));
    if (call >= options_.ok_calls) return grpc::Status(options_.error_code, "fake error");
    if (request->inputs_size() != 1 || request->inputs(0).shape_size() != 2 ||
        request->raw_input_contents_size() != 1 ||
        static_cast<int64_t>(request->raw_input_contents(0).size()) !=
            request->inputs(0).shape(0) * request->inputs(0).shape(1) * 4) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad input size");
    }
    response->set_model_name("demo");
    return grpc::Status::OK;
  }

 private:
  const Options options_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::atomic<int64_t> infer_calls_{0};
  mutable absl::Mutex mu_;
  std::set<std::string> peers_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, int64_t> lengths_ ABSL_GUARDED_BY(mu_);
};

LoadGenerator::Options ShortRun(const std::string& address) {
  LoadGenerator::Options options;
  options.address = address;
  options.model = "demo";
  options.batch = 3;
  options.channels = 2;
  options.threads = 2;
  options.warmup = absl::Milliseconds(50);
  options.duration = absl::Milliseconds(300);
  options.drain_timeout = absl::Milliseconds(500);
  options.connect_timeout = absl::Seconds(10);
  return options;
}

TEST(LoadGeneratorTest, ValidateOptionsNamesTheBadField) {
  LoadGenerator::Options options;
  options.channels = -1;
  EXPECT_THAT(LoadGenerator::ValidateOptions(options).message(),
              HasSubstr("channels must be in [1, 1024] (0 = per level); got -1"));
  options = LoadGenerator::Options();
  options.duration = absl::ZeroDuration();
  EXPECT_EQ(LoadGenerator::ValidateOptions(options).code(), absl::StatusCode::kInvalidArgument);
  options = LoadGenerator::Options();
  options.batch = 0;
  EXPECT_EQ(LoadGenerator::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(LoadGenerator::ValidateOptions(LoadGenerator::Options()).ok());
}

TEST(LoadGeneratorTest, UnreachableServerIsUnavailable) {
  // Port 1 (tcpmux) is not served on a test machine: the connection is refused at once.
  auto generator = LoadGenerator::Create(ShortRun("127.0.0.1:1"));
  EXPECT_EQ(generator.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(generator.status().message(), HasSubstr("ModelMetadata"));
}

TEST(LoadGeneratorTest, UnknownModelFailsWithTheServersCode) {
  FakeInferenceServer server({});
  LoadGenerator::Options options = ShortRun(server.address());
  options.model = "nope";
  EXPECT_EQ(LoadGenerator::Create(options).status().code(), absl::StatusCode::kNotFound);
}

TEST(LoadGeneratorTest, ModelWithBytesInputIsRejectedBeforeAnyInfer) {
  FakeInferenceServer::Options server_options;
  server_options.input_datatype = "BYTES";
  FakeInferenceServer server(server_options);
  auto generator = LoadGenerator::Create(ShortRun(server.address()));
  EXPECT_EQ(generator.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(server.infer_calls(), 0);
}

TEST(LoadGeneratorTest, ClosedLoopCountsOnlyOkCompletionsInTheWindow) {
  FakeInferenceServer server({});
  auto generator = LoadGenerator::Create(ShortRun(server.address()));
  ASSERT_TRUE(generator.ok()) << generator.status();
  EXPECT_EQ((*generator)->request_bytes() > 3 * 4 * 4, true);
  auto result = (*generator)->Run(LoadMode::kConcurrency, 4);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->mode, LoadMode::kConcurrency);
  EXPECT_EQ(result->level, 4);
  EXPECT_EQ(result->batch, 3);
  EXPECT_EQ(result->window, absl::Milliseconds(300));
  EXPECT_GT(result->statuses.ok(), 0);
  EXPECT_EQ(result->statuses.errors(), 0);
  EXPECT_EQ(result->latency.count, result->statuses.ok());
  // Completions outside the window (warm-up, drain, the probe) are not counted.
  EXPECT_LT(result->statuses.ok(), server.infer_calls());
  EXPECT_DOUBLE_EQ(result->requests_per_s(), result->statuses.ok() / 0.3);
  EXPECT_DOUBLE_EQ(result->samples_per_s(), 3 * result->requests_per_s());
  EXPECT_FALSE(result->send_lateness.has_value());
  EXPECT_LE(result->latency.p50, result->latency.p99);
  EXPECT_LE(result->latency.p99, result->latency.max);
}

TEST(LoadGeneratorTest, ByDefaultALevelUsesAConnectionPerCallUpToSixteen) {
  FakeInferenceServer server({});
  LoadGenerator::Options options = ShortRun(server.address());
  options.channels = 0;
  options.threads = 0;
  auto generator = LoadGenerator::Create(options);
  ASSERT_TRUE(generator.ok()) << generator.status();
  server.TakeInferConnections();  // the probe's

  auto result = (*generator)->Run(LoadMode::kConcurrency, 3);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->channels, 3);
  EXPECT_EQ(result->threads, 3);
  EXPECT_EQ(server.TakeInferConnections(), 3);

  // Every one of 32 calls starts at least once, two on each of the 16 connections.
  result = (*generator)->Run(LoadMode::kConcurrency, 32);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->channels, 16);
  EXPECT_EQ(result->threads, 8);
  EXPECT_EQ(server.TakeInferConnections(), 16);
  EXPECT_EQ(result->statuses.errors(), 0);
}

TEST(LoadGeneratorTest, SetChannelsAreUsedAtEveryLevel) {
  FakeInferenceServer server({});
  auto generator = LoadGenerator::Create(ShortRun(server.address()));  // 2 channels, 2 threads
  ASSERT_TRUE(generator.ok()) << generator.status();
  server.TakeInferConnections();
  auto result = (*generator)->Run(LoadMode::kConcurrency, 8);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->channels, 2);
  EXPECT_EQ(result->threads, 2);
  EXPECT_EQ(server.TakeInferConnections(), 2);
}

TEST(LoadGeneratorTest, GrpcFramedRequestIsTheLengthPrefixedRequest) {
  FakeInferenceServer server({});
  auto generator = LoadGenerator::Create(ShortRun(server.address()));
  ASSERT_TRUE(generator.ok()) << generator.status();
  const std::string framed = (*generator)->GrpcFramedRequest();
  ASSERT_EQ(static_cast<int64_t>(framed.size()), 5 + (*generator)->request_bytes());
  EXPECT_EQ(framed[0], '\0');  // not compressed
  const auto byte = [&](int i) { return static_cast<uint32_t>(static_cast<uint8_t>(framed[i])); };
  EXPECT_EQ(byte(1) << 24 | byte(2) << 16 | byte(3) << 8 | byte(4),
            static_cast<uint32_t>((*generator)->request_bytes()));
  inference::ModelInferRequest request;
  ASSERT_TRUE(request.ParseFromString(framed.substr(5)));
  EXPECT_EQ(request.model_name(), "demo");
  ASSERT_EQ(request.inputs_size(), 1);
  EXPECT_EQ(request.inputs(0).name(), "INPUT0");
  ASSERT_EQ(request.raw_input_contents_size(), 1);
  EXPECT_EQ(request.raw_input_contents(0).size(), 3u * 4 * 4);  // batch 3 of FP32 [4]
}

TEST(LoadGeneratorTest, CountsServerErrorsByCode) {
  FakeInferenceServer::Options server_options;
  server_options.ok_calls = 1;  // the probe
  server_options.error_code = grpc::StatusCode::RESOURCE_EXHAUSTED;
  FakeInferenceServer server(server_options);
  auto generator = LoadGenerator::Create(ShortRun(server.address()));
  ASSERT_TRUE(generator.ok()) << generator.status();
  auto result = (*generator)->Run(LoadMode::kConcurrency, 2);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->statuses.ok(), 0);
  EXPECT_GT(result->statuses.errors(), 0);
  EXPECT_EQ(result->statuses.count(grpc::StatusCode::RESOURCE_EXHAUSTED),
            result->statuses.errors());
  EXPECT_EQ(result->latency.count, 0);
}

TEST(LoadGeneratorTest, CountsCallsPastTheirDeadlineAsDeadlineExceeded) {
  FakeInferenceServer::Options server_options;
  server_options.delay = absl::Milliseconds(50);
  FakeInferenceServer server(server_options);
  LoadGenerator::Options options = ShortRun(server.address());
  options.deadline = absl::Milliseconds(5);
  auto generator = LoadGenerator::Create(options);
  ASSERT_TRUE(generator.ok()) << generator.status();
  auto result = (*generator)->Run(LoadMode::kConcurrency, 2);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->statuses.ok(), 0);
  EXPECT_GT(result->statuses.count(grpc::StatusCode::DEADLINE_EXCEEDED), 0);
  EXPECT_EQ(result->statuses.count(grpc::StatusCode::DEADLINE_EXCEEDED), result->statuses.errors());
}

TEST(LoadGeneratorTest, OpenLoopTimesEveryScheduledSendInTheWindow) {
  FakeInferenceServer server({});
  LoadGenerator::Options options = ShortRun(server.address());
  options.seed = 11;
  auto generator = LoadGenerator::Create(options);
  ASSERT_TRUE(generator.ok()) << generator.status();
  auto result = (*generator)->Run(LoadMode::kRate, 400);
  ASSERT_TRUE(result.ok()) << result.status();
  // The same seed and span give the generator's schedule; count its sends due in the window.
  auto schedule = MakeSchedule(400, options.warmup + options.duration, 11);
  int64_t due_in_window = 0;
  for (int64_t i = 0; i < schedule->size(); ++i) {
    if (schedule->offset(i) >= options.warmup) ++due_in_window;
  }
  ASSERT_TRUE(result->send_lateness.has_value());
  EXPECT_EQ(result->send_lateness->count, due_in_window);
  EXPECT_EQ(result->skipped, 0);
  EXPECT_GT(result->statuses.ok(), 0);
  EXPECT_EQ(result->statuses.errors(), 0);
  EXPECT_LE(result->statuses.ok(), due_in_window + 1024);
}

TEST(LoadGeneratorTest, OpenLoopSkipsSendsBeyondTheInFlightCap) {
  FakeInferenceServer::Options server_options;
  server_options.delay = absl::Milliseconds(20);
  FakeInferenceServer server(server_options);
  LoadGenerator::Options options = ShortRun(server.address());
  options.max_requests_in_flight = 1;
  auto generator = LoadGenerator::Create(options);
  ASSERT_TRUE(generator.ok()) << generator.status();
  // 1000/s offered, while one call at a time taking >= 20 ms can carry at most 50/s.
  auto result = (*generator)->Run(LoadMode::kRate, 1000);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_TRUE(result->send_lateness.has_value());
  EXPECT_GT(result->skipped, 0);
  EXPECT_LT(result->skipped, result->send_lateness->count);
  EXPECT_LE(result->statuses.ok(), 0.3 * 50 + 1);
}

// A fake whose INPUT0 is FP32 [-1, -1], so that the generator's variable_dim sets its length.
FakeInferenceServer::Options VariableLength() {
  FakeInferenceServer::Options options;
  options.variable_length = true;
  return options;
}

TEST(LoadGeneratorTest, ARangeOfLengthsSendsEveryLengthWithMatchingBytes) {
  FakeInferenceServer server(VariableLength());
  LoadGenerator::Options options = ShortRun(server.address());
  options.variable_dim = LengthRange{2, 5};
  auto generator = LoadGenerator::Create(options);
  ASSERT_TRUE(generator.ok()) << generator.status();
  // The probes: the longest, then the shortest.
  EXPECT_EQ(server.lengths(), (std::map<int64_t, int64_t>{{2, 1}, {5, 1}}));
  EXPECT_EQ((*generator)->request_bytes(), (*generator)->GrpcFramedRequest().size() - 5);

  auto result = (*generator)->Run(LoadMode::kConcurrency, 4);
  ASSERT_TRUE(result.ok()) << result.status();
  // The fake refuses a tensor whose bytes do not match its shape: none did.
  EXPECT_EQ(result->statuses.errors(), 0);
  EXPECT_GT(result->statuses.ok(), 0);
  const std::map<int64_t, int64_t> lengths = server.lengths();
  ASSERT_EQ(lengths.size(), 4u);
  EXPECT_EQ(lengths.begin()->first, 2);
  EXPECT_EQ(lengths.rbegin()->first, 5);
  int64_t calls = 0;
  for (const auto& [length, n] : lengths) calls += n;
  EXPECT_EQ(calls, server.infer_calls());
}

TEST(LoadGeneratorTest, OneLengthSendsOnlyThatLength) {
  FakeInferenceServer server(VariableLength());
  LoadGenerator::Options options = ShortRun(server.address());
  options.variable_dim = LengthRange{7, 7};
  auto generator = LoadGenerator::Create(options);
  ASSERT_TRUE(generator.ok()) << generator.status();
  auto result = (*generator)->Run(LoadMode::kConcurrency, 2);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->statuses.errors(), 0);
  EXPECT_EQ(server.lengths(), (std::map<int64_t, int64_t>{{7, server.infer_calls()}}));
}

TEST(LoadGeneratorTest, RefusesARangeOfLengthsWithSharedMemory) {
  LoadGenerator::Options options;
  options.variable_dim = LengthRange{16, 256};
  EXPECT_TRUE(LoadGenerator::ValidateOptions(options).ok());
  options.shared_memory = true;
  EXPECT_THAT(LoadGenerator::ValidateOptions(options).message(),
              HasSubstr("variable_dim must be a single length with shared_memory"));
  options.variable_dim = LengthRange{16, 16};
  EXPECT_TRUE(LoadGenerator::ValidateOptions(options).ok());
  options.variable_dim = LengthRange{1, 2000};
  options.shared_memory = false;
  EXPECT_THAT(LoadGenerator::ValidateOptions(options).message(),
              HasSubstr("a range of at most 1024 lengths; got 1:2000"));
}

TEST(LoadGeneratorTest, ProbeOfARangeNamesTheLengthTheServerRefused) {
  FakeInferenceServer::Options server_options = VariableLength();
  server_options.ok_calls = 0;
  server_options.error_code = grpc::StatusCode::INVALID_ARGUMENT;
  FakeInferenceServer server(server_options);
  LoadGenerator::Options options = ShortRun(server.address());
  options.variable_dim = LengthRange{16, 600};
  auto generator = LoadGenerator::Create(options);
  EXPECT_EQ(generator.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(generator.status().message(), HasSubstr("probe ModelInfer at variable_dim 600"));
}

TEST(LoadGeneratorTest, RejectsAFractionalConcurrency) {
  FakeInferenceServer server({});
  auto generator = LoadGenerator::Create(ShortRun(server.address()));
  ASSERT_TRUE(generator.ok()) << generator.status();
  EXPECT_EQ((*generator)->Run(LoadMode::kConcurrency, 2.5).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*generator)->Run(LoadMode::kConcurrency, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace coalesce
