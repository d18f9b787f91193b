#include "serving/metrics.h"

#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

namespace coalesce {
namespace {

// The value of the series `name{labels}` in the registry's text exposition, or -1.
double SeriesValue(prometheus::Registry& registry, const std::string& series) {
  std::string text = prometheus::TextSerializer().Serialize(registry.Collect());
  size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

TEST(ServerMetricsTest, ThroughputIsSamplesPerSecondOfEachVersionBetweenSamples) {
  auto registry = std::make_shared<prometheus::Registry>();
  ServerMetrics metrics(registry);
  // Two instances of version 1 (during a reload) share its series; version 2 has its own.
  std::unique_ptr<ModelMetrics> v1 = metrics.ForModel("m", "1");
  std::unique_ptr<ModelMetrics> v1_reloaded = metrics.ForModel("m", "1");
  std::unique_ptr<ModelMetrics> v2 = metrics.ForModel("m", "2");
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  v1->RecordBatch(10, absl::Milliseconds(1), absl::ZeroDuration());
  metrics.SampleThroughput(t0);
  v1->RecordBatch(30, absl::Milliseconds(1), absl::ZeroDuration());
  v1_reloaded->RecordBatch(20, absl::Milliseconds(1), absl::ZeroDuration());
  v2->RecordBatch(8, absl::Milliseconds(1), absl::ZeroDuration());
  metrics.SampleThroughput(t0 + absl::Seconds(2));
  EXPECT_DOUBLE_EQ(
      SeriesValue(*registry, "coalesce_throughput_samples_per_second{model=\"m\",version=\"1\"}"),
      25.0);
  EXPECT_DOUBLE_EQ(
      SeriesValue(*registry, "coalesce_throughput_samples_per_second{model=\"m\",version=\"2\"}"),
      4.0);
  // Nothing ran since: zero.
  metrics.SampleThroughput(t0 + absl::Seconds(4));
  EXPECT_DOUBLE_EQ(
      SeriesValue(*registry, "coalesce_throughput_samples_per_second{model=\"m\",version=\"1\"}"),
      0.0);
}

TEST(ServerMetricsTest, EachVersionCountsItsOwnRequests) {
  auto registry = std::make_shared<prometheus::Registry>();
  ServerMetrics metrics(registry);
  std::unique_ptr<ModelMetrics> v1 = metrics.ForModel("m", "1");
  std::unique_ptr<ModelMetrics> v2 = metrics.ForModel("m", "2");
  v1->RecordRequest(absl::StatusCode::kOk, absl::Milliseconds(1));
  v2->RecordRequest(absl::StatusCode::kOk, absl::Milliseconds(1));
  v2->RecordRequest(absl::StatusCode::kOk, absl::Milliseconds(1));
  const std::string ok = "coalesce_requests_total{code=\"OK\",model=\"m\",";
  EXPECT_EQ(SeriesValue(*registry, ok + "version=\"1\"}"), 1);
  EXPECT_EQ(SeriesValue(*registry, ok + "version=\"2\"}"), 2);
}

TEST(ServerMetricsTest, AVersionsSeriesGoWithItsLastInstance) {
  auto registry = std::make_shared<prometheus::Registry>();
  ServerMetrics metrics(registry);
  const std::string v1_batches = "coalesce_batches_total{model=\"m\",version=\"1\"}";
  const std::string v1_predicted =
      "coalesce_predicted_batch_duration_seconds{batch_size=\"4\",model=\"m\",version=\"1\"}";
  std::unique_ptr<ModelMetrics> v1 = metrics.ForModel("m", "1");
  std::unique_ptr<ModelMetrics> v1_reloaded = metrics.ForModel("m", "1");
  std::unique_ptr<ModelMetrics> v2 = metrics.ForModel("m", "2");
  v1->RecordBatch(4, absl::Milliseconds(1), absl::ZeroDuration());
  v1->SetPredictedBatchDuration(4, absl::Milliseconds(2));
  v1.reset();  // The reload's old instance goes; the new one still serves version 1.
  EXPECT_EQ(SeriesValue(*registry, v1_batches), 1);
  EXPECT_EQ(SeriesValue(*registry, v1_predicted), 0.002);
  v1_reloaded.reset();  // Version 1 unloaded.
  EXPECT_EQ(SeriesValue(*registry, v1_batches), -1);
  EXPECT_EQ(SeriesValue(*registry, v1_predicted), -1);
  EXPECT_EQ(SeriesValue(*registry, "coalesce_batches_total{model=\"m\",version=\"2\"}"), 0);
  // Loaded again, it starts afresh.
  v1 = metrics.ForModel("m", "1");
  EXPECT_EQ(SeriesValue(*registry, v1_batches), 0);
}

TEST(ServerMetricsTest, PredictionRatioIsMeasuredOverPredictedWithoutRounding) {
  auto registry = std::make_shared<prometheus::Registry>();
  ServerMetrics metrics(registry);
  std::unique_ptr<ModelMetrics> m = metrics.ForModel("m", "1");
  m->RecordBatch(4, absl::Microseconds(1500), absl::Milliseconds(1));
  m->RecordBatch(4, absl::Microseconds(900), absl::Milliseconds(1));
  const std::string labels = "{model=\"m\",version=\"1\"}";
  EXPECT_DOUBLE_EQ(SeriesValue(*registry, "coalesce_batch_duration_prediction_ratio_sum" + labels),
                   1.5 + 0.9);
}

TEST(ServerMetricsTest, QueueTimeIsAHistogramPerModelVersion) {
  auto registry = std::make_shared<prometheus::Registry>();
  ServerMetrics metrics(registry);
  std::unique_ptr<ModelMetrics> m = metrics.ForModel("m", "1");
  m->RecordQueued(absl::Milliseconds(3));
  m->RecordQueued(absl::Milliseconds(5));
  const std::string labels = "{model=\"m\",version=\"1\"}";
  EXPECT_DOUBLE_EQ(SeriesValue(*registry, "coalesce_queue_duration_seconds_count" + labels), 2.0);
  EXPECT_NEAR(SeriesValue(*registry, "coalesce_queue_duration_seconds_sum" + labels), 0.008, 1e-9);
}

}  // namespace
}  // namespace coalesce
