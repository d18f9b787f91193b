// A model whose instances sit on several (fake) devices: ServedModel with one backend and
// executor per device behind one queue and batcher (serving/served_model.h).
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/blocking_counter.h"
#include "gtest/gtest.h"
#include "serving/metrics.h"
#include "serving/served_model.h"
#include "tests/fake_device_backend.h"
#include "tests/metric_value.h"

namespace coalesce {
namespace {

ModelMetadata TwoFloats() {
  ModelMetadata m;
  m.name = "placed";
  m.version = "1";
  m.max_batch_size = 4;
  m.inputs.push_back({"X", DataType::kFp32, {2}});
  m.outputs.push_back({"Y", DataType::kFp32, {2}});
  return m;
}

// One request's bytes and answer.
struct Call {
  std::vector<float> input;
  std::string output;
  StringOutput output_buffer{&output};
  int answers = 0;
  absl::Status status;
};

TEST(ServedModelDevicesTest, AnswersEveryRequestOnceWithEveryDeviceUsed) {
  ServerMetrics metrics(std::make_shared<prometheus::Registry>());
  FakeDevices devices(2);
  std::vector<ServedModel::DeviceInstances> instances;
  std::vector<FakeDeviceBackend*> backends;
  for (int gpu = 0; gpu < 2; ++gpu) {
    auto backend = std::make_unique<FakeDeviceBackend>(TwoFloats(), gpu, &devices);
    backends.push_back(backend.get());
    instances.push_back({std::move(backend), /*num_workers=*/1});
  }
  ServedModel::Options options;
  // Profiling would run device 0 alone, which the fake devices hold until device 1 runs too.
  options.time_batch = [](int64_t) { return absl::Milliseconds(1); };
  auto model = ServedModel::Create(options, std::move(instances), &metrics, Clock::Real());
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->num_devices(), 2);
  EXPECT_EQ((*model)->num_workers(), 2);

  constexpr int kRequests = 200;
  std::vector<Call> calls(kRequests);
  absl::BlockingCounter answered(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    Call& call = calls[i];
    call.input = {static_cast<float>(i), static_cast<float>(-i)};
    InferRequest::Options request;
    request.rows = 1;
    request.arrival = Clock::Real()->Now();
    request.inputs.emplace_back(reinterpret_cast<const char*>(call.input.data()),
                                call.input.size() * sizeof(float));
    request.outputs = {&call.output_buffer};
    auto infer = std::make_unique<InferRequest>(std::move(request), [&call, &answered](
                                                                        absl::Status status) {
      ++call.answers;
      call.status = std::move(status);
      answered.DecrementCount();
    });
    ASSERT_TRUE((*model)->Submit(infer).ok());
  }
  answered.Wait();
  (*model)->Shutdown();

  for (int i = 0; i < kRequests; ++i) {
    const Call& call = calls[i];
    ASSERT_EQ(call.answers, 1) << "request " << i;
    ASSERT_TRUE(call.status.ok()) << "request " << i << ": " << call.status;
    ASSERT_EQ(call.output.size(), 2 * sizeof(float));
    const float* y = reinterpret_cast<const float*>(call.output.data());
    EXPECT_EQ(y[0], 2.0f * i);
    EXPECT_EQ(y[1], -2.0f * i);
  }
  EXPECT_EQ(backends[0]->rows() + backends[1]->rows(), kRequests);
  EXPECT_GT(backends[0]->rows(), 0);
  EXPECT_GT(backends[1]->rows(), 0);
  // Each device has its own busy series, named by Backend::DeviceName(), as a scrape sees it.
  metrics.SampleDevices();
  for (const char* device : {"cuda:0", "cuda:1"}) {
    std::optional<double> busy = MetricValue(*metrics.registry(),
                                             "coalesce_device_busy_seconds_total",
                                             {{"device", device}});
    ASSERT_TRUE(busy.has_value()) << device;
    EXPECT_GT(*busy, 0) << device;
  }
}

TEST(ServedModelDevicesTest, RefusesNoDevice) {
  ServerMetrics metrics(std::make_shared<prometheus::Registry>());
  auto model = ServedModel::Create(ServedModel::Options(),
                                   std::vector<ServedModel::DeviceInstances>(), &metrics,
                                   Clock::Real());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace coalesce
