// `reshape` in config.pbtxt (repository/model_config.h), by Triton's rules: the client sees `dims`, the
// model sees `reshape.shape`, and the two must hold the same elements for every request.
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "repository/model_config.h"

namespace coalesce {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Triton's densenet_onnx example (docs/examples/model_repository), its platform changed to
// pytorch_libtorch: a non-batching model whose input and output the model sees with extra
// leading and trailing dims of 1.
constexpr char kDensenetConfig[] = R"pb(
name: "densenet_onnx"
platform: "pytorch_libtorch"
max_batch_size : 0
input [
  {
    name: "data_0"
    data_type: TYPE_FP32
    format: FORMAT_NCHW
    dims: [ 3, 224, 224 ]
    reshape { shape: [ 1, 3, 224, 224 ] }
  }
]
output [
  {
    name: "fc6_1"
    data_type: TYPE_FP32
    dims: [ 1000 ]
    reshape { shape: [ 1, 1000, 1, 1 ] }
    label_filename: "densenet_labels.txt"
  }
]
)pb";

// A batching model with input X of `dims` and `reshape` (both written as text format lists).
std::string ConfigWithInputReshape(absl::string_view dims, absl::string_view reshape,
                                   int max_batch_size = 8) {
  return absl::StrCat("max_batch_size: ", max_batch_size,
                      "\ninput { name: \"X\" data_type: TYPE_FP32 dims: ", dims,
                      " reshape { shape: ", reshape,
                      " } }\noutput { name: \"Y\" data_type: TYPE_FP32 dims: [ 1 ] }\n");
}

absl::Status ParseStatus(absl::string_view text) { return ParseModelConfig(text, "m").status(); }

TEST(ModelConfigReshapeTest, TritonsDensenetExampleLoadsWithItsReshapes) {
  absl::StatusOr<ParsedModelConfig> parsed = ParseModelConfig(kDensenetConfig, "densenet_onnx");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  absl::StatusOr<ModelMetadata> metadata = MetadataFromConfig(parsed->config, "1");
  ASSERT_TRUE(metadata.ok()) << metadata.status();
  EXPECT_EQ(metadata->max_batch_size, 0);
  const TensorSpec& input = metadata->inputs[0];
  EXPECT_THAT(input.dims, ElementsAre(3, 224, 224));
  ASSERT_TRUE(input.reshape.has_value());
  EXPECT_THAT(*input.reshape, ElementsAre(1, 3, 224, 224));
  EXPECT_THAT(input.model_dims(), ElementsAre(1, 3, 224, 224));
  EXPECT_EQ(input.RowElements(), 3 * 224 * 224);
  const TensorSpec& output = metadata->outputs[0];
  EXPECT_THAT(output.dims, ElementsAre(1000));
  EXPECT_THAT(output.model_dims(), ElementsAre(1, 1000, 1, 1));
}

TEST(ModelConfigReshapeTest, WithoutReshapeTheModelSeesDims) {
  absl::StatusOr<ParsedModelConfig> parsed = ParseModelConfig(
      "max_batch_size: 4\n"
      "input { name: \"X\" data_type: TYPE_FP32 dims: [ 2, -1 ] }\n"
      "output { name: \"Y\" data_type: TYPE_FP32 dims: [ 2 ] }",
      "m");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  absl::StatusOr<ModelMetadata> metadata = MetadataFromConfig(parsed->config, "1");
  ASSERT_TRUE(metadata.ok()) << metadata.status();
  EXPECT_FALSE(metadata->inputs[0].reshape.has_value());
  EXPECT_THAT(metadata->inputs[0].ModelDimsFor({2, 7}), ElementsAre(2, 7));
}

TEST(ModelConfigReshapeTest, RefusesAReshapeOfADifferentElementCountNamingTheTensor) {
  absl::Status status = ParseStatus(ConfigWithInputReshape("[ 4 ]", "[ 2, 3 ]"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("input 'X' reshape [2, 3]: expected 4 elements, as dims [4] hold, got 6"));

  status = ParseStatus(
      "max_batch_size: 0\n"
      "input { name: \"X\" data_type: TYPE_FP32 dims: [ 4 ] }\n"
      "output { name: \"fc\" data_type: TYPE_FP32 dims: [ 1000 ] "
      "reshape { shape: [ 1, 1001, 1, 1 ] } }");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("output 'fc' reshape [1, 1001, 1, 1]: expected 1000 elements, as dims "
                        "[1000] hold, got 1001"));
}

TEST(ModelConfigReshapeTest, AcceptsVariableDimsWhoseFixedRunsHoldEqualCounts) {
  // Triton's own example: 2 * 4 = 8 before the -1, 6 = 1 * 6 after it.
  EXPECT_TRUE(ParseStatus(ConfigWithInputReshape("[ 2, 4, -1, 6 ]", "[ 8, -1, 1, 6 ]")).ok());
  EXPECT_TRUE(ParseStatus(ConfigWithInputReshape("[ -1, 4 ]", "[ -1, 2, 2 ]")).ok());
}

TEST(ModelConfigReshapeTest, EachVariableDimOfTheReshapeTakesTheMatchingOneOfTheRequest) {
  TensorSpec spec;
  spec.dims = {-1, 2, 2, -1};
  spec.reshape = std::vector<int64_t>{-1, 4, -1};
  EXPECT_THAT(spec.ModelDimsFor({5, 2, 2, 7}), ElementsAre(5, 4, 7));
  spec.dims = {2, 4, -1, 6};
  spec.reshape = std::vector<int64_t>{8, -1, 1, 6};
  EXPECT_THAT(spec.ModelDimsFor({2, 4, 3, 6}), ElementsAre(8, 3, 1, 6));
}

TEST(ModelConfigReshapeTest, RefusesVariableDimsThatDoNotMapOneToOne) {
  absl::Status status = ParseStatus(ConfigWithInputReshape("[ -1, 4 ]", "[ 16 ]"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("input 'X' reshape [16]: expected as many variable (-1) dims as dims "
                        "[-1, 4] (1), got 0"));

  status = ParseStatus(ConfigWithInputReshape("[ -1, 4 ]", "[ 4, -1 ]"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("input 'X' reshape [4, -1]: expected the fixed dims before, between "
                        "and after its -1s to hold as many elements as those of dims [-1, 4] "
                        "(1, 4), got 4, 1"));
}

TEST(ModelConfigReshapeTest, RefusesReshapeDimsBelowOne) {
  absl::Status status = ParseStatus(ConfigWithInputReshape("[ 4 ]", "[ 0, 4 ]"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("input 'X' reshape: expected each dim >= 1 or -1 (variable), got 0 in "
                        "[0, 4]"));
}

TEST(ModelConfigReshapeTest, AnEmptyReshapeIsAScalarPerSampleOfABatchingModelOnly) {
  EXPECT_TRUE(ParseStatus(ConfigWithInputReshape("[ 1 ]", "[ ]")).ok());
  absl::Status status = ParseStatus(ConfigWithInputReshape("[ 1 ]", "[ ]", 0));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("input 'X' reshape: expected at least one dim for a model with "
                        "max_batch_size 0"));
  status = ParseStatus(ConfigWithInputReshape("[ 2 ]", "[ ]"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("input 'X' reshape []: expected 2 elements, as dims [2] hold, got 1"));
}

}  // namespace
}  // namespace coalesce
