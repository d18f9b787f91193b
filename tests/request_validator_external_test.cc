// ValidateInferRequest with inputs whose bytes travel outside the message (shared memory): how
// raw_input_contents lines up with the remaining inputs, and that their sizes pass the same
// checks as raw contents.
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/request_validator.h"

namespace coalesce {
namespace {

using inference::ModelInferRequest;

// Inputs A (FP32 [-1, 2, 3]) and B (INT8 [-1, 4]).
ModelMetadata TwoInputModel() {
  ModelMetadata m;
  m.name = "pair";
  m.max_batch_size = 8;
  m.inputs.push_back({"A", DataType::kFp32, {2, 3}});
  m.inputs.push_back({"B", DataType::kInt8, {4}});
  m.outputs.push_back({"X", DataType::kFp32, {3}});
  return m;
}

// Two rows, inputs in request order B, A; no contents yet.
ModelInferRequest Request() {
  ModelInferRequest r;
  r.set_model_name("pair");
  auto* b = r.add_inputs();
  b->set_name("B");
  b->set_datatype("INT8");
  b->add_shape(2);
  b->add_shape(4);
  auto* a = r.add_inputs();
  a->set_name("A");
  a->set_datatype("FP32");
  for (int64_t d : {2, 2, 3}) a->add_shape(d);
  return r;
}

constexpr int64_t kBytesA = 2 * 6 * 4;
constexpr int64_t kBytesB = 2 * 4;

TEST(RequestValidatorExternalTest, InputElsewhereTakesNoRawEntryAndTheRestKeepRequestOrder) {
  ModelInferRequest request = Request();
  *request.add_raw_input_contents() = std::string(kBytesB, 7);  // B only
  const std::string shared(kBytesA, 9);
  std::vector<std::optional<ExternalInput>> external(2);
  external[1] = ExternalInput{shared, "shared memory region 'r' (offset 0)"};

  auto v = ValidateInferRequest(TwoInputModel(), request, external);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->rows, 2);
  // Model order: A, then B. A's view is the external bytes themselves, not a copy.
  EXPECT_EQ(v->inputs[0].data(), shared.data());
  EXPECT_EQ(v->inputs[0].size(), static_cast<size_t>(kBytesA));
  EXPECT_EQ(v->inputs[1], std::string(kBytesB, 7));
}

TEST(RequestValidatorExternalTest, RawEntriesForEveryInputAreRefusedWhenOneIsElsewhere) {
  ModelInferRequest request = Request();
  *request.add_raw_input_contents() = std::string(kBytesB, 7);
  *request.add_raw_input_contents() = std::string(kBytesA, 9);
  const std::string shared(kBytesA, 9);
  std::vector<std::optional<ExternalInput>> external(2);
  external[1] = ExternalInput{shared, "shared memory region 'r'"};

  auto v = ValidateInferRequest(TwoInputModel(), request, external);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(v.status().message().find("2 raw_input_contents for 1 inputs outside shared memory"),
            absl::string_view::npos)
      << v.status();
}

TEST(RequestValidatorExternalTest, ExternalBytesOfTheWrongSizeNameSourceAndExpectedSize) {
  ModelInferRequest request = Request();
  *request.add_raw_input_contents() = std::string(kBytesB, 7);
  const std::string shared(kBytesA - 4, 9);
  std::vector<std::optional<ExternalInput>> external(2);
  external[1] = ExternalInput{shared, "shared memory region 'r' (offset 16, byte_size 44)"};

  auto v = ValidateInferRequest(TwoInputModel(), request, external);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(v.status().message(),
            "input 'A': shared memory region 'r' (offset 16, byte_size 44) holds 44 bytes, "
            "expected 48 for shape [2, 2, 3] of FP32")
      << v.status();
}

TEST(RequestValidatorExternalTest, InputsAllElsewhereNeedNeitherRawNorTypedContents) {
  ModelInferRequest request = Request();
  const std::string a(kBytesA, 1);
  const std::string b(kBytesB, 2);
  std::vector<std::optional<ExternalInput>> external = {ExternalInput{b, "region 'b'"},
                                                         ExternalInput{a, "region 'a'"}};
  auto v = ValidateInferRequest(TwoInputModel(), request, external);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->inputs[0].data(), a.data());
  EXPECT_EQ(v->inputs[1].data(), b.data());
  EXPECT_TRUE(v->owned_inputs.empty());
}

TEST(RequestValidatorExternalTest, TypedContentsBesideExternalBytesAreRefused) {
  ModelInferRequest request = Request();
  *request.add_raw_input_contents() = std::string(kBytesB, 7);
  request.mutable_inputs(1)->mutable_contents()->add_fp32_contents(1.0f);
  const std::string shared(kBytesA, 9);
  std::vector<std::optional<ExternalInput>> external(2);
  external[1] = ExternalInput{shared, "shared memory region 'r'"};

  auto v = ValidateInferRequest(TwoInputModel(), request, external);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(v.status().message().find("input 'A' has typed contents, but its data is in "
                                      "shared memory region 'r'"),
            absl::string_view::npos)
      << v.status();
}

}  // namespace
}  // namespace coalesce
