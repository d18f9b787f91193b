// The padding parameters of config.pbtxt (repository/padding_config.h): what a valid declaration
// becomes in the model's metadata, and that every bad value fails the load naming the model, the
// parameter and the problem.
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "repository/model_config.h"

namespace coalesce {
namespace {

using ::testing::HasSubstr;

constexpr char kEncoder[] = R"pb(
  name: "encoder"
  max_batch_size: 8
  input [
    { name: "input_ids" data_type: TYPE_INT64 dims: [ -1 ] },
    { name: "attention_mask" data_type: TYPE_INT64 dims: [ -1 ] }
  ]
  output [
    { name: "hidden" data_type: TYPE_FP32 dims: [ -1, 4 ] },
    { name: "pooled" data_type: TYPE_FP32 dims: [ 4 ] }
  ]
)pb";

std::string Parameter(const std::string& key, const std::string& value) {
  return absl::StrCat("parameters { key: \"", key, "\" value: { string_value: \"", value,
                      "\" } }\n");
}

// kEncoder padded with buckets 16,32,64, pad 0 and mask 0, hidden cut, plus `extra`.
std::string Padded(const std::string& extra = "") {
  return absl::StrCat(kEncoder, Parameter("coalesce.pad_buckets", "16, 32,64"),
                      Parameter("coalesce.pad.input_ids", "0"),
                      Parameter("coalesce.pad.attention_mask", "0"),
                      Parameter("coalesce.cut.hidden", "input_ids"), extra);
}

absl::Status Load(const std::string& text) {
  absl::StatusOr<ParsedModelConfig> parsed = ParseModelConfig(text, "encoder");
  if (!parsed.ok()) return parsed.status();
  return MetadataFromConfig(parsed->config, "1").status();
}

TEST(PaddingConfigTest, AModelThatDeclaresNothingHasNoPadding) {
  absl::StatusOr<ParsedModelConfig> parsed = ParseModelConfig(kEncoder, "encoder");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_FALSE(MetadataFromConfig(parsed->config, "1")->padding.has_value());
}

TEST(PaddingConfigTest, TheParametersBecomeTheModelsPadding) {
  absl::StatusOr<ParsedModelConfig> parsed =
      ParseModelConfig(Padded(Parameter("coalesce.pad_max_ratio", "0.25")), "encoder");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  absl::StatusOr<ModelMetadata> metadata = MetadataFromConfig(parsed->config, "1");
  ASSERT_TRUE(metadata.ok()) << metadata.status();
  ASSERT_TRUE(metadata->padding.has_value());
  const PaddingSpec& padding = *metadata->padding;
  EXPECT_EQ(padding.buckets, (std::vector<int64_t>{16, 32, 64}));
  ASSERT_EQ(padding.inputs.size(), 2u);
  EXPECT_EQ(padding.inputs[0].input, 1);  // attention_mask: keys in order.
  EXPECT_EQ(padding.inputs[1].input, 0);
  EXPECT_EQ(padding.inputs[1].dim, 0);
  ASSERT_EQ(padding.outputs.size(), 1u);
  EXPECT_EQ(padding.outputs[0].output, 0);
  EXPECT_EQ(padding.outputs[0].dim, 0);
  EXPECT_DOUBLE_EQ(padding.max_padding_ratio, 0.25);
}

TEST(PaddingConfigTest, OtherParametersStayUninterpreted) {
  EXPECT_TRUE(Load(absl::StrCat(kEncoder, Parameter("tokenizer", "bert"))).ok());
}

// Each bad declaration fails the load with the model, the parameter and the problem.
struct BadCase {
  std::string config;
  std::string parameter;
  std::string problem;
};

class PaddingConfigRefusesTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(PaddingConfigRefusesTest, NamingTheModelTheParameterAndTheProblem) {
  const absl::Status status = Load(GetParam().config);
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("model 'encoder'"));
  EXPECT_THAT(status.message(), HasSubstr(absl::StrCat("parameter '", GetParam().parameter, "'")));
  EXPECT_THAT(status.message(), HasSubstr(GetParam().problem));
}

std::string Without(std::string text, const std::string& key) {
  const std::string line = Parameter(key, key == "coalesce.cut.hidden" ? "input_ids"
                                           : key == "coalesce.pad_buckets" ? "16, 32,64"
                                                                           : "0");
  text.erase(text.find(line), line.size());
  return text;
}

INSTANTIATE_TEST_SUITE_P(
    BadValues, PaddingConfigRefusesTest,
    ::testing::Values(
        BadCase{Padded(Parameter("coalesce.pad_bucket", "8")), "coalesce.pad_bucket", "unknown"},
        BadCase{Without(Padded(), "coalesce.pad_buckets"), "coalesce.pad_buckets", "required"},
        BadCase{absl::StrCat(Without(Padded(), "coalesce.pad_buckets"),
                             Parameter("coalesce.pad_buckets", "32,16")),
                "coalesce.pad_buckets", "expected ascending lengths, got 16 after 32"},
        BadCase{absl::StrCat(Without(Padded(), "coalesce.pad_buckets"),
                             Parameter("coalesce.pad_buckets", "16,x")),
                "coalesce.pad_buckets", "separated by commas"},
        BadCase{absl::StrCat(Without(Padded(), "coalesce.pad_buckets"),
                             Parameter("coalesce.pad_buckets", "0,16")),
                "coalesce.pad_buckets", "expected lengths in 1.."},
        BadCase{absl::StrCat(Without(Padded(), "coalesce.pad.input_ids"),
                             Parameter("coalesce.pad.input_ids", "0.5")),
                "coalesce.pad.input_ids", "INT64: 0.5 is not a whole number"},
        BadCase{absl::StrCat(Without(Padded(), "coalesce.pad.input_ids"),
                             Parameter("coalesce.pad.input_ids", "zero")),
                "coalesce.pad.input_ids", "expected a number (the pad value), got \"zero\""},
        BadCase{Padded(Parameter("coalesce.pad.tokens", "0")), "coalesce.pad.tokens",
                "the model has no input 'tokens'"},
        BadCase{Without(Padded(), "coalesce.pad.attention_mask"),
                "coalesce.pad.attention_mask", "every variable input of a model that pads"},
        BadCase{Without(Padded(), "coalesce.cut.hidden"), "coalesce.cut.hidden",
                "every variable output of a model that pads must be cut"},
        BadCase{Padded(Parameter("coalesce.cut.pooled", "input_ids")), "coalesce.cut.pooled",
                "output 'pooled': expected exactly one variable (-1) dim"},
        BadCase{absl::StrCat(Without(Padded(), "coalesce.cut.hidden"),
                             Parameter("coalesce.cut.hidden", "ids")),
                "coalesce.cut.hidden", "expected the name of a padded input, got \"ids\""},
        BadCase{Padded(Parameter("coalesce.pad_max_ratio", "1")), "coalesce.pad_max_ratio",
                "expected a number in [0, 1)"},
        BadCase{absl::StrCat("max_batch_size: 0\n",
                             Padded().substr(Padded().find("max_batch_size: 8") + 17)),
                "coalesce.cut.hidden", "padding needs a batching model"},
        BadCase{absl::StrCat(Without(Padded(), "coalesce.pad_buckets"),
                             Parameter("coalesce.pad_buckets", "16,2000000")),
                "coalesce.pad_buckets", "expected lengths in 1..1048576"}));

TEST(PaddingConfigTest, RefusesAPaddedInputWithAReshape) {
  const std::string config = R"pb(
    name: "encoder"
    max_batch_size: 8
    input [ { name: "ids" data_type: TYPE_INT64 dims: [ -1 ] reshape: { shape: [ -1, 1 ] } } ]
    output [ { name: "pooled" data_type: TYPE_FP32 dims: [ 4 ] } ]
    parameters { key: "coalesce.pad_buckets" value: { string_value: "8" } }
    parameters { key: "coalesce.pad.ids" value: { string_value: "0" } }
  )pb";
  EXPECT_THAT(Load(config).message(), HasSubstr("parameter 'coalesce.pad.ids': input 'ids': "
                                                "expected no reshape"));
}

}  // namespace
}  // namespace coalesce
