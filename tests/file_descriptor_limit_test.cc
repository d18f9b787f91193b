#include "server/file_descriptor_limit.h"

#include <sys/resource.h>

#include "gtest/gtest.h"

namespace coalesce {
namespace {

TEST(FileDescriptorLimitTest, RaisesTheSoftLimitToTheHardLimit) {
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  // The test lowers the soft limit to 256 and expects it raised: a host whose hard limit is
  // 256 or less leaves nothing to raise, so there is nothing to check (not a pass either).
  if (saved.rlim_max <= 256) GTEST_SKIP() << "hard limit " << saved.rlim_max << ": no room";
  rlimit low = saved;
  low.rlim_cur = 256;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);

  absl::StatusOr<FileDescriptorLimit> raised = RaiseFileDescriptorLimit();
  rlimit now{};
  getrlimit(RLIMIT_NOFILE, &now);
  setrlimit(RLIMIT_NOFILE, &saved);
  ASSERT_TRUE(raised.ok()) << raised.status();
  EXPECT_EQ(raised->before, 256u);
  EXPECT_EQ(raised->after, saved.rlim_max);
  EXPECT_EQ(raised->hard, saved.rlim_max);
  EXPECT_EQ(now.rlim_cur, saved.rlim_max);
  EXPECT_EQ(now.rlim_max, saved.rlim_max);
}

TEST(FileDescriptorLimitTest, ASoftLimitAtTheHardLimitStaysAsItIs) {
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit full = saved;
  full.rlim_cur = saved.rlim_max;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &full), 0);
  absl::StatusOr<FileDescriptorLimit> raised = RaiseFileDescriptorLimit();
  setrlimit(RLIMIT_NOFILE, &saved);
  ASSERT_TRUE(raised.ok()) << raised.status();
  EXPECT_EQ(raised->before, saved.rlim_max);
  EXPECT_EQ(raised->after, saved.rlim_max);
}

}  // namespace
}  // namespace coalesce
