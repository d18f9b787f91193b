#include "core/metrics.h"

#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

namespace coalesce {
namespace {

// The value of the series `name{model="m"...}` in the registry's text exposition, or -1.
double SeriesValue(prometheus::Registry& registry, const std::string& series) {
  std::string text = prometheus::TextSerializer().Serialize(registry.Collect());
  size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

TEST(ServerMetricsTest, ThroughputIsSamplesPerSecondBetweenSamplesAcrossVersions) {
  auto registry = std::make_shared<prometheus::Registry>();
  ServerMetrics metrics(registry);
  // Two versions of one model share its series.
  std::unique_ptr<ModelMetrics> v1 = metrics.ForModel("m");
  std::unique_ptr<ModelMetrics> v2 = metrics.ForModel("m");
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  v1->RecordBatch(10, absl::Milliseconds(1), absl::ZeroDuration());
  metrics.SampleThroughput(t0);
  v1->RecordBatch(30, absl::Milliseconds(1), absl::ZeroDuration());
  v2->RecordBatch(20, absl::Milliseconds(1), absl::ZeroDuration());
  metrics.SampleThroughput(t0 + absl::Seconds(2));
  EXPECT_DOUBLE_EQ(SeriesValue(*registry,
                               "coalesce_throughput_samples_per_second{model=\"m\"}"),
                   25.0);
  // Nothing ran since: zero.
  metrics.SampleThroughput(t0 + absl::Seconds(4));
  EXPECT_DOUBLE_EQ(SeriesValue(*registry,
                               "coalesce_throughput_samples_per_second{model=\"m\"}"),
                   0.0);
}

TEST(ServerMetricsTest, QueueTimeIsAHistogramPerModel) {
  auto registry = std::make_shared<prometheus::Registry>();
  ServerMetrics metrics(registry);
  std::unique_ptr<ModelMetrics> m = metrics.ForModel("m");
  m->RecordQueued(absl::Milliseconds(3));
  m->RecordQueued(absl::Milliseconds(5));
  EXPECT_DOUBLE_EQ(SeriesValue(*registry, "coalesce_queue_duration_seconds_count{model=\"m\"}"),
                   2.0);
  EXPECT_NEAR(SeriesValue(*registry, "coalesce_queue_duration_seconds_sum{model=\"m\"}"), 0.008,
              1e-9);
}

}  // namespace
}  // namespace coalesce
