#ifndef COALESCE_REPOSITORY_INSTANCE_PLACEMENT_H_
#define COALESCE_REPOSITORY_INSTANCE_PLACEMENT_H_

#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "execution/device.h"
#include "proto/model_config.pb.h"

namespace coalesce {

// Where a model's instances run: how many on each device. Pure and thread-safe.
//
// The rules, Triton's where Triton has one (docs/model-repository.md, "Instances and GPUs"):
//  - A model runs on CUDA when a KIND_GPU group says so, or when its groups are KIND_AUTO (or it
//    has none) and the server's device is CUDA: --device=cuda, or --device=auto with a GPU
//    visible.
//  - On CUDA, a group of `count` instances (0 counts as 1) places `count` instances on EACH GPU
//    its `gpus` lists, or on every visible GPU when it lists none; groups add up per GPU. A GPU
//    listed twice gets its instances twice, as in Triton.
//  - With no instance_group, a CUDA model gets the server's default instances (--workers) on
//    every visible GPU.
//  - A listed GPU that is negative or not visible fails the placement (INVALID_ARGUMENT, naming
//    the group, the GPU and how many are visible).
//  - On CUDA with no GPU visible (a CPU-only host), the model keeps one share on the backend's
//    default device, which then fails to load as it did before placement existed.
//  - Off CUDA (KIND_CPU, --device=cpu or mps), `gpus` means nothing: one share of every instance.
//  - At most kMaxPlacedInstances in all, else INVALID_ARGUMENT.
inline constexpr int kMaxPlacedInstances = 256;

// What the server says about its devices.
struct PlacementContext {
  // The server's --device; unset: auto (CUDA when a GPU is visible).
  std::optional<DeviceKind> server_device;
  // Instances of a model whose config has no instance_group (--workers). Must be >= 1.
  int default_instances = 1;
  // CUDA devices visible to the process (cuda:0 .. cuda:N-1).
  int visible_gpus = 0;
};

// One device's share of a model's instances.
struct DeviceShare {
  // The CUDA device index, or -1 for the backend's default device (CPU, MPS, or CUDA with no
  // placement).
  int gpu = -1;
  int instances = 1;
};

struct InstancePlacement {
  // The device kind for the backend: unset leaves it to the server's --device.
  std::optional<DeviceKind> device;
  // Sorted by gpu, each gpu once; never empty.
  std::vector<DeviceShare> shares;

  int total_instances() const;
};

// Places `config`'s instance groups, which ParseModelConfig() has accepted.
absl::StatusOr<InstancePlacement> PlaceInstances(const inference::ModelConfig& config,
                                                 const PlacementContext& context);

}  // namespace coalesce

#endif  // COALESCE_REPOSITORY_INSTANCE_PLACEMENT_H_
