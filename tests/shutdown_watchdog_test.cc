// ShutdownWatchdog: past its bound it reports what is stuck (and, in the server, ends the
// process; here a test callback takes the report instead).
#include "server/shutdown_watchdog.h"

#include <string>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace coalesce {

// External linkage, so that the optimiser keeps the store and LeakSanitizer sees the watchdog
// as reachable.
ShutdownWatchdog* watchdog_left_running = nullptr;

namespace {

TEST(ShutdownWatchdogTest, PastItsBoundReportsWhatIsStuck) {
  absl::Notification expired;
  std::string report;
  ShutdownWatchdog::Options options;
  options.bound = absl::Milliseconds(50);
  options.progress = [] { return std::string("a forward pass"); };
  options.expire = [&](const std::string& r) {
    report = r;
    expired.Notify();
  };
  auto watchdog = ShutdownWatchdog::Create(options);
  ASSERT_TRUE(watchdog.ok()) << watchdog.status();
  (*watchdog)->Start();
  ASSERT_TRUE(expired.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(report,
            "still running 50ms after the stop signal; exiting with status 3 without waiting "
            "further. Stuck: a forward pass");
  // Left alive, and reachable (not a leak): its thread may still be returning from `expire`.
  watchdog_left_running = watchdog->release();
}

TEST(ShutdownWatchdogTest, CreateRefusesABoundThatIsNotPositiveAndFinite) {
  for (absl::Duration bound : {absl::ZeroDuration(), absl::Seconds(-1), absl::InfiniteDuration()}) {
    ShutdownWatchdog::Options options;
    options.bound = bound;
    EXPECT_EQ(ShutdownWatchdog::Create(options).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bound;
  }
}

}  // namespace
}  // namespace coalesce
