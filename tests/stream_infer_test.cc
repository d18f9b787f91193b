// ModelStreamInfer over loopback, against a model that echoes its input: answers match their
// requests by id, errors (a message that is no request included) travel in error_message without
// ending the stream, and a client that walks away mid-stream leaves the server serving.
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "execution/demo_model.h"
#include "execution/echo_backend.h"
#include "proto/inference.grpc.pb.h"
#include "tests/raw_calls.h"
#include "tests/test_server.h"

namespace coalesce {
namespace {

using inference::GRPCInferenceService;
using inference::ModelInferRequest;
using inference::ModelStreamInferResponse;

constexpr int64_t kRowFloats = DemoModel::kTokens * DemoModel::kWidth;

// A one-row demo-shaped request whose every value is `value`.
ModelInferRequest Request(const std::string& id, float value) {
  ModelInferRequest request;
  request.set_model_name("demo");
  request.set_id(id);
  auto* input = request.add_inputs();
  input->set_name("INPUT0");
  input->set_datatype("FP32");
  input->add_shape(1);
  input->add_shape(DemoModel::kTokens);
  input->add_shape(DemoModel::kWidth);
  std::vector<float> row(kRowFloats, value);
  request.add_raw_input_contents(std::string(reinterpret_cast<char*>(row.data()),
                                             row.size() * sizeof(float)));
  return request;
}

class StreamInferTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto echo = EchoBackend::Create(DemoModel::Metadata(16));
    ASSERT_TRUE(echo.ok());
    auto server = StartLoopbackServer(*std::move(echo), ServedModel::Options());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = GRPCInferenceService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_->grpc_port()), grpc::InsecureChannelCredentials()));
  }

  std::unique_ptr<Server> server_;
  std::unique_ptr<GRPCInferenceService::Stub> stub_;
};

TEST_F(StreamInferTest, EveryRequestIsAnsweredOnceAndAnErrorDoesNotEndTheStream) {
  grpc::ClientContext context;
  auto stream = stub_->ModelStreamInfer(&context);
  constexpr int kRequests = 20;
  for (int i = 0; i < kRequests; ++i) {
    ModelInferRequest request = Request(absl::StrCat("r", i), static_cast<float>(i));
    // Request 7 has a wrong shape.
    if (i == 7) request.mutable_inputs(0)->set_shape(2, DemoModel::kWidth + 1);
    ASSERT_TRUE(stream->Write(request));
  }
  ASSERT_TRUE(stream->WritesDone());
  std::map<std::string, int> answers;
  ModelStreamInferResponse response;
  while (stream->Read(&response)) {
    const std::string& id = response.infer_response().id();
    ++answers[id];
    if (id == "r7") {
      EXPECT_NE(response.error_message().find("INPUT0"), std::string::npos)
          << response.error_message();
      EXPECT_EQ(response.infer_response().raw_output_contents_size(), 0);
      continue;
    }
    EXPECT_EQ(response.error_message(), "") << id;
    ASSERT_EQ(response.infer_response().raw_output_contents_size(), 1) << id;
    const std::string& bytes = response.infer_response().raw_output_contents(0);
    ASSERT_EQ(bytes.size(), kRowFloats * sizeof(float));
    float first, last;
    std::memcpy(&first, bytes.data(), sizeof(float));
    std::memcpy(&last, bytes.data() + bytes.size() - sizeof(float), sizeof(float));
    const float expected = static_cast<float>(std::stoi(id.substr(1)));
    EXPECT_EQ(first, expected) << id;
    EXPECT_EQ(last, expected) << id;
  }
  grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(answers.size(), static_cast<size_t>(kRequests));
  for (const auto& [id, count] : answers) EXPECT_EQ(count, 1) << id;
}

TEST_F(StreamInferTest, AMessageThatIsNoRequestIsAnsweredInBandAndTheStreamGoesOn) {
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->grpc_port()),
                                     grpc::InsecureChannelCredentials());
  grpc::ClientContext context;
  std::unique_ptr<RawStream> stream = RawModelStreamInfer(channel, &context);
  constexpr int kMessages = 11;
  for (int i = 0; i < kMessages; ++i) {
    // The sixth message is no ModelInferRequest.
    ASSERT_TRUE(stream->Write(i == 5 ? BytesOf(kNotAProtobuf)
                                     : BytesOf(Request(absl::StrCat("r", i), 1.0f))));
  }
  ASSERT_TRUE(stream->WritesDone());
  std::map<std::string, int> answers;
  grpc::ByteBuffer bytes;
  while (stream->Read(&bytes)) {
    ModelStreamInferResponse response;
    ASSERT_TRUE(ParseBytes(bytes, &response));
    const std::string& id = response.infer_response().id();
    ++answers[id];
    if (id.empty()) {
      EXPECT_EQ(response.error_message(),
                "stream message 6: request is not a valid ModelInferRequest: 6 bytes that do not "
                "parse as one");
    } else {
      EXPECT_EQ(response.error_message(), "") << id;
    }
  }
  grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(answers.size(), static_cast<size_t>(kMessages));
  for (const auto& [id, count] : answers) EXPECT_EQ(count, 1) << id;
}

TEST_F(StreamInferTest, AClientThatCancelsMidStreamLeavesTheServerServing) {
  for (int round = 0; round < 5; ++round) {
    grpc::ClientContext context;
    auto stream = stub_->ModelStreamInfer(&context);
    for (int i = 0; i < 30; ++i) stream->Write(Request(absl::StrCat("c", i), 1.0f));
    ModelStreamInferResponse response;
    stream->Read(&response);  // At least one answer is on its way; then walk away.
    context.TryCancel();
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  // The server still answers a new stream fully.
  grpc::ClientContext context;
  auto stream = stub_->ModelStreamInfer(&context);
  ASSERT_TRUE(stream->Write(Request("after", 3.0f)));
  ASSERT_TRUE(stream->WritesDone());
  ModelStreamInferResponse response;
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.infer_response().id(), "after");
  EXPECT_EQ(response.error_message(), "");
  EXPECT_FALSE(stream->Read(&response));
  EXPECT_TRUE(stream->Finish().ok());
}

}  // namespace
}  // namespace coalesce
