// The series ModelMetrics samples from a backend at scrape time: device fallbacks and device
// memory (serving/metrics.h), and ServedModel::SampleGauges(), which the server calls before each
// scrape.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "serving/metrics.h"
#include "serving/served_model.h"
#include "tests/fake_clock.h"
#include "tests/metric_value.h"

namespace coalesce {
namespace {

// Reports whatever fallback state and device memory the test sets; never runs a batch.
class ReportingBackend : public Backend {
 public:
  ReportingBackend() {
    metadata_.name = "reporting";
    metadata_.max_batch_size = 4;
    metadata_.inputs.push_back({"IN", DataType::kFp32, {1}});
    metadata_.outputs.push_back({"OUT", DataType::kFp32, {1}});
  }
  const ModelMetadata& metadata() const override { return metadata_; }
  absl::Status Execute(int, int64_t, absl::Span<const char* const>,
                       absl::Span<char* const>) override {
    return absl::UnimplementedError("ReportingBackend runs no batches");
  }
  // Its models take their profile from here: the backend runs no batches.
  static ServedModel::Options ModelOptions() {
    ServedModel::Options options;
    options.time_batch = [](int64_t) { return absl::Milliseconds(1); };
    return options;
  }
  std::string DeviceDescription() const override { return "reporting"; }
  std::optional<MemoryUsage> DeviceMemory() const override { return memory; }
  FallbackState Fallback() const override { return fallback; }
  int DefaultBatchesPerWorker() const override { return batches_per_worker; }
  std::string DeviceName() const override { return device; }

  std::optional<MemoryUsage> memory;
  FallbackState fallback;
  int batches_per_worker = 1;
  std::string device = "cpu";

 private:
  ModelMetadata metadata_;
};

class ModelMetricsTest : public ::testing::Test {
 protected:
  // The series `name` of version 1 (every model here is at version 1) with `labels` besides.
  std::optional<double> Value(const std::string& name,
                              std::map<std::string, std::string> labels) {
    labels.emplace("version", "1");
    return MetricValue(*metrics_.registry(), name, labels);
  }

  ServerMetrics metrics_{std::make_shared<prometheus::Registry>()};
};

TEST_F(ModelMetricsTest, FallbackCounterAndGaugeFollowTheBackend) {
  std::unique_ptr<ModelMetrics> m = metrics_.ForModel("demo", "1");
  ReportingBackend backend;
  m->SampleBackend(backend);
  EXPECT_EQ(Value("coalesce_device_fallbacks_total", {{"model", "demo"}}), 0);
  EXPECT_EQ(Value("coalesce_model_on_fallback", {{"model", "demo"}}), 0);

  backend.fallback = {2, true};
  m->SampleBackend(backend);
  EXPECT_EQ(Value("coalesce_device_fallbacks_total", {{"model", "demo"}}), 2);
  EXPECT_EQ(Value("coalesce_model_on_fallback", {{"model", "demo"}}), 1);

  backend.fallback = {3, false};  // One more failure, then back on the device.
  m->SampleBackend(backend);
  m->SampleBackend(backend);  // Sampling again adds nothing.
  EXPECT_EQ(Value("coalesce_device_fallbacks_total", {{"model", "demo"}}), 3);
  EXPECT_EQ(Value("coalesce_model_on_fallback", {{"model", "demo"}}), 0);
}

TEST_F(ModelMetricsTest, InstancesOfOneVersionAddTheirFallbacks) {
  // The old and the new instance of version 1 during a reload.
  std::unique_ptr<ModelMetrics> old_one = metrics_.ForModel("demo", "1");
  std::unique_ptr<ModelMetrics> new_one = metrics_.ForModel("demo", "1");
  ReportingBackend b1, b2;
  b1.fallback = {2, true};
  b2.fallback = {1, true};
  old_one->SampleBackend(b1);
  new_one->SampleBackend(b2);
  b2.fallback = {4, true};
  new_one->SampleBackend(b2);
  old_one->SampleBackend(b1);
  EXPECT_EQ(Value("coalesce_device_fallbacks_total", {{"model", "demo"}}), 2 + 4);
}

TEST_F(ModelMetricsTest, DeviceMemoryIsExportedOnlyWhereTheBackendKnowsIt) {
  std::unique_ptr<ModelMetrics> m = metrics_.ForModel("demo", "1");
  ReportingBackend backend;
  m->SampleBackend(backend);
  EXPECT_EQ(Value("coalesce_device_memory_bytes", {{"model", "demo"}, {"kind", "in_use"}}),
            std::nullopt);

  backend.memory = Backend::MemoryUsage{100 << 20, 300 << 20};
  m->SampleBackend(backend);
  EXPECT_EQ(Value("coalesce_device_memory_bytes", {{"model", "demo"}, {"kind", "in_use"}}),
            100 << 20);
  EXPECT_EQ(Value("coalesce_device_memory_bytes", {{"model", "demo"}, {"kind", "reserved"}}),
            300 << 20);
}

TEST_F(ModelMetricsTest, ServedModelSamplesItsBackendBeforeAScrape) {
  auto backend = std::make_unique<ReportingBackend>();
  ReportingBackend* reporting = backend.get();
  reporting->fallback = {5, true};
  reporting->memory = Backend::MemoryUsage{7, 9};
  FakeClock clock;
  ServedModel::Options options = ReportingBackend::ModelOptions();
  auto model = ServedModel::Create(options, std::move(backend), &metrics_, &clock);
  ASSERT_TRUE(model.ok()) << model.status();
  (*model)->SampleGauges();
  EXPECT_EQ(Value("coalesce_device_fallbacks_total", {{"model", "reporting"}}), 5);
  EXPECT_EQ(Value("coalesce_model_on_fallback", {{"model", "reporting"}}), 1);
  EXPECT_EQ(Value("coalesce_device_memory_bytes", {{"model", "reporting"}, {"kind", "reserved"}}),
            9);
  EXPECT_EQ(Value("coalesce_queue_depth", {{"model", "reporting"}}), 0);
}

TEST_F(ModelMetricsTest, ServedModelOnSeveralDevicesAddsUpItsBackends) {
  std::vector<ServedModel::DeviceInstances> devices;
  for (int gpu = 0; gpu < 2; ++gpu) {
    auto backend = std::make_unique<ReportingBackend>();
    backend->device = absl::StrCat("cuda:", gpu);
    backend->fallback = {gpu + 2, gpu == 1};
    backend->memory = Backend::MemoryUsage{10 + gpu, 100 + gpu};
    devices.push_back({std::move(backend), 1});
  }
  FakeClock clock;
  auto model =
      ServedModel::Create(ReportingBackend::ModelOptions(), std::move(devices), &metrics_, &clock);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(metrics_.devices(), (std::vector<std::string>{"cuda:0", "cuda:1"}));
  (*model)->SampleGauges();
  EXPECT_EQ(Value("coalesce_device_fallbacks_total", {{"model", "reporting"}}), 2 + 3);
  EXPECT_EQ(Value("coalesce_model_on_fallback", {{"model", "reporting"}}), 1);
  EXPECT_EQ(Value("coalesce_device_memory_bytes", {{"model", "reporting"}, {"kind", "in_use"}}),
            10 + 11);
  EXPECT_EQ(Value("coalesce_device_memory_bytes", {{"model", "reporting"}, {"kind", "reserved"}}),
            100 + 101);
}

TEST_F(ModelMetricsTest, ServedModelProfilesWithItsBatchTimerInsteadOfRunningTheBackend) {
  // ReportingBackend fails every batch: a profile that ran it would fail the load.
  ServedModel::Options options;
  options.time_batch = [](int64_t rows) { return rows * absl::Milliseconds(2); };
  FakeClock clock;
  auto model =
      ServedModel::Create(options, std::make_unique<ReportingBackend>(), &metrics_, &clock);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(Value("coalesce_predicted_batch_duration_seconds",
                  {{"model", "reporting"}, {"batch_size", "4"}}),
            0.008);
  EXPECT_DOUBLE_EQ(absl::ToDoubleSeconds((*model)->latency().Predict(4)), 0.008);
}

TEST_F(ModelMetricsTest, ServedModelWithoutABatchTimerProfilesByRunningItsBackend) {
  FakeClock clock;
  auto model = ServedModel::Create(ServedModel::Options(), std::make_unique<ReportingBackend>(),
                                   &metrics_, &clock);
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(model.status().message(),
            "model 'reporting' failed while profiling batch size 1: ReportingBackend runs no "
            "batches");
}

TEST_F(ModelMetricsTest, ServedModelCountsTowardItsBackendsDevice) {
  auto backend = std::make_unique<ReportingBackend>();
  backend->device = "cuda:1";
  FakeClock clock;
  ServedModel::Options options = ReportingBackend::ModelOptions();
  auto model = ServedModel::Create(options, std::move(backend), &metrics_, &clock);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(metrics_.devices(), std::vector<std::string>{"cuda:1"});
  metrics_.SampleDevices();
  EXPECT_EQ(MetricValue(*metrics_.registry(), "coalesce_device_busy_seconds_total",
                        {{"device", "cuda:1"}}),
            0);
  EXPECT_EQ(MetricValue(*metrics_.registry(), "coalesce_device_busy_ratio", {{"device", "cuda:1"}}),
            0);
}

TEST_F(ModelMetricsTest, ServedModelHoldsTheBackendsBatchesPerWorkerUnlessTold) {
  // Each executor thread reserves staging for the input and the output at start-up, counted as
  // pool misses: 2 per thread, and a thread per worker and batch it holds.
  for (int told : {0, 1, 3}) {
    ServerMetrics metrics(std::make_shared<prometheus::Registry>());
    auto backend = std::make_unique<ReportingBackend>();
    backend->batches_per_worker = 2;
    FakeClock clock;
    ServedModel::Options options = ReportingBackend::ModelOptions();
    options.num_workers = 2;
    options.batches_per_worker = told;
    auto model = ServedModel::Create(options, std::move(backend), &metrics, &clock);
    ASSERT_TRUE(model.ok()) << model.status();
    (*model)->Shutdown();  // Joins the threads, so each has reserved.
    const int threads = 2 * (told == 0 ? 2 : told);
    EXPECT_EQ(MetricValue(*metrics.registry(), "coalesce_staging_pool_total",
                          {{"model", "reporting"}, {"version", "1"}, {"result", "miss"}}),
              2 * threads)
        << "batches_per_worker " << told;
  }
}

}  // namespace
}  // namespace coalesce
