// Hostile names and contents over a real server on loopback (the echo demo model), read by a
// client with gRPC's default limits: a huge name gets the error it would get if it were short,
// quoted cut; a name with a line break leaves one log line; typed contents with a field of
// another type are refused.
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "proto/inference.grpc.pb.h"
#include "server/log_control.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "tests/capture_sink.h"
#include "tests/echo_test_server.h"

namespace coalesce {
namespace {

// Far past what a client's default metadata limit (8 KiB) can take back in a status message.
const std::string& HugeName() {
  static const std::string* name = new std::string(1 << 20, 'n');
  return *name;
}

class HostileRequestTest : public testing::Test {
 protected:
  void SetUp() override {
    auto server = StartEchoServer({});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = LoopbackStub(*server_);  // The client's metadata limit is gRPC's default.
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(5));
  }

  grpc::Status Infer(const inference::ModelInferRequest& request) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    inference::ModelInferResponse response;
    return stub_->ModelInfer(&context, request, &response);
  }

  // Expects `status` to be `code`, its message to hold `says` and the huge name cut.
  static void ExpectCut(const grpc::Status& status, grpc::StatusCode code,
                        const std::string& says) {
    EXPECT_EQ(status.error_code(), code) << status.error_message().substr(0, 200);
    EXPECT_NE(status.error_message().find(says), std::string::npos) << status.error_message();
    EXPECT_NE(status.error_message().find("...(1048576 bytes)"), std::string::npos)
        << status.error_message();
    EXPECT_LT(status.error_message().size(), 1024u);
  }

  std::unique_ptr<Server> server_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
};

TEST_F(HostileRequestTest, AMegabyteModelNameIsNotFoundWithTheNameCut) {
  inference::ModelInferRequest request = EchoRequest(1);
  request.set_model_name(HugeName());
  ExpectCut(Infer(request), grpc::StatusCode::NOT_FOUND,
            absl::StrCat("Request for unknown model: '", std::string(128, 'n'), "...(1048576 bytes)'"));

  grpc::ClientContext context;
  inference::ModelMetadataRequest metadata;
  metadata.set_name(HugeName());
  inference::ModelMetadataResponse response;
  ExpectCut(stub_->ModelMetadata(&context, metadata, &response), grpc::StatusCode::NOT_FOUND,
            "Request for unknown model");
}

TEST_F(HostileRequestTest, AMegabyteInputOrOutputNameIsInvalidArgumentWithTheNameCut) {
  inference::ModelInferRequest input = EchoRequest(1);
  input.mutable_inputs(0)->set_name(HugeName());
  ExpectCut(Infer(input), grpc::StatusCode::INVALID_ARGUMENT, "has no input named");

  inference::ModelInferRequest output = EchoRequest(1);
  output.add_outputs()->set_name(HugeName());
  ExpectCut(Infer(output), grpc::StatusCode::INVALID_ARGUMENT, "has no output named");
}

TEST_F(HostileRequestTest, AMegabyteParameterNameIsInvalidArgumentWithTheNameCut) {
  inference::ModelInferRequest request = EchoRequest(1);
  (*request.mutable_inputs(0)->mutable_parameters())[HugeName()].set_bool_param(true);
  ExpectCut(Infer(request), grpc::StatusCode::INVALID_ARGUMENT, "unknown parameter");
}

TEST_F(HostileRequestTest, TypedContentsWithAStrayFieldOfAnotherTypeAreRefused) {
  inference::ModelInferRequest request = EchoRequest(1);
  request.clear_raw_input_contents();
  auto* contents = request.mutable_inputs(0)->mutable_contents();
  for (int64_t i = 0; i < kEchoRowFloats; ++i) contents->add_fp32_contents(1.0f);
  contents->add_int_contents(7);
  grpc::Status status = Infer(request);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_NE(status.error_message().find("input 'INPUT0'"), std::string::npos)
      << status.error_message();
  EXPECT_NE(status.error_message().find("contents.int_contents"), std::string::npos)
      << status.error_message();
}

// Reads what the server logs, at verbose level 1 (per-request access lines).
class HostileRequestLogTest : public HostileRequestTest {
 protected:
  void SetUp() override {
    capture_ = std::make_shared<CaptureSink>();
    LogSettings verbose;
    verbose.verbose_level = 1;
    ASSERT_TRUE(LogControl::Global().Apply(verbose).ok());
    LogControl::Global().Install(capture_);
    HostileRequestTest::SetUp();
  }
  void TearDown() override {
    HostileRequestTest::TearDown();
    LogControl::Global().Apply(LogSettings()).IgnoreError();
    LogControl::Global().Install(std::make_shared<spdlog::sinks::stdout_sink_mt>());
  }

  // Expects exactly one line to mention "FORGED", quoting it as `escaped`.
  void ExpectOneLine(const std::string& escaped) {
    std::vector<std::string> mentioning = capture_->LinesContaining("FORGED");
    ASSERT_EQ(mentioning.size(), 1u) << absl::StrJoin(mentioning, "|");
    EXPECT_TRUE(absl::StrContains(mentioning[0], escaped)) << mentioning[0];
    // One event, one line: the only line break ends it.
    EXPECT_EQ(mentioning[0].find('\n'), mentioning[0].size() - 1) << mentioning[0];
  }

  std::shared_ptr<CaptureSink> capture_;
};

TEST_F(HostileRequestLogTest, AModelNameWithALineBreakLeavesOneEscapedLogLine) {
  inference::ModelInferRequest request = EchoRequest(1);
  request.set_model_name("a\nFORGED line");
  EXPECT_EQ(Infer(request).error_code(), grpc::StatusCode::NOT_FOUND);
  ExpectOneLine("model=a\\nFORGED line");
}

TEST_F(HostileRequestLogTest, ARequestIdWithALineBreakLeavesOneEscapedAccessLine) {
  inference::ModelInferRequest request = EchoRequest(1);
  request.set_id("7\r\nFORGED line");
  EXPECT_TRUE(Infer(request).ok());
  ExpectOneLine("id=7\\r\\nFORGED line");
}

}  // namespace
}  // namespace coalesce
