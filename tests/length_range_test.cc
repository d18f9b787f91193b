// Request lengths drawn from a range (client/length_range.h) and the requests built for them
// (BuildInferRequests in client/request_builder.h).
#include "client/length_range.h"

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/request_builder.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/inference.pb.h"

namespace coalesce {
namespace {

using ::testing::HasSubstr;

TEST(ParseLengthRangeTest, ReadsOneLengthAsARangeOfOne) {
  auto range = ParseLengthRange("variable_dim", "128");
  ASSERT_TRUE(range.ok()) << range.status();
  EXPECT_EQ(range->min, 128);
  EXPECT_EQ(range->max, 128);
  EXPECT_TRUE(range->single());
  EXPECT_EQ(LengthRangeText(*range), "128");
}

TEST(ParseLengthRangeTest, ReadsMinColonMaxWithSpaces) {
  auto range = ParseLengthRange("variable_dim", " 16 : 256 ");
  ASSERT_TRUE(range.ok()) << range.status();
  EXPECT_EQ(range->min, 16);
  EXPECT_EQ(range->max, 256);
  EXPECT_FALSE(range->single());
  EXPECT_EQ(range->count(), 241);
  EXPECT_EQ(LengthRangeText(*range), "16:256");
  // A range of one length is that length.
  range = ParseLengthRange("variable_dim", "7:7");
  ASSERT_TRUE(range.ok()) << range.status();
  EXPECT_TRUE(range->single());
}

TEST(ParseLengthRangeTest, RejectsBadRangesNamingTheFlagAndTheProblem) {
  auto message = [](const std::string& text) {
    absl::StatusOr<LengthRange> range = ParseLengthRange("variable_dim", text);
    EXPECT_EQ(range.status().code(), absl::StatusCode::kInvalidArgument) << text;
    return std::string(range.status().message());
  };
  EXPECT_THAT(message("0"), HasSubstr("--variable_dim='0': '0' is not a positive integer"));
  EXPECT_THAT(message("-4"), HasSubstr("'-4' is not a positive integer"));
  EXPECT_THAT(message("1.5"), HasSubstr("'1.5' is not a positive integer"));
  EXPECT_THAT(message(""), HasSubstr("'' is not a positive integer"));
  EXPECT_THAT(message("16:"), HasSubstr("'' is not a positive integer"));
  EXPECT_THAT(message(":256"), HasSubstr("'' is not a positive integer"));
  EXPECT_THAT(message("16-256"), HasSubstr("'16-256' is not a positive integer"));
  EXPECT_THAT(message("16:256:512"), HasSubstr("'256:512' is not a positive integer"));
  EXPECT_THAT(message("256:16"), HasSubstr("the first length is above the second"));
  EXPECT_THAT(message("1:1025"), HasSubstr("holds 1025 lengths, more than the 1024"));
  EXPECT_THAT(message("16:256:512"), HasSubstr("expected N or MIN:MAX"));
  EXPECT_TRUE(ParseLengthRange("variable_dim", "1:1024").ok());
}

TEST(DrawLengthsTest, StayInsideTheRangeAndCoverIt) {
  const LengthRange range{16, 256};
  const std::vector<int64_t> lengths = DrawLengths(range, 1 << 16, 1);
  ASSERT_EQ(lengths.size(), 1u << 16);
  std::set<int64_t> seen(lengths.begin(), lengths.end());
  EXPECT_EQ(*seen.begin(), 16);
  EXPECT_EQ(*seen.rbegin(), 256);
  EXPECT_EQ(seen.size(), 241u);  // every length, each ~272 times
  double sum = 0;
  for (int64_t length : lengths) sum += static_cast<double>(length);
  // Uniform: mean 136, standard deviation 69.6, so that of the mean of 65536 is 0.27.
  EXPECT_NEAR(sum / lengths.size(), 136.0, 1.5);
}

TEST(DrawLengthsTest, SameSeedGivesTheSameSequenceAndAnotherSeedDoesNot) {
  const LengthRange range{1, 8};
  EXPECT_EQ(DrawLengths(range, 100, 3), DrawLengths(range, 100, 3));
  EXPECT_NE(DrawLengths(range, 100, 3), DrawLengths(range, 100, 4));
  EXPECT_EQ(DrawLengths(LengthRange{5, 5}, 3, 9), (std::vector<int64_t>{5, 5, 5}));
}

// A token model's metadata: input_ids INT64 [-1, -1], attention_mask INT64 [-1, -1], and an
// FP16 [-1, -1, 3] beside them (a later -1 and a fixed dim).
inference::ModelMetadataResponse TokenMetadata() {
  inference::ModelMetadataResponse metadata;
  metadata.set_name("encoder");
  auto add = [&](const std::string& name, const std::string& datatype,
                 std::vector<int64_t> shape) {
    auto* input = metadata.add_inputs();
    input->set_name(name);
    input->set_datatype(datatype);
    for (int64_t dim : shape) input->add_shape(dim);
  };
  add("input_ids", "INT64", {-1, -1});
  add("attention_mask", "INT64", {-1, -1});
  add("extra", "FP16", {-1, -1, 3});
  return metadata;
}

TEST(BuildInferRequestsTest, BuildsOneRequestPerLengthWhoseBytesMatchItsShape) {
  RequestSpec spec;
  spec.model_name = "encoder";
  spec.batch = 2;
  auto requests = BuildInferRequests(TokenMetadata(), spec, LengthRange{3, 9});
  ASSERT_TRUE(requests.ok()) << requests.status();
  ASSERT_EQ(requests->size(), 7u);
  for (int i = 0; i < 7; ++i) {
    const inference::ModelInferRequest& request = (*requests)[i];
    const int64_t length = 3 + i;
    EXPECT_EQ(request.model_name(), "encoder");
    ASSERT_EQ(request.inputs_size(), 3);
    ASSERT_EQ(request.raw_input_contents_size(), 3);
    for (int j = 0; j < 3; ++j) {
      const auto& input = request.inputs(j);
      ASSERT_GE(input.shape_size(), 2);
      EXPECT_EQ(input.shape(0), 2) << input.name();
      EXPECT_EQ(input.shape(1), length) << input.name();
      int64_t elements = 1;
      for (int64_t dim : input.shape()) elements *= dim;
      EXPECT_EQ(static_cast<int64_t>(request.raw_input_contents(j).size()),
                elements * DatatypeSize(input.datatype()))
          << input.name() << " at length " << length;
    }
  }
}

TEST(BuildInferRequestsTest, ASingleLengthGivesTheRequestBuildInferRequestGives) {
  RequestSpec spec;
  spec.model_name = "encoder";
  spec.variable_dim = 12;
  auto one = BuildInferRequest(TokenMetadata(), spec);
  auto requests = BuildInferRequests(TokenMetadata(), spec, LengthRange{12, 12});
  ASSERT_TRUE(one.ok() && requests.ok());
  ASSERT_EQ(requests->size(), 1u);
  EXPECT_EQ((*requests)[0].SerializeAsString(), one->SerializeAsString());
}

TEST(BuildInferRequestsTest, RejectsAnEmptyRangeAndPassesOnTheBuildersErrors) {
  RequestSpec spec;
  EXPECT_THAT(BuildInferRequests(TokenMetadata(), spec, LengthRange{9, 3}).status().message(),
              HasSubstr("got 9:3"));
  EXPECT_EQ(BuildInferRequests(TokenMetadata(), spec, LengthRange{0, 3}).status().code(),
            absl::StatusCode::kInvalidArgument);
  inference::ModelMetadataResponse bytes = TokenMetadata();
  bytes.mutable_inputs(1)->set_datatype("BYTES");
  EXPECT_THAT(BuildInferRequests(bytes, spec, LengthRange{1, 4}).status().message(),
              HasSubstr("'attention_mask' has datatype 'BYTES'"));
}

TEST(BuildInferRequestsTest, RefusesARangeForAModelWithoutAVariableDimAfterTheBatchOne) {
  RequestSpec spec;
  inference::ModelMetadataResponse fixed;
  fixed.set_name("demo");
  auto* input = fixed.add_inputs();
  input->set_name("INPUT0");
  input->set_datatype("FP32");
  for (int64_t dim : {-1, 32, 256}) input->add_shape(dim);
  EXPECT_EQ(BuildInferRequests(fixed, spec, LengthRange{16, 256}).status().message(),
            "lengths 16:256 need an input with a variable (-1) dim after the batch one; model "
            "'demo' has none");
  // One length is today's request, whatever the model.
  EXPECT_TRUE(BuildInferRequests(fixed, spec, LengthRange{1, 1}).ok());
}

}  // namespace
}  // namespace coalesce
