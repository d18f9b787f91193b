// Instances placed on GPUs over the real repository path (ModelRepository -> placement -> one
// backend per GPU -> ServedModel), with fake GPUs: the repository is told how many are visible
// and its backend factory makes FakeDeviceBackends.
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "absl/synchronization/mutex.h"
#include "tests/fake_device_backend.h"
#include "tests/repository_server.h"

namespace coalesce {
namespace {

// What the backend factory was asked for.
struct FactoryCall {
  std::optional<DeviceKind> device;
  int gpu = -1;
  int num_workers = 0;
};

class RepositoryPlacementTest : public RepositoryServerTest {
 protected:
  // Serves with `visible` fake GPUs and the server's --device `server_device`.
  void StartWithGpus(int visible, std::optional<DeviceKind> server_device = std::nullopt) {
    configure_ = [this, visible, server_device](ModelRepository::Options& options) {
      options.visible_gpus = [visible] { return visible; };
      options.server_device = server_device;
      options.backend_factory = [this](const std::string&, const ModelMetadata& metadata,
                                       const ModelRepository::BackendSettings& settings)
          -> absl::StatusOr<std::unique_ptr<Backend>> {
        absl::MutexLock lock(&mu_);
        calls_.push_back({settings.device, settings.gpu, settings.num_workers});
        return std::make_unique<FakeDeviceBackend>(metadata, std::max(settings.gpu, 0),
                                                   /*devices=*/nullptr);
      };
    };
    Start(ControlMode::kExplicit, {});
  }
  // A ScaleModelConfig model `name` with `groups` appended; its model file is never read.
  void WriteModel(const std::string& name, const std::string& groups) {
    std::filesystem::create_directories(root_ / name / "1");
    std::ofstream(root_ / name / "config.pbtxt") << ScaleModelConfig(name) << groups;
    std::ofstream(root_ / name / "1" / "model.pt") << "read by no one";
  }
  std::vector<std::pair<int, int>> GpusAndWorkers() {
    absl::MutexLock lock(&mu_);
    std::vector<std::pair<int, int>> got;
    for (const FactoryCall& call : calls_) got.emplace_back(call.gpu, call.num_workers);
    return got;
  }

  absl::Mutex mu_;
  std::vector<FactoryCall> calls_;
};

TEST_F(RepositoryPlacementTest, LoadsOneBackendPerListedGpuAndServes) {
  WriteModel("m", "instance_group { count: 2 kind: KIND_GPU gpus: [ 2, 0 ] }");
  StartWithGpus(4);
  grpc::Status loaded = Load("m");
  ASSERT_TRUE(loaded.ok()) << loaded.error_message();
  EXPECT_EQ(GpusAndWorkers(), (std::vector<std::pair<int, int>>{{0, 2}, {2, 2}}));
  {
    absl::MutexLock lock(&mu_);
    for (const FactoryCall& call : calls_) EXPECT_EQ(call.device, DeviceKind::kCuda);
  }
  inference::ModelInferResponse response;
  grpc::Status status = Infer("m", &response, /*rows=*/3);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(Floats(response), (std::vector<float>{2, 4, 2, 4, 2, 4}));
}

TEST_F(RepositoryPlacementTest, DeviceCudaAloneUsesEveryVisibleGpu) {
  WriteModel("m", "");
  StartWithGpus(3, DeviceKind::kCuda);
  grpc::Status loaded = Load("m");
  ASSERT_TRUE(loaded.ok()) << loaded.error_message();
  // --workers (1 here) instances on each GPU.
  EXPECT_EQ(GpusAndWorkers(), (std::vector<std::pair<int, int>>{{0, 1}, {1, 1}, {2, 1}}));
}

TEST_F(RepositoryPlacementTest, GpuThatDoesNotExistFailsTheLoadNamingIt) {
  WriteModel("m", "instance_group { count: 1 kind: KIND_GPU gpus: [ 0, 3 ] }");
  StartWithGpus(2);
  grpc::Status loaded = Load("m");
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error_message().find("load failed for model 'm'"), std::string::npos)
      << loaded.error_message();
  EXPECT_NE(loaded.error_message().find("instance_group #0 gpus: GPU 3 does not exist; 2 GPUs "
                                        "are visible (0..1)"),
            std::string::npos)
      << loaded.error_message();
  EXPECT_FALSE(Ready("m"));
  EXPECT_TRUE(GpusAndWorkers().empty()) << "no backend is made for a placement that fails";
}

TEST_F(RepositoryPlacementTest, CpuServerKeepsOneBackend) {
  WriteModel("m", "instance_group { count: 3 gpus: [ 1 ] }");
  StartWithGpus(2, DeviceKind::kCpu);
  grpc::Status loaded = Load("m");
  ASSERT_TRUE(loaded.ok()) << loaded.error_message();
  EXPECT_EQ(GpusAndWorkers(), (std::vector<std::pair<int, int>>{{-1, 3}}));
}

}  // namespace
}  // namespace coalesce
