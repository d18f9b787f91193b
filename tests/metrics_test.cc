#include "serving/metrics.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include "tests/fake_clock.h"

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

TEST(WindowedQuantilesTest, QuantilesOfValuesFromManyThreadsAreWithinHalfAPercent) {
  WindowedQuantiles quantiles({0.5, 0.9, 0.99}, absl::Seconds(60), 5, Clock::Real());
  // Latency-like values from 30 us to 3 s, different on each thread.
  constexpr int kThreads = 8, kPerThread = 20000;
  std::vector<std::vector<double>> values(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    std::mt19937 random(t);
    std::lognormal_distribution<double> lognormal(-7.0 + 0.3 * t, 1.0);
    for (int i = 0; i < kPerThread; ++i) {
      values[t].push_back(std::clamp(lognormal(random), 30e-6, 3.0));
    }
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&quantiles, &values, t] {
      for (double v : values[t]) quantiles.Observe(v);
    });
  }
  for (std::thread& thread : threads) thread.join();

  std::vector<double> all;
  double sum = 0;
  for (const std::vector<double>& v : values) {
    all.insert(all.end(), v.begin(), v.end());
    for (double x : v) sum += x;
  }
  std::sort(all.begin(), all.end());
  const WindowedQuantiles::Snapshot snapshot = quantiles.Collect();
  EXPECT_EQ(snapshot.count, all.size());
  EXPECT_NEAR(snapshot.sum, sum, sum * 1e-9);
  ASSERT_EQ(snapshot.quantiles.size(), 3u);
  for (const auto& [q, value] : snapshot.quantiles) {
    // The exact quantile: the smallest value with at least q of all at or below it.
    const double exact = all[static_cast<size_t>(std::ceil(q * all.size())) - 1];
    EXPECT_NEAR(value, exact, exact * 0.004) << "quantile " << q;
  }
}

TEST(WindowedQuantilesTest, QuantilesCoverTheLastWindowCountAndSumEverything) {
  FakeClock clock;
  WindowedQuantiles quantiles({0.5, 0.99}, absl::Seconds(60), 5, &clock);
  auto quantile = [&quantiles](int i) { return quantiles.Collect().quantiles[i].second; };
  EXPECT_TRUE(std::isnan(quantile(0)));  // Nothing observed: NaN, as prometheus::Summary says.
  for (int i = 0; i < 100; ++i) quantiles.Observe(0.001);
  clock.Advance(absl::Seconds(30));
  for (int i = 0; i < 100; ++i) quantiles.Observe(0.010);
  // Both in the window: the median is the lower, p99 the higher.
  EXPECT_NEAR(quantile(0), 0.001, 0.001 * 0.004);
  EXPECT_NEAR(quantile(1), 0.010, 0.010 * 0.004);
  // 61 s after the first values they have left the window (its slots are 12 s each).
  clock.Advance(absl::Seconds(31));
  EXPECT_NEAR(quantile(0), 0.010, 0.010 * 0.004);
  clock.Advance(absl::Seconds(60));
  EXPECT_TRUE(std::isnan(quantile(0)));
  EXPECT_TRUE(std::isnan(quantile(1)));
  const WindowedQuantiles::Snapshot snapshot = quantiles.Collect();
  EXPECT_EQ(snapshot.count, 200u);
  EXPECT_NEAR(snapshot.sum, 100 * 0.001 + 100 * 0.010, 1e-12);
}

TEST(ServerMetricsTest, RequestLatencyIsASummaryOfEachVersionsAnsweredRequests) {
  auto registry = std::make_shared<prometheus::Registry>();
  ServerMetrics metrics(registry);
  std::unique_ptr<ModelMetrics> v1 = metrics.ForModel("m", "1");
  std::unique_ptr<ModelMetrics> v1_reloaded = metrics.ForModel("m", "1");
  std::unique_ptr<ModelMetrics> v2 = metrics.ForModel("m", "2");
  v1->RecordRequest(absl::StatusCode::kOk, absl::Milliseconds(2));
  v1_reloaded->RecordRequest(absl::StatusCode::kOk, absl::Milliseconds(4));
  v1->RecordRequest(absl::StatusCode::kInternal, absl::Milliseconds(100));  // Not OK: not in it.
  // What the metrics endpoint serves.
  prometheus::Registry& served = *metrics.registry();
  const std::string text = prometheus::TextSerializer().Serialize(served.Collect());
  EXPECT_NE(text.find("# TYPE coalesce_request_latency_seconds summary\n"), std::string::npos)
      << text;
  const std::string v1_labels = "{model=\"m\",version=\"1\"";
  EXPECT_EQ(SeriesValue(served, "coalesce_request_latency_seconds_count" + v1_labels + "}"), 2);
  EXPECT_NEAR(SeriesValue(served, "coalesce_request_latency_seconds_sum" + v1_labels + "}"),
              0.006, 1e-12);
  EXPECT_NEAR(SeriesValue(served, "coalesce_request_latency_seconds" + v1_labels +
                                      ",quantile=\"0.5\"}"),
              0.002, 0.002 * 0.004);
  EXPECT_NEAR(SeriesValue(served, "coalesce_request_latency_seconds" + v1_labels +
                                      ",quantile=\"0.99\"}"),
              0.004, 0.004 * 0.004);
  EXPECT_EQ(SeriesValue(served, "coalesce_request_latency_seconds_count{model=\"m\","
                                "version=\"2\"}"),
            0);
  // The other families are served too, and a version's series go with its last instance.
  EXPECT_EQ(SeriesValue(served, "coalesce_requests_total{code=\"OK\",model=\"m\",version=\"1\"}"),
            2);
  v1.reset();
  v1_reloaded.reset();
  EXPECT_EQ(SeriesValue(served, "coalesce_request_latency_seconds_count" + v1_labels + "}"), -1);
  EXPECT_EQ(SeriesValue(served, "coalesce_requests_total{code=\"OK\",model=\"m\",version=\"1\"}"),
            -1);
  // Families registered in the served registry itself (NVML's) are served as well.
  prometheus::BuildGauge().Name("extra_gauge").Help("x").Register(served).Add({}).Set(3);
  EXPECT_EQ(SeriesValue(served, "extra_gauge"), 3);
}

}  // namespace
}  // namespace coalesce
