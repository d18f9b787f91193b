#include "repository/model_config.h"

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "execution/demo_model.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace coalesce {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// A config as Triton's PyTorch backend documentation writes them, with the scheduling, placement
// and version fields that coalesce maps, and an optimization block that it ignores.
constexpr char kTritonConfig[] = R"pb(
name: "resnet"
platform: "pytorch_libtorch"
max_batch_size: 64
version_policy: { specific: { versions: [ 1, 3 ] } }
input [
  {
    name: "INPUT__0"
    data_type: TYPE_FP32
    format: FORMAT_NCHW
    dims: [ 3, 224, 224 ]
  },
  {
    name: "INPUT__1"
    data_type: TYPE_INT64
    dims: [ -1 ]
  }
]
output [
  {
    name: "OUTPUT__0"
    data_type: TYPE_FP16
    dims: [ 1000 ]
    label_filename: "labels.txt"
  }
]
instance_group [
  { name: "gpu_group" count: 2 kind: KIND_GPU },
  { count: 1 kind: KIND_AUTO }
]
dynamic_batching {
  preferred_batch_size: [ 32, 8, 16, 8 ]
  max_queue_delay_microseconds: 1500
  priority_levels: 3
  default_priority_level: 2
  default_queue_policy {
    timeout_action: REJECT
    default_timeout_microseconds: 250000
    allow_timeout_override: true
    max_queue_size: 512
  }
}
parameters: { key: "INFERENCE_MODE" value: { string_value: "true" } }
parameters [ { key: "DISABLE_OPTIMIZED_EXECUTION" value: { string_value: "true" } } ]
default_model_filename: "resnet.pt"
optimization { execution_accelerators { gpu_execution_accelerator : [ { name : "tensorrt" } ] } }
)pb";

// The smallest config coalesce accepts: one input, one output.
std::string MinimalConfig(absl::string_view extra = "") {
  return absl::StrCat(R"pb(
platform: "pytorch_libtorch"
max_batch_size: 8
input { name: "IN" data_type: TYPE_FP32 dims: [ 4 ] }
output { name: "OUT" data_type: TYPE_FP32 dims: [ 2 ] }
)pb",
                      extra);
}

absl::Status ParseStatus(absl::string_view text, absl::string_view dir = "m") {
  return ParseModelConfig(text, dir).status();
}

// Parses `text` (expected valid) as model "m" and returns its warnings joined.
std::string WarningsOf(absl::string_view text) {
  absl::StatusOr<ParsedModelConfig> parsed = ParseModelConfig(text, "m");
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? absl::StrJoin(parsed->warnings, "\n") : "";
}

void ExpectInvalid(absl::string_view text, absl::string_view needle) {
  absl::Status status = ParseStatus(text);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(needle));
}

TEST(ParseModelConfigTest, ParsesRealWorldTritonPytorchConfig) {
  absl::StatusOr<ParsedModelConfig> parsed = ParseModelConfig(kTritonConfig, "resnet");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const inference::ModelConfig& c = parsed->config;
  EXPECT_EQ(c.name(), "resnet");
  EXPECT_EQ(c.platform(), "pytorch_libtorch");
  EXPECT_EQ(c.backend(), "pytorch");
  EXPECT_EQ(c.max_batch_size(), 64);
  ASSERT_EQ(c.input_size(), 2);
  EXPECT_EQ(c.input(0).name(), "INPUT__0");
  EXPECT_EQ(c.input(0).data_type(), inference::TYPE_FP32);
  EXPECT_THAT(c.input(0).dims(), ElementsAre(3, 224, 224));
  EXPECT_THAT(c.input(1).dims(), ElementsAre(-1));
  ASSERT_EQ(c.output_size(), 1);
  EXPECT_EQ(c.output(0).data_type(), inference::TYPE_FP16);
  EXPECT_THAT(c.version_policy().specific().versions(), ElementsAre(1, 3));
  EXPECT_EQ(c.instance_group_size(), 2);
  EXPECT_EQ(c.dynamic_batching().default_queue_policy().max_queue_size(), 512u);
  EXPECT_EQ(c.parameters().at("INFERENCE_MODE").string_value(), "true");
  EXPECT_EQ(c.parameters().at("DISABLE_OPTIMIZED_EXECUTION").string_value(), "true");
  EXPECT_EQ(ModelFileName(c), "resnet.pt");
  EXPECT_THAT(parsed->warnings,
              ElementsAre("optimization: ignored except cuda.graphs; coalesce chooses precision "
                          "and pinned buffers itself",
                          "input 'INPUT__0' format: FORMAT_NCHW is informational and ignored",
                          "output 'OUTPUT__0' label_filename: ignored; coalesce does not serve "
                          "the classification extension"));
}

TEST(ParseModelConfigTest, EmptyNameBecomesTheFolderName) {
  absl::StatusOr<ParsedModelConfig> parsed = ParseModelConfig(MinimalConfig(), "classifier");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->config.name(), "classifier");
  EXPECT_THAT(parsed->warnings, IsEmpty());
}

TEST(ParseModelConfigTest, RefusesNameThatDiffersFromTheFolder) {
  absl::Status status = ParseStatus(MinimalConfig("name: \"other\""), "classifier");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(status.message()),
            "config.pbtxt of model 'classifier': name: expected \"classifier\" (the model's "
            "folder) or empty, got \"other\"");
}

TEST(ParseModelConfigTest, UnknownFieldIsAWarningNamingItAndItsLine) {
  std::string warnings = WarningsOf(MinimalConfig("\nfuture_knob: 7\n"));
  EXPECT_THAT(warnings, HasSubstr("no field named \"future_knob\""));
  EXPECT_THAT(warnings, HasSubstr("line 7:"));
}

TEST(ParseModelConfigTest, UnknownNestedFieldWithMessageValueIsAWarning) {
  std::string warnings =
      WarningsOf(MinimalConfig("dynamic_batching { new_thing { a: 1 b: \"x\" } }"));
  EXPECT_THAT(warnings, HasSubstr("inference.ModelDynamicBatching"));
  EXPECT_THAT(warnings, HasSubstr("no field named \"new_thing\""));
}

TEST(ParseModelConfigTest, SyntaxErrorIsInvalidArgumentWithLineAndColumn) {
  absl::Status status = ParseStatus("max_batch_size: 8\ninput { name: \"IN\" \n}}\n");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("line 3:2: "));
}

TEST(ParseModelConfigTest, TypeErrorIsInvalidArgumentWithLine) {
  absl::Status status =
      ParseStatus(MinimalConfig("\ndynamic_batching { max_queue_delay_microseconds: \"soon\" }"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(status.message()),
            "config.pbtxt of model 'm': line 7:50: Expected integer, got: \"soon\"");
}

TEST(ParseModelConfigTest, UnknownEnumNameIsAnError) {
  ExpectInvalid(
      "input { name: \"IN\" data_type: TYPE_FP8 dims: [1] }\n"
      "output { name: \"OUT\" data_type: TYPE_FP32 dims: [1] }",
      "TYPE_FP8");
}

TEST(ParseModelConfigTest, FieldGivenTwiceIsAnError) {
  ExpectInvalid(MinimalConfig("max_batch_size: 4"), "max_batch_size");
}

TEST(ParseModelConfigTest, RefusesStringsThatAreNotUtf8) {
  ExpectInvalid(MinimalConfig("input { name: \"IN\\377\" data_type: TYPE_FP32 dims: [1] }"),
                "inference.ModelInput.name: expected UTF-8 text, got bytes that are not UTF-8");
  ExpectInvalid(MinimalConfig("parameters { key: \"\\300\\200\" value { } }"),
                "inference.ModelConfig.ParametersEntry.key: expected UTF-8 text");
  ExpectInvalid(MinimalConfig("model_repository_agents { agents { name: \"\\355\\240\\200\" } }"),
                "inference.ModelRepositoryAgents.Agent.name: expected UTF-8 text");
}

TEST(ParseModelConfigTest, AcceptsUtf8Names) {
  absl::StatusOr<ParsedModelConfig> parsed = ParseModelConfig(
      MinimalConfig("parameters { key: \"Gr\303\266\303\237e \360\237\232\200\" value { } }"),
      "m");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->config.parameters().count("Gr\xc3\xb6\xc3\x9f" "e \xf0\x9f\x9a\x80"), 1u);
}

TEST(ParseModelConfigTest, BothPlatformAndBackendEmptyMeansPytorchWithAWarning) {
  absl::StatusOr<ParsedModelConfig> parsed = ParseModelConfig(
      "input { name: \"IN\" data_type: TYPE_FP32 dims: [1] }\n"
      "output { name: \"OUT\" data_type: TYPE_FP32 dims: [1] }",
      "m");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->config.platform(), "pytorch_libtorch");
  EXPECT_EQ(parsed->config.backend(), "pytorch");
  EXPECT_THAT(parsed->warnings,
              ElementsAre("neither platform nor backend is set; serving the model as platform "
                          "\"pytorch_libtorch\" (TorchScript)"));
}

TEST(ParseModelConfigTest, BackendPytorchAloneIsAccepted) {
  absl::StatusOr<ParsedModelConfig> parsed = ParseModelConfig(
      "backend: \"pytorch\"\n"
      "input { name: \"IN\" data_type: TYPE_FP32 dims: [1] }\n"
      "output { name: \"OUT\" data_type: TYPE_FP32 dims: [1] }",
      "m");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->config.platform(), "pytorch_libtorch");
  EXPECT_THAT(parsed->warnings, IsEmpty());
}

TEST(ParseModelConfigTest, RefusesOtherPlatformsAndBackends) {
  ExpectInvalid("platform: \"onnxruntime_onnx\"",
                "platform: expected \"pytorch_libtorch\", got \"onnxruntime_onnx\"");
  ExpectInvalid("backend: \"python\"", "backend: expected \"pytorch\", got \"python\"");
}

TEST(ParseModelConfigTest, RefusesNegativeMaxBatchSize) {
  ExpectInvalid("max_batch_size: -1", "max_batch_size: expected 0..1048576, got -1");
}

TEST(ParseModelConfigTest, RefusesMissingInputsOrOutputs) {
  ExpectInvalid("output { name: \"OUT\" data_type: TYPE_FP32 dims: [1] }",
                "input: expected at least one input, got none");
  ExpectInvalid("input { name: \"IN\" data_type: TYPE_FP32 dims: [1] }",
                "output: expected at least one output, got none");
}

TEST(ParseModelConfigTest, RefusesEmptyAndDuplicateTensorNames) {
  ExpectInvalid(
      "input { data_type: TYPE_FP32 dims: [1] }\n"
      "output { name: \"OUT\" data_type: TYPE_FP32 dims: [1] }",
      "input #0: name is empty");
  ExpectInvalid(MinimalConfig("input { name: \"IN\" data_type: TYPE_INT8 dims: [1] }"),
                "input 'IN' is declared twice");
  ExpectInvalid(MinimalConfig("output { name: \"OUT\" data_type: TYPE_INT8 dims: [1] }"),
                "output 'OUT' is declared twice");
}

TEST(ParseModelConfigTest, RefusesDataTypesCoalesceCannotServe) {
  for (const char* type : {"TYPE_STRING", "TYPE_UINT16", "TYPE_UINT32", "TYPE_UINT64",
                           "TYPE_INVALID"}) {
    ExpectInvalid(MinimalConfig(absl::StrCat("input { name: \"X\" data_type: ", type,
                                             " dims: [1] }")),
                  absl::StrCat("input 'X' data_type: expected one of TYPE_BOOL, TYPE_UINT8, "
                               "TYPE_INT8, TYPE_INT16, TYPE_INT32, TYPE_INT64, TYPE_FP16, "
                               "TYPE_BF16, TYPE_FP32, TYPE_FP64, got ",
                               type));
  }
  ExpectInvalid(MinimalConfig("output { name: \"Y\" data_type: 99 dims: [1] }"),
                "got data type number 99");
}

TEST(ParseModelConfigTest, RefusesBadDims) {
  ExpectInvalid(MinimalConfig("input { name: \"X\" data_type: TYPE_FP32 }"),
                "input 'X' dims: expected at least one dim");
  ExpectInvalid(MinimalConfig("input { name: \"X\" data_type: TYPE_FP32 dims: [ 4, 0 ] }"),
                "input 'X' dims: expected each dim >= 1 or -1 (variable), got 0 in [4, 0]");
  ExpectInvalid(MinimalConfig("output { name: \"Y\" data_type: TYPE_FP32 dims: [ -2 ] }"),
                "output 'Y' dims: expected each dim >= 1 or -1 (variable), got -2 in [-2]");
  ExpectInvalid(MinimalConfig("input { name: \"X\" data_type: TYPE_FP64 dims: [ 1048576, "
                              "1048576, -1 ] }"),
                "input 'X' dims [1048576, 1048576, -1]: a sample would exceed 1099511627776");
}

TEST(ParseModelConfigTest, AcceptsVariableDimsAndNonBatchingModels) {
  absl::StatusOr<ParsedModelConfig> parsed = ParseModelConfig(
      "max_batch_size: 0\n"
      "input { name: \"IN\" data_type: TYPE_BF16 dims: [ -1, 16 ] }\n"
      "output { name: \"OUT\" data_type: TYPE_BOOL dims: [ -1 ] }",
      "m");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->config.max_batch_size(), 0);
}

// Reshape has tests of its own: model_config_reshape_test.cc.
TEST(ParseModelConfigTest, RefusesShapeTensors) {
  ExpectInvalid(MinimalConfig("input { name: \"X\" data_type: TYPE_INT32 dims: [ 1 ] "
                              "is_shape_tensor: true }"),
                "input 'X' is_shape_tensor: not supported");
  ExpectInvalid(MinimalConfig("output { name: \"Y\" data_type: TYPE_INT32 dims: [ 1 ] "
                              "is_shape_tensor: true }"),
                "output 'Y' is_shape_tensor: not supported");
}

TEST(ParseModelConfigTest, RefusesFieldsWhoseMeaningCoalesceCannotHonour) {
  ExpectInvalid(MinimalConfig("sequence_batching { max_sequence_idle_microseconds: 5 }"),
                "sequence_batching: not supported; coalesce serves stateless models only");
  ExpectInvalid(MinimalConfig("ensemble_scheduling { step { model_name: \"a\" } }"),
                "ensemble_scheduling: not supported");
  ExpectInvalid(MinimalConfig("batch_input { kind: BATCH_ELEMENT_COUNT target_name: \"N\" }"),
                "batch_input: not supported");
  ExpectInvalid(MinimalConfig("batch_output { target_name: \"N\" }"),
                "batch_output: not supported");
  ExpectInvalid(MinimalConfig("model_transaction_policy { decoupled: true }"),
                "model_transaction_policy decoupled: not supported");
}

TEST(ParseModelConfigTest, WarnsForEachIgnoredTopLevelField) {
  std::string warnings = WarningsOf(MinimalConfig(R"pb(
runtime: "libtorch_custom.so"
cc_model_filenames { key: "7.5" value: "model_t4.pt" }
metric_tags { key: "team" value: "search" }
model_warmup { name: "w" batch_size: 1 inputs { key: "IN" value { data_type: TYPE_FP32 dims: [ 4 ] zero_data: true } } }
model_operations { op_library_filename: "ops.so" }
model_repository_agents { agents { name: "checksum" } }
response_cache { enable: true }
model_metrics { metric_control { metric_identifier { family: "nv_inference_first_response_histogram_ms" } } }
model_transaction_policy { decoupled: false }
)pb"));
  for (const char* field : {"runtime: ignored", "cc_model_filenames: ignored",
                            "metric_tags: ignored", "model_warmup: ignored",
                            "model_operations: ignored", "model_repository_agents: ignored",
                            "response_cache: ignored", "model_metrics: ignored"}) {
    EXPECT_THAT(warnings, HasSubstr(field));
  }
  EXPECT_THAT(warnings, ::testing::Not(HasSubstr("model_transaction_policy")));
}

TEST(ParseModelConfigTest, WarnsForIgnoredTensorAndSchedulingFields) {
  std::string warnings = WarningsOf(MinimalConfig(R"pb(
input { name: "X" data_type: TYPE_FP32 dims: [ 1 ] allow_ragged_batch: true optional: true }
dynamic_batching {
  preserve_ordering: true
  default_queue_policy { timeout_action: DELAY }
  priority_levels: 2
  default_priority_level: 1
  priority_queue_policy { key: 2 value { max_queue_size: 3 } }
}
instance_group { kind: KIND_CPU gpus: [ 0, 1 ] rate_limiter { priority: 2 } }
)pb"));
  EXPECT_THAT(warnings, HasSubstr("input 'X' allow_ragged_batch: ignored"));
  EXPECT_THAT(warnings, HasSubstr("input 'X' optional: ignored"));
  EXPECT_THAT(warnings, HasSubstr("dynamic_batching preserve_ordering: ignored"));
  EXPECT_THAT(warnings, HasSubstr("timeout_action: DELAY is ignored"));
  EXPECT_THAT(warnings, HasSubstr("dynamic_batching priority_queue_policy: ignored"));
  EXPECT_THAT(warnings, HasSubstr("instance_group #0 gpus: ignored for KIND_CPU"));
  EXPECT_THAT(warnings, HasSubstr("instance_group #0 rate_limiter/secondary_devices/profile/"
                                  "host_policy: ignored"));
}

TEST(ParseModelConfigTest, RefusesPreferredBatchSizesOutsideMaxBatchSize) {
  ExpectInvalid(MinimalConfig("dynamic_batching { preferred_batch_size: [ 4, 9 ] }"),
                "dynamic_batching preferred_batch_size: expected each in 1..8 (max_batch_size), "
                "got 9");
  ExpectInvalid(MinimalConfig("dynamic_batching { preferred_batch_size: [ 0 ] }"),
                "expected each in 1..8 (max_batch_size), got 0");
}

TEST(ParseModelConfigTest, RefusesDefaultPriorityOutsideTheLevels) {
  ExpectInvalid(MinimalConfig("dynamic_batching { priority_levels: 3 default_priority_level: 4 }"),
                "dynamic_batching default_priority_level: expected 1..3 (priority_levels), "
                "got 4");
  ExpectInvalid(MinimalConfig("dynamic_batching { priority_levels: 3 }"),
                "default_priority_level: expected 1..3 (priority_levels), got 0");
  ExpectInvalid(MinimalConfig("dynamic_batching { default_priority_level: 1 }"),
                "default_priority_level: expected 0 (priority_levels is not set), got 1");
  ExpectInvalid(MinimalConfig("dynamic_batching { priority_levels: 4294967296 "
                              "default_priority_level: 1 }"),
                "dynamic_batching priority_levels: expected at most 2147483647, got 4294967296");
}

TEST(ParseModelConfigTest, RefusesMicrosecondsPastInt64) {
  ExpectInvalid(MinimalConfig("dynamic_batching { max_queue_delay_microseconds: "
                              "18446744073709551615 }"),
                "max_queue_delay_microseconds: expected at most 9223372036854775807, got "
                "18446744073709551615");
  ExpectInvalid(MinimalConfig("dynamic_batching { default_queue_policy { "
                              "default_timeout_microseconds: 9223372036854775808 } }"),
                "default_timeout_microseconds: expected at most 9223372036854775807");
}

TEST(ParseModelConfigTest, RefusesBadInstanceGroups) {
  ExpectInvalid(MinimalConfig("instance_group { count: -1 }"),
                "instance_group #0 count: expected >= 1, got -1");
  ExpectInvalid(MinimalConfig("instance_group { name: \"g\" kind: KIND_MODEL }"),
                "instance_group 'g' kind: expected KIND_AUTO, KIND_GPU or KIND_CPU, got "
                "KIND_MODEL");
  ExpectInvalid(MinimalConfig("instance_group { kind: KIND_CPU } instance_group { kind: "
                              "KIND_GPU }"),
                "instance_group #1 kind: KIND_GPU after KIND_CPU; coalesce serves a model from "
                "one device");
  ExpectInvalid(MinimalConfig("instance_group { passive: true }"),
                "instance_group #0 passive: not supported");
  ExpectInvalid(MinimalConfig("instance_group { count: 200 } instance_group { count: 57 }"),
                "instance_group: expected at most 256 instances in all, got 257 by "
                "instance_group #1");
}

TEST(ParseModelConfigTest, RefusesSpecificVersionPolicyWithoutValidVersions) {
  ExpectInvalid(MinimalConfig("version_policy { specific { } }"),
                "version_policy specific: expected at least one version, got none");
  ExpectInvalid(MinimalConfig("version_policy { specific { versions: [ 2, -1 ] } }"),
                "version_policy specific: expected versions >= 0, got -1");
}

TEST(ParseModelConfigTest, RefusesModelFileNameThatIsAPath) {
  for (const char* name : {"../../etc/passwd", "sub/model.pt", "..", ".", "a\\\\b"}) {
    ExpectInvalid(MinimalConfig(absl::StrCat("default_model_filename: \"", name, "\"")),
                  "default_model_filename: expected a file name inside the version folder");
  }
}

// `levels` unknown fields inside one another, opened with `open` and closed with `close`.
std::string Nested(int levels, absl::string_view open = "a {", absl::string_view close = "}") {
  std::string text;
  for (int i = 0; i < levels; ++i) absl::StrAppend(&text, open);
  for (int i = 0; i < levels; ++i) absl::StrAppend(&text, close);
  return text;
}

TEST(ParseModelConfigLimitsTest, RefusesNestingPastTheBoundBeforeParsing) {
  // Deep enough to overflow the parser's stack were it parsed.
  ExpectInvalid(MinimalConfig(Nested(100000)),
                "config.pbtxt of model 'm': line 6:303: expected messages and lists nested at "
                "most 100 deep, got deeper");
  ExpectInvalid(MinimalConfig(Nested(100000, "a <", ">")), "nested at most 100 deep");
  ExpectInvalid(MinimalConfig(Nested(100000, "a: [", "]")), "nested at most 100 deep");
  // Up to the bound, unknown fields are a warning; brackets in strings and comments are text.
  EXPECT_THAT(WarningsOf(MinimalConfig(Nested(100))), HasSubstr("no field named \"a\""));
  EXPECT_TRUE(ParseModelConfig(MinimalConfig(absl::StrCat("# ", std::string(200, '{'), "\n",
                                                          "parameters { key: \"k\" value { "
                                                          "string_value: \"",
                                                          std::string(200, '['), "\" } }")),
                               "m")
                  .ok());
}

TEST(ParseModelConfigLimitsTest, RefusesTextLargerThanOneMiB) {
  const std::string padding = absl::StrCat("# ", std::string(1 << 20, 'x'), "\n");
  ExpectInvalid(MinimalConfig(padding),
                absl::StrCat("config.pbtxt of model 'm': expected at most 1048576 bytes (1 MiB), "
                             "got ",
                             MinimalConfig(padding).size()));
}

TEST(ParseModelConfigLimitsTest, KeepsTheFirstWarningsAndCountsTheRest) {
  std::string unknown;
  for (int i = 0; i < 1000; ++i) absl::StrAppend(&unknown, "unknown_", i, ": 1\n");
  absl::StatusOr<ParsedModelConfig> parsed = ParseModelConfig(MinimalConfig(unknown), "m");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->warnings.size(), 21u);
  EXPECT_THAT(parsed->warnings[0], HasSubstr("no field named \"unknown_0\""));
  EXPECT_THAT(parsed->warnings[19], HasSubstr("no field named \"unknown_19\""));
  EXPECT_EQ(parsed->warnings[20], "and 980 more warning(s) not shown");
}

TEST(ParseModelConfigLimitsTest, RefusesMaxBatchSizePastTheBound) {
  auto with_max_batch_size = [](absl::string_view value) {
    std::string text = MinimalConfig();
    text.replace(text.find("max_batch_size: 8"), 17, absl::StrCat("max_batch_size: ", value));
    return text;
  };
  ExpectInvalid(with_max_batch_size("2147483647"),
                "max_batch_size: expected 0..1048576, got 2147483647");
  EXPECT_TRUE(ParseModelConfig(with_max_batch_size("1048576"), "m").ok());
}

TEST(ParseModelConfigLimitsTest, RefusesStagingPastTheLimitNamingItsParts) {
  // 64 rows x (4 MiB in + 4 KiB out; the variable input takes nothing up front).
  const std::string config = R"pb(
    max_batch_size: 64
    input [ { name: "IMAGE" data_type: TYPE_FP32 dims: [ 1024, 1024 ] },
            { name: "TOKENS" data_type: TYPE_INT64 dims: [ -1 ] } ]
    output [ { name: "EMBEDDING" data_type: TYPE_FP16 dims: [ 2048 ] } ]
  )pb";
  ModelConfigLimits limits;
  limits.max_staging_bytes = int64_t{256} << 20;
  absl::Status status = ParseModelConfig(config, "m", limits).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "config.pbtxt of model 'm': max_batch_size 64 x 4198400 bytes per sample (inputs and "
            "outputs of fixed dims) = 268697600 bytes of staging per executor thread; expected at "
            "most 268435456 (--max_staging_bytes)");
  limits.max_staging_bytes = 268697600;
  EXPECT_TRUE(ParseModelConfig(config, "m", limits).ok());
  // The default limit takes 4 GiB.
  EXPECT_TRUE(ParseModelConfig(config, "m").ok());
}

TEST(ModelFileNameTest, DefaultsToModelPt) {
  EXPECT_EQ(ModelFileName(inference::ModelConfig()), "model.pt");
}

TEST(DataTypeConversionTest, MapsEveryConfigTypeWithACounterpart) {
  const std::vector<std::pair<inference::DataType, DataType>> pairs = {
      {inference::TYPE_BOOL, DataType::kBool},     {inference::TYPE_UINT8, DataType::kUint8},
      {inference::TYPE_UINT16, DataType::kUint16}, {inference::TYPE_UINT32, DataType::kUint32},
      {inference::TYPE_UINT64, DataType::kUint64}, {inference::TYPE_INT8, DataType::kInt8},
      {inference::TYPE_INT16, DataType::kInt16},   {inference::TYPE_INT32, DataType::kInt32},
      {inference::TYPE_INT64, DataType::kInt64},   {inference::TYPE_FP16, DataType::kFp16},
      {inference::TYPE_BF16, DataType::kBf16},     {inference::TYPE_FP32, DataType::kFp32},
      {inference::TYPE_FP64, DataType::kFp64},
  };
  for (const auto& [config_type, type] : pairs) {
    EXPECT_EQ(DataTypeFromConfig(config_type), type) << inference::DataType_Name(config_type);
    EXPECT_EQ(DataTypeToConfig(type), config_type) << DataTypeName(type);
  }
  EXPECT_EQ(DataTypeFromConfig(inference::TYPE_STRING), std::nullopt);
  EXPECT_EQ(DataTypeFromConfig(inference::TYPE_INVALID), std::nullopt);
  EXPECT_EQ(DataTypeFromConfig(static_cast<inference::DataType>(99)), std::nullopt);
}

TEST(DataTypeConversionTest, ServableTypesExcludeStringAndWideUnsigned) {
  EXPECT_TRUE(IsServableConfigDataType(inference::TYPE_FP16));
  EXPECT_TRUE(IsServableConfigDataType(inference::TYPE_UINT8));
  EXPECT_FALSE(IsServableConfigDataType(inference::TYPE_UINT16));
  EXPECT_FALSE(IsServableConfigDataType(inference::TYPE_UINT32));
  EXPECT_FALSE(IsServableConfigDataType(inference::TYPE_UINT64));
  EXPECT_FALSE(IsServableConfigDataType(inference::TYPE_STRING));
  EXPECT_FALSE(IsServableConfigDataType(inference::TYPE_INVALID));
}

TEST(MetadataFromConfigTest, CopiesTensorsAndMapsTypes) {
  absl::StatusOr<ParsedModelConfig> parsed = ParseModelConfig(kTritonConfig, "resnet");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  absl::StatusOr<ModelMetadata> metadata = MetadataFromConfig(parsed->config, "3");
  ASSERT_TRUE(metadata.ok()) << metadata.status();
  EXPECT_EQ(metadata->name, "resnet");
  EXPECT_EQ(metadata->version, "3");
  EXPECT_EQ(metadata->platform, "pytorch_libtorch");
  EXPECT_EQ(metadata->max_batch_size, 64);
  ASSERT_EQ(metadata->inputs.size(), 2u);
  EXPECT_EQ(metadata->inputs[0].name, "INPUT__0");
  EXPECT_EQ(metadata->inputs[0].dtype, DataType::kFp32);
  EXPECT_THAT(metadata->inputs[0].dims, ElementsAre(3, 224, 224));
  EXPECT_EQ(metadata->inputs[1].name, "INPUT__1");
  EXPECT_EQ(metadata->inputs[1].dtype, DataType::kInt64);
  EXPECT_THAT(metadata->inputs[1].dims, ElementsAre(-1));
  ASSERT_EQ(metadata->outputs.size(), 1u);
  EXPECT_EQ(metadata->outputs[0].name, "OUTPUT__0");
  EXPECT_EQ(metadata->outputs[0].dtype, DataType::kFp16);
  EXPECT_THAT(metadata->outputs[0].dims, ElementsAre(1000));
}

TEST(MetadataFromConfigTest, RefusesUnservableTypeInUnvalidatedConfig) {
  inference::ModelConfig config;
  config.set_name("m");
  auto* input = config.add_input();
  input->set_name("TEXT");
  input->set_data_type(inference::TYPE_STRING);
  absl::Status status = MetadataFromConfig(config, "1").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(status.message()),
            "config.pbtxt of model 'm': input 'TEXT' data_type: TYPE_STRING is not servable");
}

ServedModel::Options Defaults() {
  ServedModel::Options options;
  options.num_workers = 2;
  options.max_queue_size = 4096;
  options.batch_policy = BatchPolicyKind::kDeadline;
  options.max_queue_delay = absl::Milliseconds(3);
  options.preferred_batch_sizes = {64};
  options.scheduling.default_timeout = absl::Seconds(5);
  options.scheduling.priority_levels = 1;
  options.scheduling.default_priority = 1;
  return options;
}

TEST(ApplyModelConfigTest, MapsDynamicBatchingAndInstanceGroups) {
  absl::StatusOr<ParsedModelConfig> parsed = ParseModelConfig(kTritonConfig, "resnet");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  absl::StatusOr<ModelConfigOverrides> overrides = ApplyModelConfig(parsed->config, Defaults());
  ASSERT_TRUE(overrides.ok()) << overrides.status();
  const ServedModel::Options& m = overrides->model;
  EXPECT_EQ(m.num_workers, 3);
#if defined(__APPLE__)
  EXPECT_EQ(overrides->device, DeviceKind::kMps);
#else
  EXPECT_EQ(overrides->device, DeviceKind::kCuda);
#endif
  EXPECT_EQ(m.max_queue_size, 512);
  EXPECT_EQ(m.batch_policy, BatchPolicyKind::kDeadline);
  EXPECT_EQ(m.max_queue_delay, absl::Microseconds(1500));
  EXPECT_THAT(m.preferred_batch_sizes, ElementsAre(8, 16, 32));
  EXPECT_EQ(m.scheduling.default_timeout, absl::Microseconds(250000));
  EXPECT_EQ(m.scheduling.priority_levels, 3);
  EXPECT_EQ(m.scheduling.default_priority, 2);
}

TEST(ApplyModelConfigTest, CudaGraphsFromTheOptimizationBlock) {
  const std::string with_graphs =
      MinimalConfig() + "optimization { cuda { graphs: true } }\n";
  absl::StatusOr<ParsedModelConfig> parsed = ParseModelConfig(with_graphs, "m");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  // Nothing else in the block: nothing ignored to warn about.
  EXPECT_THAT(parsed->warnings, IsEmpty());
  absl::StatusOr<ModelConfigOverrides> overrides = ApplyModelConfig(parsed->config, Defaults());
  ASSERT_TRUE(overrides.ok()) << overrides.status();
  EXPECT_TRUE(overrides->cuda_graphs);

  const std::string graphs_and_more =
      MinimalConfig() + "optimization { cuda { graphs: true busy_wait_events: true } }\n";
  parsed = ParseModelConfig(graphs_and_more, "m");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(parsed->warnings,
              ElementsAre("optimization: ignored except cuda.graphs; coalesce chooses precision "
                          "and pinned buffers itself"));

  parsed = ParseModelConfig(MinimalConfig(), "m");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  overrides = ApplyModelConfig(parsed->config, Defaults());
  ASSERT_TRUE(overrides.ok()) << overrides.status();
  EXPECT_FALSE(overrides->cuda_graphs);
}

TEST(ApplyModelConfigTest, WithoutDynamicBatchingOrGroupsKeepsServerDefaults) {
  absl::StatusOr<ParsedModelConfig> parsed = ParseModelConfig(MinimalConfig(), "m");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  absl::StatusOr<ModelConfigOverrides> overrides = ApplyModelConfig(parsed->config, Defaults());
  ASSERT_TRUE(overrides.ok()) << overrides.status();
  const ServedModel::Options& m = overrides->model;
  EXPECT_EQ(overrides->device, std::nullopt);
  EXPECT_EQ(m.num_workers, 2);
  EXPECT_EQ(m.max_queue_size, 4096);
  EXPECT_EQ(m.max_queue_delay, absl::Milliseconds(3));
  EXPECT_THAT(m.preferred_batch_sizes, ElementsAre(64));
  EXPECT_EQ(m.scheduling.default_timeout, absl::Seconds(5));
  EXPECT_EQ(m.scheduling.priority_levels, 1);
}

TEST(ApplyModelConfigTest, ZeroValuedFieldsKeepServerDefaults) {
  absl::StatusOr<ParsedModelConfig> parsed = ParseModelConfig(
      MinimalConfig("dynamic_batching { }\ninstance_group { kind: KIND_CPU }"), "m");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  absl::StatusOr<ModelConfigOverrides> overrides = ApplyModelConfig(parsed->config, Defaults());
  ASSERT_TRUE(overrides.ok()) << overrides.status();
  const ServedModel::Options& m = overrides->model;
  EXPECT_EQ(overrides->device, DeviceKind::kCpu);
  EXPECT_EQ(m.num_workers, 1);  // count unset is one instance, as in Triton
  EXPECT_EQ(m.max_queue_size, 4096);
  EXPECT_EQ(m.max_queue_delay, absl::Milliseconds(3));
  EXPECT_THAT(m.preferred_batch_sizes, ElementsAre(64));
  EXPECT_EQ(m.scheduling.default_timeout, absl::Seconds(5));
}

TEST(ApplyModelConfigTest, AutoGroupsLeaveTheDeviceToTheServer) {
  absl::StatusOr<ParsedModelConfig> parsed =
      ParseModelConfig(MinimalConfig("instance_group { count: 4 }"), "m");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  absl::StatusOr<ModelConfigOverrides> overrides = ApplyModelConfig(parsed->config, Defaults());
  ASSERT_TRUE(overrides.ok()) << overrides.status();
  EXPECT_EQ(overrides->device, std::nullopt);
  EXPECT_EQ(overrides->model.num_workers, 4);
}

TEST(ApplyModelConfigTest, RefusesAnInvalidConfigBuiltInCode) {
  inference::ModelConfig config;
  config.set_name("m");
  config.set_max_batch_size(4);
  config.mutable_dynamic_batching()->add_preferred_batch_size(5);
  absl::Status status = ApplyModelConfig(config, Defaults()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("preferred_batch_size: expected each in 1..4"));
}

inference::ModelVersionPolicy Policy(absl::string_view text) {
  absl::StatusOr<ParsedModelConfig> parsed =
      ParseModelConfig(MinimalConfig(absl::StrCat("version_policy { ", text, " }")), "m");
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? parsed->config.version_policy() : inference::ModelVersionPolicy();
}

TEST(SelectVersionsTest, UnsetPolicyServesTheLatestVersion) {
  absl::StatusOr<std::vector<int64_t>> versions =
      SelectVersions(inference::ModelVersionPolicy(), {3, 1, 10, 2});
  ASSERT_TRUE(versions.ok()) << versions.status();
  EXPECT_THAT(*versions, ElementsAre(10));
}

TEST(SelectVersionsTest, LatestNServesTheNHighestAscending) {
  absl::StatusOr<std::vector<int64_t>> versions =
      SelectVersions(Policy("latest { num_versions: 2 }"), {3, 1, 10, 2, 3});
  ASSERT_TRUE(versions.ok()) << versions.status();
  EXPECT_THAT(*versions, ElementsAre(3, 10));
}

TEST(SelectVersionsTest, LatestMoreThanPresentServesAll) {
  absl::StatusOr<std::vector<int64_t>> versions =
      SelectVersions(Policy("latest { num_versions: 5 }"), {2, 1});
  ASSERT_TRUE(versions.ok()) << versions.status();
  EXPECT_THAT(*versions, ElementsAre(1, 2));
}

TEST(SelectVersionsTest, LatestZeroMeansOne) {
  absl::StatusOr<std::vector<int64_t>> versions = SelectVersions(Policy("latest { }"), {1, 2});
  ASSERT_TRUE(versions.ok()) << versions.status();
  EXPECT_THAT(*versions, ElementsAre(2));
}

TEST(SelectVersionsTest, AllServesEveryVersionSortedWithoutDuplicates) {
  absl::StatusOr<std::vector<int64_t>> versions =
      SelectVersions(Policy("all { }"), {7, 1, 7, 3});
  ASSERT_TRUE(versions.ok()) << versions.status();
  EXPECT_THAT(*versions, ElementsAre(1, 3, 7));
}

TEST(SelectVersionsTest, SpecificServesExactlyThose) {
  absl::StatusOr<std::vector<int64_t>> versions =
      SelectVersions(Policy("specific { versions: [ 4, 1 ] }"), {1, 2, 3, 4});
  ASSERT_TRUE(versions.ok()) << versions.status();
  EXPECT_THAT(*versions, ElementsAre(1, 4));
}

TEST(SelectVersionsTest, SpecificVersionsMissingOnDiskAreNamed) {
  absl::Status status =
      SelectVersions(Policy("specific { versions: [ 5, 1, 9 ] }"), {1, 2}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(std::string(status.message()),
            "version_policy specific: version(s) 5, 9 not found; present: [1, 2]");
}

TEST(SelectVersionsTest, SpecificWithoutVersionsIsInvalid) {
  inference::ModelVersionPolicy policy;
  policy.mutable_specific();
  EXPECT_EQ(SelectVersions(policy, {1}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SelectVersionsTest, NoVersionFoldersIsNotFound) {
  for (const inference::ModelVersionPolicy& policy :
       {inference::ModelVersionPolicy(), Policy("all { }"), Policy("latest { num_versions: 3 }")}) {
    absl::Status status = SelectVersions(policy, {}).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(std::string(status.message()), "no version folders: expected at least one numbered folder");
  }
  EXPECT_EQ(SelectVersions(Policy("specific { versions: [ 1 ] }"), {}).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(ModelConfigToTextTest, RoundTripsThroughTheParser) {
  absl::StatusOr<ParsedModelConfig> parsed = ParseModelConfig(kTritonConfig, "resnet");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  std::string text = ModelConfigToText(parsed->config);
  EXPECT_THAT(text, HasSubstr("name: \"resnet\""));
  absl::StatusOr<ParsedModelConfig> again = ParseModelConfig(text, "resnet");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(again->config, parsed->config));
}

TEST(ExampleRepositoryTest, DemoMlpConfigDescribesTheBuiltInDemoModel) {
  std::ifstream file(std::string(COALESCE_SOURCE_DIR) + "/config/models/demo_mlp/config.pbtxt");
  ASSERT_TRUE(file.good());
  std::stringstream text;
  text << file.rdbuf();
  absl::StatusOr<ParsedModelConfig> parsed = ParseModelConfig(text.str(), "demo_mlp");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(parsed->warnings, IsEmpty());
  absl::StatusOr<ModelMetadata> metadata = MetadataFromConfig(parsed->config, "1");
  ASSERT_TRUE(metadata.ok()) << metadata.status();
  const ModelMetadata demo = DemoModel::Metadata(256);
  EXPECT_EQ(metadata->max_batch_size, demo.max_batch_size);
  ASSERT_EQ(metadata->inputs.size(), 1u);
  ASSERT_EQ(metadata->outputs.size(), 1u);
  EXPECT_EQ(metadata->inputs[0].name, demo.inputs[0].name);
  EXPECT_EQ(metadata->inputs[0].dtype, demo.inputs[0].dtype);
  EXPECT_EQ(metadata->inputs[0].dims, demo.inputs[0].dims);
  EXPECT_EQ(metadata->outputs[0].name, demo.outputs[0].name);
  EXPECT_EQ(metadata->outputs[0].dtype, demo.outputs[0].dtype);
  EXPECT_EQ(metadata->outputs[0].dims, demo.outputs[0].dims);
  absl::StatusOr<ModelConfigOverrides> overrides =
      ApplyModelConfig(parsed->config, ServedModel::Options());
  ASSERT_TRUE(overrides.ok()) << overrides.status();
  EXPECT_EQ(overrides->model.num_workers, 2);
  EXPECT_EQ(overrides->device, std::nullopt);
}

}  // namespace
}  // namespace coalesce
