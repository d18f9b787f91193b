// The inference calls' own handling of their answers' bytes (server/wire_messages.h; requests:
// wire_requests_test.cc).
//
// Answers serialized from WireOutputs (the executor's scatter writing into the slices gRPC sends)
// are the bytes protobuf writes for the same message with raw_output_contents filled in, as the
// server answered before: Triton's clients parse them. Checked on the serializer alone and over
// loopback, for ModelInfer and ModelStreamInfer, with raw and typed-contents requests, several
// outputs (one FP16-staged), a subset of outputs and error answers.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "execution/backend.h"
#include "proto/inference.pb.h"
#include "server/wire_messages.h"
#include "tests/raw_calls.h"
#include "tests/test_server.h"

namespace coalesce {
namespace {

using inference::ModelInferRequest;
using inference::ModelInferResponse;
using inference::ModelStreamInferResponse;

std::string Flatten(const grpc::ByteBuffer& bytes) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(bytes.Dump(&slices).ok());
  std::string flat;
  for (const grpc::Slice& slice : slices) {
    flat.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return flat;
}

// A response with every field of ModelInferResponse but raw_output_contents set.
ModelInferResponse Fields() {
  ModelInferResponse response;
  response.set_model_name("m");
  response.set_model_version("7");
  response.set_id("request-1");
  (*response.mutable_parameters())["p"].set_int64_param(3);
  for (const char* name : {"A", "B", "C", "D"}) {
    auto* output = response.add_outputs();
    output->set_name(name);
    output->set_datatype("FP32");
    output->add_shape(2);
    output->add_shape(-1);
  }
  return response;
}

// Serializes `response` with `contents` as WireOutputs, as the server now does, and with them in
// raw_output_contents, as it did before; the bytes must be the same.
void ExpectSameBytes(const std::vector<std::string>& contents, bool in_stream) {
  ModelInferResponse fields = Fields();
  WireOutputs outputs;
  for (const std::string& content : contents) {
    char* memory = outputs.Add()->Allocate(static_cast<int64_t>(content.size()));
    if (!content.empty()) std::memcpy(memory, content.data(), content.size());
  }
  grpc::ByteBuffer wire;
  ASSERT_TRUE(outputs.Serialize(fields, in_stream, &wire).ok());

  ModelStreamInferResponse whole;
  ModelInferResponse& old = *whole.mutable_infer_response();
  old = fields;
  for (const std::string& content : contents) old.add_raw_output_contents(content);
  const std::string expected = in_stream ? whole.SerializeAsString() : old.SerializeAsString();
  EXPECT_EQ(Flatten(wire), expected);
  // And protobuf reads back every entry.
  ModelStreamInferResponse parsed;
  ASSERT_TRUE(in_stream ? parsed.ParseFromString(Flatten(wire))
                        : parsed.mutable_infer_response()->ParseFromString(Flatten(wire)));
  ASSERT_EQ(parsed.infer_response().raw_output_contents_size(), static_cast<int>(contents.size()));
  for (size_t k = 0; k < contents.size(); ++k) {
    EXPECT_EQ(parsed.infer_response().raw_output_contents(k), contents[k]);
  }
}

TEST(WireOutputsTest, SerializesAsProtobufDoes) {
  // Lengths whose varints take 1, 2 and 3 bytes, an empty entry, and none at all; in and out of
  // a stream's envelope (whose own length then takes 3 bytes).
  const std::vector<std::vector<std::string>> cases = {
      {}, {Pattern(0, 0)}, {Pattern(5, 1)}, {Pattern(300, 2), Pattern(0, 3), Pattern(70000, 4)},
      {Pattern(127, 5), Pattern(128, 6), Pattern(16383, 7), Pattern(16384, 8)}};
  for (const auto& contents : cases) {
    for (bool in_stream : {false, true}) {
      SCOPED_TRACE(absl::StrCat(contents.size(), " outputs, in_stream ", in_stream));
      ExpectSameBytes(contents, in_stream);
    }
  }
}

TEST(WireOutputsTest, MoveIntoPutsTheEntriesInTheMessage) {
  WireOutputs outputs;
  std::memcpy(outputs.Add()->Allocate(3), "abc", 3);
  outputs.Add()->Allocate(0);
  ModelInferResponse response;
  outputs.MoveInto(&response);
  EXPECT_EQ(outputs.size(), 0);
  ASSERT_EQ(response.raw_output_contents_size(), 2);
  EXPECT_EQ(response.raw_output_contents(0), "abc");
  EXPECT_EQ(response.raw_output_contents(1), "");
}

TEST(WireOutputsTest, AllocatedMemoryIsAlignedForAnyElement) {
  WireOutputs outputs;
  for (int64_t bytes : {1, 4, 12, 4096}) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(outputs.Add()->Allocate(bytes)) % 16, 0u);
  }
}

// Echoes each input to the output of the same index through the staging layouts given: an
// FP16-staged tensor is narrowed while gathered and widened while scattered.
class StagedEchoBackend : public Backend {
 public:
  StagedEchoBackend(ModelMetadata metadata, std::vector<const StagingLayout*> layouts)
      : metadata_(std::move(metadata)), layouts_(std::move(layouts)) {}
  const ModelMetadata& metadata() const override { return metadata_; }
  absl::Status Execute(int worker, int64_t rows, absl::Span<const char* const> inputs,
                       absl::Span<char* const> outputs) override {
    for (size_t i = 0; i < outputs.size(); ++i) {
      std::memcpy(outputs[i], inputs[i],
                  rows * layouts_[i]->StagedBytes(metadata_.inputs[i].RowBytes()));
    }
    return absl::OkStatus();
  }
  const StagingLayout& InputStaging(int i) const override { return *layouts_[i]; }
  const StagingLayout& OutputStaging(int o) const override { return *layouts_[o]; }
  std::string DeviceDescription() const override { return "staged memcpy"; }

 private:
  const ModelMetadata metadata_;
  const std::vector<const StagingLayout*> layouts_;
};

// HALF is FP16-staged; WHOLE and COUNT travel as they are.
ModelMetadata ThreeTensors() {
  ModelMetadata metadata;
  metadata.name = "three";
  metadata.max_batch_size = 8;
  metadata.inputs = {{"HALF_IN", DataType::kFp32, {4}},
                     {"WHOLE_IN", DataType::kFp32, {3}},
                     {"COUNT_IN", DataType::kInt64, {2}}};
  metadata.outputs = {{"HALF", DataType::kFp32, {4}},
                      {"WHOLE", DataType::kFp32, {3}},
                      {"COUNT", DataType::kInt64, {2}}};
  return metadata;
}

// Values exact in FP16, so the staged round trip keeps them.
const std::vector<float> kHalf = {0.5f, -1.25f, 3.0f, 1024.0f, 2.0f, -0.75f, 6.5f, 0.0f};
const std::vector<float> kWhole = {0.1f, 1e-8f, 123456.789f, -7.0f, 3.14159f, 2.71828f};
const std::vector<int64_t> kCount = {1, -2, 1LL << 40, 4};

template <typename T>
std::string BytesOfValues(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

// A two-row request for `three`; `typed`: the inputs in typed contents, not raw bytes.
// `asked`: the outputs requested by name (all when empty).
ModelInferRequest Request(bool typed, const std::vector<std::string>& asked) {
  ModelInferRequest request;
  request.set_model_name("three");
  request.set_id(typed ? "typed" : "raw");
  const auto add = [&](const char* name, const char* datatype, int64_t width) {
    auto* input = request.add_inputs();
    input->set_name(name);
    input->set_datatype(datatype);
    input->add_shape(2);
    input->add_shape(width);
    return input;
  };
  auto* half = add("HALF_IN", "FP32", 4);
  auto* whole = add("WHOLE_IN", "FP32", 3);
  auto* count = add("COUNT_IN", "INT64", 2);
  if (typed) {
    for (float v : kHalf) half->mutable_contents()->add_fp32_contents(v);
    for (float v : kWhole) whole->mutable_contents()->add_fp32_contents(v);
    for (int64_t v : kCount) count->mutable_contents()->add_int64_contents(v);
  } else {
    request.add_raw_input_contents(BytesOfValues(kHalf));
    request.add_raw_input_contents(BytesOfValues(kWhole));
    request.add_raw_input_contents(BytesOfValues(kCount));
  }
  for (const std::string& name : asked) request.add_outputs()->set_name(name);
  return request;
}

// The answer the server gave before WireOutputs: the message with raw_output_contents filled in.
ModelInferResponse ExpectedAnswer(const ModelInferRequest& request,
                                  const std::vector<std::string>& asked) {
  ModelInferResponse response;
  response.set_model_name("three");
  response.set_model_version("1");
  response.set_id(request.id());
  struct Output {
    const char* name;
    const char* datatype;
    int64_t width;
    std::string bytes;
  };
  const std::vector<Output> all = {{"HALF", "FP32", 4, BytesOfValues(kHalf)},
                                   {"WHOLE", "FP32", 3, BytesOfValues(kWhole)},
                                   {"COUNT", "INT64", 2, BytesOfValues(kCount)}};
  // The outputs asked for in the order asked, else all in the model's order.
  std::vector<const Output*> answered;
  for (const Output& output : all) answered.push_back(&output);
  if (!asked.empty()) {
    answered.clear();
    for (const std::string& name : asked) {
      for (const Output& output : all) {
        if (output.name == name) answered.push_back(&output);
      }
    }
  }
  for (const Output* each : answered) {
    const Output& output = *each;
    auto* tensor = response.add_outputs();
    tensor->set_name(output.name);
    tensor->set_datatype(output.datatype);
    tensor->add_shape(2);
    tensor->add_shape(output.width);
    response.add_raw_output_contents(output.bytes);
  }
  return response;
}

class WireAnswerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = StartLoopbackServer(
        std::make_unique<StagedEchoBackend>(
            ThreeTensors(), std::vector<const StagingLayout*>{&StagingLayout::Fp16(),
                                                              &StagingLayout::Wire(),
                                                              &StagingLayout::Wire()}),
        ServedModel::Options());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->grpc_port()),
                                   grpc::InsecureChannelCredentials());
  }

  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

const std::vector<std::vector<std::string>> kAsked = {{}, {"COUNT", "HALF"}, {"WHOLE"}};

TEST_F(WireAnswerTest, ModelInferAnswersTheBytesProtobufWrites) {
  for (bool typed : {false, true}) {
    for (const auto& asked : kAsked) {
      SCOPED_TRACE(absl::StrCat(typed ? "typed" : "raw", ", ", asked.size(), " asked"));
      const ModelInferRequest request = Request(typed, asked);
      grpc::ClientContext context;
      grpc::ByteBuffer answer;
      grpc::Status status =
          RawUnaryCall(channel_, &context, "ModelInfer", BytesOf(request), &answer);
      ASSERT_TRUE(status.ok()) << status.error_message();
      EXPECT_EQ(Flatten(answer), ExpectedAnswer(request, asked).SerializeAsString());
    }
  }
  // An error answers a status and no message.
  ModelInferRequest bad = Request(false, {});
  bad.mutable_inputs(1)->set_shape(1, 5);
  grpc::ClientContext context;
  grpc::ByteBuffer answer;
  grpc::Status status = RawUnaryCall(channel_, &context, "ModelInfer", BytesOf(bad), &answer);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(WireAnswerTest, ModelStreamInferAnswersTheBytesProtobufWrites) {
  grpc::ClientContext context;
  std::unique_ptr<RawStream> stream = RawModelStreamInfer(channel_, &context);
  // One at a time, so that the answers come back in order.
  for (bool typed : {false, true}) {
    for (const auto& asked : kAsked) {
      SCOPED_TRACE(absl::StrCat(typed ? "typed" : "raw", ", ", asked.size(), " asked"));
      const ModelInferRequest request = Request(typed, asked);
      ASSERT_TRUE(stream->Write(BytesOf(request)));
      grpc::ByteBuffer answer;
      ASSERT_TRUE(stream->Read(&answer));
      ModelStreamInferResponse expected;
      *expected.mutable_infer_response() = ExpectedAnswer(request, asked);
      EXPECT_EQ(Flatten(answer), expected.SerializeAsString());
    }
  }
  // An error answer: the message in error_message, the request's names and id, no outputs.
  ModelInferRequest bad = Request(false, {});
  bad.set_id("bad");
  bad.mutable_inputs(1)->set_shape(1, 5);
  ASSERT_TRUE(stream->Write(BytesOf(bad)));
  grpc::ByteBuffer answer;
  ASSERT_TRUE(stream->Read(&answer));
  ModelStreamInferResponse parsed;
  ASSERT_TRUE(ParseBytes(answer, &parsed));
  EXPECT_FALSE(parsed.error_message().empty());
  ModelStreamInferResponse expected;
  expected.set_error_message(parsed.error_message());
  expected.mutable_infer_response()->set_model_name("three");
  expected.mutable_infer_response()->set_id("bad");
  EXPECT_EQ(Flatten(answer), expected.SerializeAsString());
  ASSERT_TRUE(stream->WritesDone());
  EXPECT_TRUE(stream->Finish().ok());
}

}  // namespace
}  // namespace coalesce
