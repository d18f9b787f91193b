#include "server/request_validator.h"

#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/tensor_parameters.h"

namespace coalesce {
namespace {

using inference::ModelInferRequest;

// Two inputs so that ordering, pairing and batch agreement can go wrong.
ModelMetadata TwoInputModel() {
  ModelMetadata m;
  m.name = "pair";
  m.max_batch_size = 8;
  m.inputs.push_back({"A", DataType::kFp32, {2, 3}});
  m.inputs.push_back({"B", DataType::kInt8, {4}});
  m.outputs.push_back({"X", DataType::kFp32, {3}});
  m.outputs.push_back({"Y", DataType::kInt64, {1}});
  return m;
}

std::string Bytes(int64_t n, char fill = 1) { return std::string(n, fill); }

// A valid request for TwoInputModel with `rows` samples, inputs in the order B, A.
ModelInferRequest ValidRequest(int64_t rows = 2) {
  ModelInferRequest r;
  r.set_model_name("pair");
  auto* b = r.add_inputs();
  b->set_name("B");
  b->set_datatype("INT8");
  for (int64_t d : {rows, int64_t{4}}) b->add_shape(d);
  auto* a = r.add_inputs();
  a->set_name("A");
  a->set_datatype("FP32");
  for (int64_t d : {rows, int64_t{2}, int64_t{3}}) a->add_shape(d);
  *r.add_raw_input_contents() = Bytes(rows * 4, 7);
  *r.add_raw_input_contents() = Bytes(rows * 6 * 4, 9);
  return r;
}

// Asserts INVALID_ARGUMENT whose message contains each of `parts`.
void ExpectInvalid(const ModelInferRequest& request, std::vector<std::string> parts) {
  absl::StatusOr<ValidatedRequest> v = ValidateInferRequest(TwoInputModel(), request);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  for (const std::string& part : parts) {
    EXPECT_NE(v.status().message().find(part), std::string::npos)
        << "message '" << v.status().message() << "' lacks '" << part << "'";
  }
}

TEST(RequestValidatorTest, AcceptsRawInputsInAnyOrderAndMapsThemToModelOrder) {
  ModelInferRequest r = ValidRequest(2);
  absl::StatusOr<ValidatedRequest> v = ValidateInferRequest(TwoInputModel(), r);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->rows, 2);
  ASSERT_EQ(v->inputs.size(), 2u);
  EXPECT_EQ(v->inputs[0].data(), r.raw_input_contents(1).data());  // A, zero-copy.
  EXPECT_EQ(v->inputs[1].data(), r.raw_input_contents(0).data());  // B.
  EXPECT_EQ(v->outputs, (std::vector<int>{0, 1}));
}

TEST(RequestValidatorTest, RequestedOutputsKeepRequestOrder) {
  ModelInferRequest r = ValidRequest();
  r.add_outputs()->set_name("Y");
  r.add_outputs()->set_name("X");
  auto v = ValidateInferRequest(TwoInputModel(), r);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->outputs, (std::vector<int>{1, 0}));
}

TEST(RequestValidatorTest, DecodesTypedContents) {
  ModelInferRequest r = ValidRequest(1);
  r.clear_raw_input_contents();
  for (int i = 0; i < 4; ++i) r.mutable_inputs(0)->mutable_contents()->add_int_contents(i - 2);
  for (int i = 0; i < 6; ++i) {
    r.mutable_inputs(1)->mutable_contents()->add_fp32_contents(0.5f * i);
  }
  auto v = ValidateInferRequest(TwoInputModel(), r);
  ASSERT_TRUE(v.ok()) << v.status();
  std::vector<float> a(6);
  ASSERT_EQ(v->inputs[0].size(), 24u);
  std::memcpy(a.data(), v->inputs[0].data(), 24);
  EXPECT_EQ(a, (std::vector<float>{0, 0.5, 1, 1.5, 2, 2.5}));
  ASSERT_EQ(v->inputs[1].size(), 4u);
  EXPECT_EQ(static_cast<int8_t>(v->inputs[1][0]), -2);
  EXPECT_EQ(static_cast<int8_t>(v->inputs[1][3]), 1);
}

TEST(RequestValidatorTest, UnknownInputNameIsNamed) {
  ModelInferRequest r = ValidRequest();
  r.mutable_inputs(0)->set_name("C");
  ExpectInvalid(r, {"no input named 'C'", "A, B"});
}

TEST(RequestValidatorTest, MissingInputIsNamed) {
  ModelInferRequest r = ValidRequest();
  r.mutable_inputs()->RemoveLast();
  r.mutable_raw_input_contents()->RemoveLast();
  ExpectInvalid(r, {"missing input 'A'"});
}

TEST(RequestValidatorTest, DuplicateInputIsRefused) {
  ModelInferRequest r = ValidRequest();
  r.mutable_inputs(1)->set_name("B");
  ExpectInvalid(r, {"'B' is given twice"});
}

TEST(RequestValidatorTest, WrongDatatypeNamesExpectedAndActual) {
  ModelInferRequest r = ValidRequest();
  r.mutable_inputs(1)->set_datatype("FP16");
  ExpectInvalid(r, {"input 'A'", "expected datatype FP32, got FP16"});
}

TEST(RequestValidatorTest, UnknownDatatypeAndBytesAreRefused) {
  ModelInferRequest r = ValidRequest();
  r.mutable_inputs(1)->set_datatype("FLOAT");
  ExpectInvalid(r, {"unknown datatype 'FLOAT'"});
  r.mutable_inputs(1)->set_datatype("BYTES");
  ExpectInvalid(r, {"not BYTES"});
}

TEST(RequestValidatorTest, WrongShapeNamesExpectedAndActual) {
  ModelInferRequest r = ValidRequest(2);
  r.mutable_inputs(1)->set_shape(2, 4);
  ExpectInvalid(r, {"input 'A'", "expected shape [-1, 2, 3], got [2, 2, 4]"});
}

TEST(RequestValidatorTest, MissingBatchDimensionIsAShapeError) {
  ModelInferRequest r = ValidRequest(1);
  r.mutable_inputs(1)->clear_shape();
  r.mutable_inputs(1)->add_shape(2);
  r.mutable_inputs(1)->add_shape(3);
  ExpectInvalid(r, {"expected shape [-1, 2, 3], got [2, 3]"});
}

TEST(RequestValidatorTest, BatchSizeOutsideLimitsIsRefused) {
  ExpectInvalid(ValidRequest(9), {"batch size 9", "1..8"});
  ExpectInvalid(ValidRequest(0), {"batch size 0", "1..8"});
}

TEST(RequestValidatorTest, NegativeDimensionIsRefused) {
  ModelInferRequest r = ValidRequest(1);
  r.mutable_inputs(1)->set_shape(0, -3);
  ExpectInvalid(r, {"input 'A'", "[-3, 2, 3] has a negative dimension"});
  r.mutable_inputs(1)->set_shape(0, -1);  // Not "any size" in a request.
  ExpectInvalid(r, {"[-1, 2, 3] has a negative dimension", "expected [-1, 2, 3]"});
}

TEST(RequestValidatorTest, InputsMustAgreeOnBatchDimension) {
  ModelInferRequest r = ValidRequest(2);
  r.mutable_inputs(0)->set_shape(0, 3);
  *r.mutable_raw_input_contents(0) = Bytes(3 * 4);
  ExpectInvalid(r, {"disagree on the batch dimension", "'A' has 2", "'B' has 3"});
}

TEST(RequestValidatorTest, RawByteSizeMismatchNamesBothSizes) {
  ModelInferRequest r = ValidRequest(2);
  *r.mutable_raw_input_contents(1) = Bytes(47);
  ExpectInvalid(r, {"input 'A'", "holds 47 bytes, expected 48", "[2, 2, 3]"});
}

TEST(RequestValidatorTest, RawContentsCountMustMatchInputs) {
  ModelInferRequest r = ValidRequest();
  r.mutable_raw_input_contents()->RemoveLast();
  ExpectInvalid(r, {"1 raw_input_contents for 2 inputs"});
}

TEST(RequestValidatorTest, MixingRawAndTypedIsRefusedInTritonsWordsFirst) {
  ModelInferRequest r = ValidRequest();
  r.mutable_inputs(1)->mutable_contents()->add_fp32_contents(1);
  absl::StatusOr<ValidatedRequest> v = ValidateInferRequest(TwoInputModel(), r);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  // grpc_explicit_int_content_client.py matches this text.
  EXPECT_EQ(v.status().message().rfind("contents field must not be specified when using "
                                       "raw_input_contents for 'A' for model 'pair'",
                                       0),
            0u)
      << v.status().message();
}

TEST(RequestValidatorTest, TypedContentsBesideRawAreNamedBeforeTheRawCountIsChecked) {
  // As grpc_explicit_int_content_client.py sends it: one raw buffer for two inputs, and typed
  // contents on the first; Triton names the contents, not the count.
  ModelInferRequest r = ValidRequest();
  r.mutable_raw_input_contents()->RemoveLast();
  r.mutable_inputs(0)->mutable_contents()->add_int_contents(1);
  absl::StatusOr<ValidatedRequest> v = ValidateInferRequest(TwoInputModel(), r);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().message().rfind("contents field must not be specified when using "
                                       "raw_input_contents for 'B' for model 'pair'",
                                       0),
            0u)
      << v.status().message();
}

TEST(RequestValidatorTest, ClassificationOfAnOutputIsRefusedNamingTheOutput) {
  ModelInferRequest r = ValidRequest();
  auto* x = r.add_outputs();
  x->set_name("X");
  (*x->mutable_parameters())["classification"].set_int64_param(3);
  ExpectInvalid(r, {"output 'X' of model 'pair'", "'classification'",
                    "BYTES \"score:index:label\"", "does not support"});
}

TEST(RequestValidatorTest, UnknownTensorParametersAreRefusedNamingThem) {
  ModelInferRequest r = ValidRequest();
  (*r.mutable_inputs(1)->mutable_parameters())["content_type"].set_string_param("np");
  ExpectInvalid(r, {"input 'A' of model 'pair'", "unknown parameter 'content_type'"});

  r = ValidRequest();
  auto* y = r.add_outputs();
  y->set_name("Y");
  (*y->mutable_parameters())["top_k"].set_int64_param(1);
  ExpectInvalid(r, {"output 'Y' of model 'pair'", "unknown parameter 'top_k'"});
}

TEST(RequestValidatorTest, HttpBinaryDataHintsAreAcceptedAndChangeNothing) {
  ModelInferRequest r = ValidRequest();
  (*r.mutable_inputs(0)->mutable_parameters())["binary_data_size"].set_int64_param(8);
  auto* x = r.add_outputs();
  x->set_name("X");
  (*x->mutable_parameters())["binary_data"].set_bool_param(true);
  absl::StatusOr<ValidatedRequest> v = ValidateInferRequest(TwoInputModel(), r);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->outputs, (std::vector<int>{0}));
  EXPECT_EQ(v->inputs[0].data(), r.raw_input_contents(1).data());
}

TEST(RequestValidatorTest, SharedMemoryParametersAreLeftToTheSharedMemoryPath) {
  ModelInferRequest r = ValidRequest();
  for (auto* parameters : {r.mutable_inputs(0)->mutable_parameters(),
                           r.add_outputs()->mutable_parameters()}) {
    (*parameters)["shared_memory_region"].set_string_param("region");
    (*parameters)["shared_memory_byte_size"].set_int64_param(64);
    (*parameters)["shared_memory_offset"].set_int64_param(0);
  }
  EXPECT_TRUE(CheckTensorParameters("pair", r).ok());
}

TEST(RequestValidatorTest, TypedCountMismatchNamesTheField) {
  ModelInferRequest r = ValidRequest(1);
  r.clear_raw_input_contents();
  for (int i = 0; i < 4; ++i) r.mutable_inputs(0)->mutable_contents()->add_int_contents(0);
  r.mutable_inputs(1)->mutable_contents()->add_fp32_contents(1);
  ExpectInvalid(r, {"input 'A'", "expected 6 values in contents.fp32_contents, got 1"});
}

TEST(RequestValidatorTest, TypedContentsWithAStrayFieldOfAnotherTypeAreRefused) {
  ModelInferRequest r = ValidRequest(1);
  r.clear_raw_input_contents();
  for (int i = 0; i < 4; ++i) r.mutable_inputs(0)->mutable_contents()->add_int_contents(0);
  for (int i = 0; i < 6; ++i) r.mutable_inputs(1)->mutable_contents()->add_fp32_contents(1);
  ASSERT_TRUE(ValidateInferRequest(TwoInputModel(), r).ok());

  ModelInferRequest ints = r;
  ints.mutable_inputs(1)->mutable_contents()->add_int_contents(7);
  ExpectInvalid(ints, {"input 'A'", "unexpected contents.int_contents (1 values) for FP32",
                       "contents.fp32_contents only"});
  ModelInferRequest bytes = r;
  bytes.mutable_inputs(1)->mutable_contents()->add_bytes_contents("x");
  ExpectInvalid(bytes, {"input 'A'", "unexpected contents.bytes_contents"});
  // INT8 takes int_contents; int64_contents is another field.
  ModelInferRequest wide = r;
  wide.mutable_inputs(0)->mutable_contents()->add_int64_contents(1);
  ExpectInvalid(wide, {"input 'B'", "unexpected contents.int64_contents (1 values) for INT8"});
}

TEST(RequestValidatorTest, TypedContentsBesideRawAreRefusedWhateverTheirField) {
  // Every field counts, not only the one of the input's datatype.
  ModelInferRequest r = ValidRequest();
  r.mutable_inputs(1)->mutable_contents()->add_bool_contents(true);
  ExpectInvalid(r, {"contents field must not be specified when using raw_input_contents for 'A'"});
}

TEST(RequestValidatorTest, HugeClientNamesAreCutInMessages) {
  const std::string huge(1 << 20, 'n');
  const std::string cut = std::string(128, 'n') + "...(1048576 bytes)'";
  auto expect_cut = [&](const ModelInferRequest& request, const std::string& says) {
    absl::StatusOr<ValidatedRequest> v = ValidateInferRequest(TwoInputModel(), request);
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(v.status().message().find(says + cut), std::string::npos)
        << v.status().message().substr(0, 300);
    EXPECT_LT(v.status().message().size(), 1024u);
  };
  ModelInferRequest input = ValidRequest();
  input.mutable_inputs(0)->set_name(huge);
  expect_cut(input, "has no input named '");
  ModelInferRequest output = ValidRequest();
  output.add_outputs()->set_name(huge);
  expect_cut(output, "has no output named '");
  ModelInferRequest datatype = ValidRequest();
  datatype.mutable_inputs(1)->set_datatype(huge);
  expect_cut(datatype, "unknown datatype '");
  ModelInferRequest parameter = ValidRequest();
  (*parameter.mutable_inputs(0)->mutable_parameters())[huge].set_bool_param(true);
  expect_cut(parameter, "unknown parameter '");
  ModelInferRequest unknown_tensor = ValidRequest();
  unknown_tensor.mutable_inputs(0)->set_name(huge);
  (*unknown_tensor.mutable_inputs(0)->mutable_parameters())["p"].set_bool_param(true);
  expect_cut(unknown_tensor, "input '");
}

TEST(RequestValidatorTest, TypedValueOutOfRangeIsRefused) {
  ModelInferRequest r = ValidRequest(1);
  r.clear_raw_input_contents();
  for (int v : {1, 2, 300, 4}) r.mutable_inputs(0)->mutable_contents()->add_int_contents(v);
  for (int i = 0; i < 6; ++i) r.mutable_inputs(1)->mutable_contents()->add_fp32_contents(0);
  ExpectInvalid(r, {"input 'B'", "value 300 is out of range for INT8"});
}

TEST(RequestValidatorTest, Fp16HasNoTypedContents) {
  ModelMetadata m;
  m.name = "half";
  m.max_batch_size = 4;
  m.inputs.push_back({"H", DataType::kFp16, {2}});
  ModelInferRequest r;
  auto* h = r.add_inputs();
  h->set_name("H");
  h->set_datatype("FP16");
  h->add_shape(1);
  h->add_shape(2);
  h->mutable_contents()->add_fp32_contents(1);
  auto v = ValidateInferRequest(m, r);
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(v.status().message().find("raw_input_contents"), std::string::npos) << v.status();
}

TEST(RequestValidatorTest, UnknownAndDuplicateOutputsAreRefused) {
  ModelInferRequest r = ValidRequest();
  r.add_outputs()->set_name("Z");
  ExpectInvalid(r, {"no output named 'Z'", "X, Y"});
  r.mutable_outputs(0)->set_name("X");
  r.add_outputs()->set_name("X");
  ExpectInvalid(r, {"'X' is requested twice"});
}

TEST(RequestValidatorTest, NonBatchingModelTakesNoBatchDimension) {
  ModelMetadata m;
  m.name = "fixed";
  m.max_batch_size = 0;
  m.inputs.push_back({"V", DataType::kFp64, {3}});
  ModelInferRequest r;
  auto* in = r.add_inputs();
  in->set_name("V");
  in->set_datatype("FP64");
  in->add_shape(3);
  *r.add_raw_input_contents() = Bytes(24);
  auto v = ValidateInferRequest(m, r);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->rows, 1);
}

TEST(RequestValidatorTest, HugeShapeDoesNotOverflow) {
  ModelMetadata m;
  m.name = "wide";
  m.max_batch_size = 0;
  m.inputs.push_back({"V", DataType::kFp32, {-1, -1}});
  ModelInferRequest r;
  auto* in = r.add_inputs();
  in->set_name("V");
  in->set_datatype("FP32");
  in->add_shape(int64_t{1} << 40);
  in->add_shape(int64_t{1} << 40);
  *r.add_raw_input_contents() = Bytes(16);
  auto v = ValidateInferRequest(m, r);
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(v.status().message().find("too many elements"), std::string::npos) << v.status();
}

}  // namespace
}  // namespace coalesce
