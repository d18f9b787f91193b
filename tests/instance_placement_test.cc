#include "repository/instance_placement.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "repository/model_config.h"

namespace coalesce {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A valid config of model "m" with `groups` (instance_group text) appended.
inference::ModelConfig ConfigWith(const std::string& groups) {
  absl::StatusOr<ParsedModelConfig> parsed = ParseModelConfig(absl::StrCat(R"pb(
platform: "pytorch_libtorch"
max_batch_size: 8
input { name: "IN" data_type: TYPE_FP32 dims: [ 4 ] }
output { name: "OUT" data_type: TYPE_FP32 dims: [ 2 ] }
)pb", groups), "m");
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? parsed->config : inference::ModelConfig();
}

PlacementContext Gpus(int visible, std::optional<DeviceKind> server_device = std::nullopt,
                      int default_instances = 2) {
  PlacementContext context;
  context.server_device = server_device;
  context.visible_gpus = visible;
  context.default_instances = default_instances;
  return context;
}

// (gpu, instances) pairs of a placement that must succeed.
std::vector<std::pair<int, int>> SharesOf(const std::string& groups,
                                          const PlacementContext& context) {
  absl::StatusOr<InstancePlacement> placed = PlaceInstances(ConfigWith(groups), context);
  EXPECT_TRUE(placed.ok()) << placed.status();
  std::vector<std::pair<int, int>> shares;
  if (!placed.ok()) return shares;
  for (const DeviceShare& share : placed->shares) shares.emplace_back(share.gpu, share.instances);
  return shares;
}

// Triton's example: "two execution instances on GPU 0 and ... on GPU 1 and 2" is written as
// one group per count; each group places count instances on each GPU it lists.
TEST(PlaceInstancesTest, PlacesCountOnEachListedGpu) {
  EXPECT_THAT(SharesOf("instance_group [ { count: 1 kind: KIND_GPU gpus: [ 0 ] },"
                       "                 { count: 2 kind: KIND_GPU gpus: [ 1, 2 ] } ]",
                       Gpus(4)),
              ElementsAre(std::make_pair(0, 1), std::make_pair(1, 2), std::make_pair(2, 2)));
}

TEST(PlaceInstancesTest, GroupWithoutGpusPlacesCountOnEveryVisibleGpu) {
  absl::StatusOr<InstancePlacement> placed =
      PlaceInstances(ConfigWith("instance_group { count: 3 kind: KIND_GPU }"), Gpus(2));
  ASSERT_TRUE(placed.ok()) << placed.status();
  EXPECT_EQ(placed->device, DeviceKind::kCuda);
  EXPECT_EQ(placed->total_instances(), 6);
  EXPECT_THAT(SharesOf("instance_group { count: 3 kind: KIND_GPU }", Gpus(2)),
              ElementsAre(std::make_pair(0, 3), std::make_pair(1, 3)));
}

TEST(PlaceInstancesTest, GroupsAddUpPerGpuAndCountZeroIsOne) {
  EXPECT_THAT(SharesOf("instance_group [ { count: 2 kind: KIND_GPU gpus: [ 1 ] },"
                       "                 { kind: KIND_GPU gpus: [ 1, 0 ] } ]",
                       Gpus(2)),
              ElementsAre(std::make_pair(0, 1), std::make_pair(1, 3)));
}

TEST(PlaceInstancesTest, NoInstanceGroupOnCudaPutsDefaultInstancesOnEveryGpu) {
  EXPECT_THAT(SharesOf("", Gpus(3, DeviceKind::kCuda, /*default_instances=*/2)),
              ElementsAre(std::make_pair(0, 2), std::make_pair(1, 2), std::make_pair(2, 2)));
  // --device=auto resolves to CUDA when a GPU is visible.
  EXPECT_THAT(SharesOf("", Gpus(2, std::nullopt, 1)),
              ElementsAre(std::make_pair(0, 1), std::make_pair(1, 1)));
}

TEST(PlaceInstancesTest, KindAutoFollowsTheServerDevice) {
  EXPECT_THAT(SharesOf("instance_group { count: 2 gpus: [ 1 ] }", Gpus(2, DeviceKind::kCuda)),
              ElementsAre(std::make_pair(1, 2)));
  // On CPU the same group is two instances on the one device, its gpus meaning nothing.
  EXPECT_THAT(SharesOf("instance_group { count: 2 gpus: [ 1 ] }", Gpus(2, DeviceKind::kCpu)),
              ElementsAre(std::make_pair(-1, 2)));
}

TEST(PlaceInstancesTest, KindCpuIgnoresGpus) {
  absl::StatusOr<InstancePlacement> placed = PlaceInstances(
      ConfigWith("instance_group { count: 2 kind: KIND_CPU gpus: [ 7 ] }"), Gpus(1));
  ASSERT_TRUE(placed.ok()) << placed.status();
  EXPECT_EQ(placed->device, DeviceKind::kCpu);
  ASSERT_EQ(placed->shares.size(), 1u);
  EXPECT_EQ(placed->shares[0].gpu, -1);
  EXPECT_EQ(placed->shares[0].instances, 2);
}

TEST(PlaceInstancesTest, CpuServerKeepsOneShareOfTheDefaultInstances) {
  EXPECT_THAT(SharesOf("", Gpus(4, DeviceKind::kCpu, 3)), ElementsAre(std::make_pair(-1, 3)));
}

TEST(PlaceInstancesTest, MissingGpuFailsNamingItAndTheVisibleCount) {
  absl::StatusOr<InstancePlacement> placed = PlaceInstances(
      ConfigWith("instance_group { name: \"g\" count: 1 kind: KIND_GPU gpus: [ 0, 2 ] }"),
      Gpus(2));
  ASSERT_EQ(placed.status().code(), absl::StatusCode::kInvalidArgument) << placed.status();
  EXPECT_THAT(std::string(placed.status().message()),
              HasSubstr("instance_group 'g' gpus: GPU 2 does not exist; 2 GPUs are visible "
                        "(0..1)"));
  placed = PlaceInstances(ConfigWith("instance_group { kind: KIND_GPU gpus: [ -1 ] }"), Gpus(1));
  EXPECT_THAT(std::string(placed.status().message()),
              HasSubstr("GPU -1 does not exist; 1 GPU is visible (0)"));
}

TEST(PlaceInstancesTest, ListedGpuOnAHostWithoutGpusFails) {
  absl::StatusOr<InstancePlacement> placed = PlaceInstances(
      ConfigWith("instance_group { kind: KIND_GPU gpus: [ 0 ] }"), Gpus(0));
  EXPECT_THAT(std::string(placed.status().message()),
              HasSubstr("GPU 0 does not exist; no GPU is visible"));
}

TEST(PlaceInstancesTest, CudaWithoutVisibleGpusLeavesTheDeviceToTheBackend) {
  absl::StatusOr<InstancePlacement> placed =
      PlaceInstances(ConfigWith("instance_group { count: 2 kind: KIND_GPU }"), Gpus(0));
  ASSERT_TRUE(placed.ok()) << placed.status();
  EXPECT_EQ(placed->device, DeviceKind::kCuda);
  ASSERT_EQ(placed->shares.size(), 1u);
  EXPECT_EQ(placed->shares[0].gpu, -1);
  EXPECT_EQ(placed->shares[0].instances, 2);
}

TEST(PlaceInstancesTest, RefusesMoreThanTheMaximumOncePlaced) {
  absl::StatusOr<InstancePlacement> placed = PlaceInstances(
      ConfigWith("instance_group { count: 100 kind: KIND_GPU }"), Gpus(3));
  EXPECT_EQ(placed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(placed.status().message()),
              HasSubstr("at most 256 instances in all, got 300 placed on 3 GPU(s)"));
}

}  // namespace
}  // namespace coalesce
