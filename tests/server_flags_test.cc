#include "server/flags.h"

#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace coalesce {
namespace {

using ::testing::Contains;

TEST(ServerFlagsTest, BatchPolicyIsParsedIntoItsKind) {
  absl::FlagSaver saver;
  absl::SetFlag(&FLAGS_batch_policy, "fixed");
  EXPECT_TRUE(FlagProblems().empty());
  EXPECT_EQ(ModelOptionsFromFlags().batch_policy, BatchPolicyKind::kFixed);
  absl::SetFlag(&FLAGS_batch_policy, "deadline");
  EXPECT_EQ(ModelOptionsFromFlags().batch_policy, BatchPolicyKind::kDeadline);
}

TEST(ServerFlagsTest, ModelControlModeIsParsedIntoItsMode) {
  absl::FlagSaver saver;
  absl::SetFlag(&FLAGS_model_repository, "/models");
  for (const auto& [text, mode] : {std::pair{"none", ModelRepository::ControlMode::kNone},
                                   std::pair{"explicit", ModelRepository::ControlMode::kExplicit},
                                   std::pair{"poll", ModelRepository::ControlMode::kPoll}}) {
    absl::SetFlag(&FLAGS_model_control_mode, text);
    EXPECT_TRUE(FlagProblems().empty()) << text;
    EXPECT_EQ(ControlModeFromFlags(), mode) << text;
    EXPECT_EQ(ModelRepository::ControlModeName(mode), text);
  }
}

TEST(ServerFlagsTest, AnUnknownSpellingIsAProblemListingTheKnownOnes) {
  absl::FlagSaver saver;
  absl::SetFlag(&FLAGS_model_repository, "/models");
  absl::SetFlag(&FLAGS_batch_policy, "lifo");
  absl::SetFlag(&FLAGS_model_control_mode, "auto");
  const std::vector<std::string> problems = FlagProblems();
  EXPECT_THAT(problems, Contains("--batch_policy must be one of deadline, fixed; got 'lifo'"));
  EXPECT_THAT(problems,
              Contains("--model_control_mode must be one of none, explicit, poll; got 'auto'"));
}

}  // namespace
}  // namespace coalesce
