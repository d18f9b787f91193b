// NVML's GPU utilisation (server/gpu_utilization.h) with a fake NVML function table, its absence
// (no driver: the CPU machines that run these tests), and a server whose model runs on a CUDA
// device where NVML does not load.
#include "server/gpu_utilization.h"

#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/echo_test_server.h"
#include "tests/http_get.h"
#include "tests/metric_value.h"

namespace coalesce {
namespace {

using NvmlDeviceRef = GpuUtilization::NvmlDeviceRef;

TEST(NvmlDeviceForTest, CudaIndexIsNvmlIndexWithoutVisibleDevices) {
  EXPECT_EQ(*GpuUtilization::NvmlDeviceFor("cuda:0", std::nullopt), NvmlDeviceRef(0u));
  EXPECT_EQ(*GpuUtilization::NvmlDeviceFor("cuda:3", std::nullopt), NvmlDeviceRef(3u));
}

TEST(NvmlDeviceForTest, VisibleDevicesNameTheGpuByIndexOrUuid) {
  const std::string visible = "2, GPU-8f6c0e2a-1b3d-4c5e-9f70-112233445566,0";
  EXPECT_EQ(*GpuUtilization::NvmlDeviceFor("cuda:0", visible), NvmlDeviceRef(2u));
  EXPECT_EQ(*GpuUtilization::NvmlDeviceFor("cuda:1", visible),
            NvmlDeviceRef(std::string("GPU-8f6c0e2a-1b3d-4c5e-9f70-112233445566")));
  EXPECT_EQ(*GpuUtilization::NvmlDeviceFor("cuda:2", visible), NvmlDeviceRef(0u));
}

TEST(NvmlDeviceForTest, RefusesWhatNamesNoGpu) {
  EXPECT_EQ(GpuUtilization::NvmlDeviceFor("cpu", std::nullopt).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GpuUtilization::NvmlDeviceFor("cuda:x", std::nullopt).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GpuUtilization::NvmlDeviceFor("cuda:1", std::string("0")).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(GpuUtilization::NvmlDeviceFor("cuda:0", std::string("MIG-4a2b")).status().code(),
            absl::StatusCode::kNotFound);
}

// A fake NVML: GPUs by index and UUID with the utilisation the test sets. Its functions are
// plain function pointers, so its state is static; each test resets it.
struct FakeNvml {
  static constexpr int kNotSupported = 3;   // NVML_ERROR_NOT_SUPPORTED
  static constexpr int kInvalidArgument = 2;  // NVML_ERROR_INVALID_ARGUMENT
  struct Gpu {
    std::string uuid;
    unsigned int percent = 0;
    int error = 0;
  };
  static inline std::vector<Gpu> gpus;
  static inline int init_error = 0;
  static inline int inits = 0;
  static inline int shutdowns = 0;

  static void Reset(std::vector<Gpu> with) {
    gpus = std::move(with);
    init_error = 0;
    inits = shutdowns = 0;
  }
  static GpuUtilization::Nvml Table() {
    GpuUtilization::Nvml nvml;
    nvml.init = [] {
      ++inits;
      return init_error;
    };
    nvml.shutdown = [] {
      ++shutdowns;
      return 0;
    };
    nvml.error_string = [](int code) { return code == kNotSupported ? "Not Supported" : "Error"; };
    nvml.device_by_index = [](unsigned int i, GpuUtilization::Nvml::Device* device) {
      if (i >= gpus.size()) return kInvalidArgument;
      *device = reinterpret_cast<GpuUtilization::Nvml::Device>(&gpus[i]);
      return 0;
    };
    nvml.device_by_uuid = [](const char* uuid, GpuUtilization::Nvml::Device* device) {
      for (Gpu& gpu : gpus) {
        if (gpu.uuid == uuid) {
          *device = reinterpret_cast<GpuUtilization::Nvml::Device>(&gpu);
          return 0;
        }
      }
      return kInvalidArgument;
    };
    nvml.utilization_rates = [](GpuUtilization::Nvml::Device device,
                                GpuUtilization::Nvml::Utilization* utilization) {
      const Gpu& gpu = *reinterpret_cast<const Gpu*>(device);
      if (gpu.error != 0) return gpu.error;
      utilization->gpu = gpu.percent;
      utilization->memory = 0;
      return 0;
    };
    return nvml;
  }
};

class GpuUtilizationTest : public ::testing::Test {
 protected:
  std::optional<double> Utilization(const std::string& device) {
    return MetricValue(registry_, "coalesce_gpu_utilization_ratio", {{"device", device}});
  }

  prometheus::Registry registry_;
};

TEST_F(GpuUtilizationTest, EachCudaDeviceGetsItsGpusUtilisation) {
  FakeNvml::Reset({{"GPU-a", 30}, {"GPU-b", 70}, {"GPU-c", 5}});
  // CUDA sees GPU 1 as cuda:0 and GPU-c as cuda:1.
  auto nvml = GpuUtilization::Create(FakeNvml::Table(), registry_, std::string("1,GPU-c"));
  ASSERT_TRUE(nvml.ok()) << nvml.status();
  (*nvml)->Sample({"cpu", "cuda:0", "cuda:1"});
  EXPECT_DOUBLE_EQ(*Utilization("cuda:0"), 0.70);
  EXPECT_DOUBLE_EQ(*Utilization("cuda:1"), 0.05);
  EXPECT_EQ(Utilization("cpu"), std::nullopt);

  FakeNvml::gpus[1].percent = 100;
  (*nvml)->Sample({"cpu", "cuda:0", "cuda:1"});
  EXPECT_DOUBLE_EQ(*Utilization("cuda:0"), 1.0);
}

TEST_F(GpuUtilizationTest, ADeviceNvmlCannotAnswerForHasNoGauge) {
  FakeNvml::Reset({{"GPU-a", 40}});
  auto nvml = GpuUtilization::Create(FakeNvml::Table(), registry_, std::nullopt);
  ASSERT_TRUE(nvml.ok()) << nvml.status();
  (*nvml)->Sample({"cuda:0", "cuda:1"});  // NVML knows no second GPU.
  EXPECT_DOUBLE_EQ(*Utilization("cuda:0"), 0.40);
  EXPECT_EQ(Utilization("cuda:1"), std::nullopt);

  // A GPU that stops answering loses its gauge rather than keep a stale value.
  FakeNvml::gpus[0].error = FakeNvml::kNotSupported;
  (*nvml)->Sample({"cuda:0"});
  EXPECT_EQ(Utilization("cuda:0"), std::nullopt);
}

TEST_F(GpuUtilizationTest, InitialisesOnceAndShutsDownAtTheEnd) {
  FakeNvml::Reset({});
  {
    auto nvml = GpuUtilization::Create(FakeNvml::Table(), registry_, std::nullopt);
    ASSERT_TRUE(nvml.ok()) << nvml.status();
    EXPECT_EQ(FakeNvml::inits, 1);
    EXPECT_EQ(FakeNvml::shutdowns, 0);
  }
  EXPECT_EQ(FakeNvml::shutdowns, 1);
}

TEST_F(GpuUtilizationTest, AFailedInitialisationIsUnavailableWithNvmlsError) {
  FakeNvml::Reset({});
  FakeNvml::init_error = FakeNvml::kNotSupported;
  auto nvml = GpuUtilization::Create(FakeNvml::Table(), registry_, std::nullopt);
  EXPECT_EQ(nvml.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(nvml.status().message().find("Not Supported"), std::string::npos) << nvml.status();
}

TEST_F(GpuUtilizationTest, AMissingLibraryIsUnavailableNamingIt) {
  auto nvml = GpuUtilization::Load("libnvidia-ml-absent.so.1", registry_, std::nullopt);
  EXPECT_EQ(nvml.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(nvml.status().message().find("libnvidia-ml-absent.so.1"), std::string::npos)
      << nvml.status();
}

// The echo model, reporting that it runs on cuda:0.
class OnCudaBackend : public Backend {
 public:
  explicit OnCudaBackend(std::unique_ptr<Backend> echo) : echo_(std::move(echo)) {}
  const ModelMetadata& metadata() const override { return echo_->metadata(); }
  absl::Status Execute(int worker, int64_t rows, absl::Span<const char* const> inputs,
                       absl::Span<char* const> outputs) override {
    return echo_->Execute(worker, rows, inputs, outputs);
  }
  std::string DeviceDescription() const override { return "echo on cuda:0"; }
  std::string DeviceName() const override { return "cuda:0"; }

 private:
  std::unique_ptr<Backend> echo_;
};

TEST(GpuUtilizationServerTest, ACudaModelWithoutNvmlServesWithBusyTimeAndNoUtilisation) {
  Server::Options options;
  options.nvml_library = "libnvidia-ml-absent.so.1";
  auto server = StartServerWith(std::make_unique<OnCudaBackend>(MakeEchoBackend()), options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = LoopbackStub(**server);

  const inference::ModelInferRequest request = EchoRequest(1);
  grpc::ClientContext context;
  inference::ModelInferResponse response;
  grpc::Status status = stub->ModelInfer(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();

  const std::string metrics = HttpGet((*server)->metrics_port(), "/metrics");
  EXPECT_GE(MetricValue(metrics, "coalesce_device_busy_seconds_total{device=\"cuda:0\"}"), 0);
  EXPECT_EQ(metrics.find("coalesce_gpu_utilization_ratio"), std::string::npos) << metrics;
  (*server)->Shutdown(absl::Seconds(5));
}

}  // namespace
}  // namespace coalesce
