#include "server/scheduling_parameters.h"

#include "gtest/gtest.h"

namespace coalesce {
namespace {

const absl::Time kArrival = absl::UnixEpoch() + absl::Hours(1);

inference::ModelInferRequest WithParameter(const std::string& name, int64_t value) {
  inference::ModelInferRequest request;
  (*request.mutable_parameters())[name].set_int64_param(value);
  return request;
}

SchedulingOptions Options(absl::Duration default_timeout = absl::InfiniteDuration(),
                          int levels = 1, int default_priority = 1) {
  SchedulingOptions options;
  options.default_timeout = default_timeout;
  options.priority_levels = levels;
  options.default_priority = default_priority;
  return options;
}

TEST(SchedulingTest, NoDeadlineAnywhereMeansNone) {
  auto s = ResolveScheduling({}, kArrival, absl::InfiniteFuture(), Options());
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->deadline, absl::InfiniteFuture());
  EXPECT_EQ(s->priority, 1);
}

TEST(SchedulingTest, GrpcDeadlineIsUsed) {
  auto s = ResolveScheduling({}, kArrival, kArrival + absl::Milliseconds(30),
                             Options(absl::Seconds(1)));
  EXPECT_EQ(s->deadline, kArrival + absl::Milliseconds(30));
}

TEST(SchedulingTest, TimeoutParameterIsMicroseconds) {
  auto s = ResolveScheduling(WithParameter("timeout", 2500), kArrival, absl::InfiniteFuture(),
                             Options(absl::Seconds(1)));
  EXPECT_EQ(s->deadline, kArrival + absl::Microseconds(2500));
}

TEST(SchedulingTest, TighterOfGrpcDeadlineAndTimeoutWins) {
  auto s = ResolveScheduling(WithParameter("timeout", 2000), kArrival,
                             kArrival + absl::Milliseconds(1), Options());
  EXPECT_EQ(s->deadline, kArrival + absl::Milliseconds(1));
  s = ResolveScheduling(WithParameter("timeout", 2000), kArrival,
                        kArrival + absl::Milliseconds(5), Options());
  EXPECT_EQ(s->deadline, kArrival + absl::Milliseconds(2));
}

TEST(SchedulingTest, ModelDefaultAppliesWhenRequestSaysNothing) {
  auto s = ResolveScheduling({}, kArrival, absl::InfiniteFuture(), Options(absl::Milliseconds(40)));
  EXPECT_EQ(s->deadline, kArrival + absl::Milliseconds(40));
}

TEST(SchedulingTest, NegativeOrNonIntegerTimeoutIsRefused) {
  auto s = ResolveScheduling(WithParameter("timeout", -1), kArrival, absl::InfiniteFuture(), Options());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("'timeout'"), std::string::npos);
  inference::ModelInferRequest text;
  (*text.mutable_parameters())["timeout"].set_string_param("soon");
  EXPECT_EQ(ResolveScheduling(text, kArrival, absl::InfiniteFuture(), Options()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SchedulingTest, PriorityParameterWithinLevels) {
  auto s = ResolveScheduling(WithParameter("priority", 3), kArrival, absl::InfiniteFuture(),
                             Options(absl::InfiniteDuration(), 3, 2));
  EXPECT_EQ(s->priority, 3);
  s = ResolveScheduling({}, kArrival, absl::InfiniteFuture(), Options(absl::InfiniteDuration(), 3, 2));
  EXPECT_EQ(s->priority, 2);
  s = ResolveScheduling(WithParameter("priority", 0), kArrival, absl::InfiniteFuture(),
                        Options(absl::InfiniteDuration(), 3, 2));
  EXPECT_EQ(s->priority, 2);  // 0 means the default, as in Triton.
  s = ResolveScheduling(WithParameter("priority", 4), kArrival, absl::InfiniteFuture(),
                        Options(absl::InfiniteDuration(), 3, 2));
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("outside 1..3"), std::string::npos) << s.status();
}

}  // namespace
}  // namespace coalesce
