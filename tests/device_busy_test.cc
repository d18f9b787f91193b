// A device's busy time (execution/device_busy.h) and its series, sampled before each scrape
// (ServerMetrics::SampleDevices()), against a fake clock.
#include "execution/device_busy.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "serving/metrics.h"
#include "tests/fake_clock.h"
#include "tests/metric_value.h"

namespace coalesce {
namespace {

TEST(DeviceBusyTest, OverlappingCallsCountOnceAndIdleTimeNotAtAll) {
  FakeClock clock;
  DeviceBusy busy(&clock);
  busy.Begin();  // Call A: 0 .. 20 ms.
  clock.Advance(absl::Milliseconds(10));
  busy.Begin();  // Call B: 10 .. 30 ms, overlapping A.
  clock.Advance(absl::Milliseconds(10));
  busy.End();
  clock.Advance(absl::Milliseconds(10));
  busy.End();
  clock.Advance(absl::Milliseconds(20));  // Idle.
  // The union, 0 .. 30 ms; the calls' sum would be 40 ms.
  EXPECT_EQ(busy.BusyTime(), absl::Milliseconds(30));
}

TEST(DeviceBusyTest, ACallStillRunningCountsUpToNow) {
  FakeClock clock;
  DeviceBusy busy(&clock);
  busy.Begin();
  clock.Advance(absl::Milliseconds(5));
  busy.End();
  clock.Advance(absl::Milliseconds(5));
  busy.Begin();
  clock.Advance(absl::Milliseconds(3));
  EXPECT_EQ(busy.BusyTime(), absl::Milliseconds(8));
  clock.Advance(absl::Milliseconds(3));
  EXPECT_EQ(busy.BusyTime(), absl::Milliseconds(11));
}

TEST(DeviceBusyTest, ScopeCountsItsLifetimeAndNullTracksNothing) {
  FakeClock clock;
  DeviceBusy busy(&clock);
  {
    DeviceBusy::Scope on_device(&busy);
    clock.Advance(absl::Milliseconds(7));
  }
  { DeviceBusy::Scope untracked(nullptr); }
  clock.Advance(absl::Milliseconds(7));
  EXPECT_EQ(busy.BusyTime(), absl::Milliseconds(7));
}

class DeviceSeriesTest : public ::testing::Test {
 protected:
  std::optional<double> Value(const std::string& name, const std::string& device) {
    return MetricValue(*metrics_.registry(), name, {{"device", device}});
  }

  FakeClock clock_;
  ServerMetrics metrics_{std::make_shared<prometheus::Registry>(), &clock_};
};

TEST_F(DeviceSeriesTest, ModelsOnOneDeviceShareItsBusyTime) {
  EXPECT_EQ(metrics_.Device("cuda:0"), metrics_.Device("cuda:0"));
  EXPECT_NE(metrics_.Device("cuda:0"), metrics_.Device("cpu"));
  EXPECT_EQ(metrics_.devices(), (std::vector<std::string>{"cpu", "cuda:0"}));
}

TEST_F(DeviceSeriesTest, RatioIsTheBusyShareOfEachScrapeInterval) {
  DeviceBusy* busy = metrics_.Device("cuda:0");
  // First interval, 50 ms: two overlapping calls (0 .. 20 and 10 .. 30 ms), then idle.
  busy->Begin();
  clock_.Advance(absl::Milliseconds(10));
  busy->Begin();
  clock_.Advance(absl::Milliseconds(10));
  busy->End();
  clock_.Advance(absl::Milliseconds(10));
  busy->End();
  clock_.Advance(absl::Milliseconds(20));
  metrics_.SampleDevices();
  EXPECT_DOUBLE_EQ(*Value("coalesce_device_busy_seconds_total", "cuda:0"), 0.030);
  EXPECT_DOUBLE_EQ(*Value("coalesce_device_busy_ratio", "cuda:0"), 0.6);

  // Second interval, 100 ms: a call starts 75 ms in and is still running at the scrape.
  clock_.Advance(absl::Milliseconds(75));
  busy->Begin();
  clock_.Advance(absl::Milliseconds(25));
  metrics_.SampleDevices();
  EXPECT_DOUBLE_EQ(*Value("coalesce_device_busy_seconds_total", "cuda:0"), 0.055);
  EXPECT_DOUBLE_EQ(*Value("coalesce_device_busy_ratio", "cuda:0"), 0.25);

  // Third, 40 ms: the call ends 10 ms in; its part before the last scrape is not counted again.
  clock_.Advance(absl::Milliseconds(10));
  busy->End();
  clock_.Advance(absl::Milliseconds(30));
  metrics_.SampleDevices();
  EXPECT_DOUBLE_EQ(*Value("coalesce_device_busy_seconds_total", "cuda:0"), 0.065);
  EXPECT_DOUBLE_EQ(*Value("coalesce_device_busy_ratio", "cuda:0"), 0.25);

  // A scrape at the same instant changes nothing.
  metrics_.SampleDevices();
  EXPECT_DOUBLE_EQ(*Value("coalesce_device_busy_seconds_total", "cuda:0"), 0.065);
  EXPECT_DOUBLE_EQ(*Value("coalesce_device_busy_ratio", "cuda:0"), 0.25);
}

TEST_F(DeviceSeriesTest, ADeviceWithoutWorkReportsZero) {
  metrics_.Device("cpu");
  clock_.Advance(absl::Seconds(1));
  metrics_.SampleDevices();
  EXPECT_EQ(Value("coalesce_device_busy_seconds_total", "cpu"), 0);
  EXPECT_EQ(Value("coalesce_device_busy_ratio", "cpu"), 0);
  EXPECT_EQ(Value("coalesce_device_busy_ratio", "cuda:0"), std::nullopt);
}

}  // namespace
}  // namespace coalesce
