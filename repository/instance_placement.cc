#include "repository/instance_placement.h"

#include <algorithm>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "repository/model_config_checks.h"

namespace coalesce {
namespace {

using inference::ModelInstanceGroup;
using model_config_internal::InstancePlan;
using model_config_internal::Invalid;
using model_config_internal::PlanInstances;

std::string GroupLabel(const ModelInstanceGroup& group, int i) {
  return group.name().empty() ? absl::StrCat("instance_group #", i)
                              : absl::StrCat("instance_group '", group.name(), "'");
}

std::string VisibleText(int visible_gpus) {
  if (visible_gpus == 0) return "no GPU is visible";
  if (visible_gpus == 1) return "1 GPU is visible (0)";
  return absl::StrCat(visible_gpus, " GPUs are visible (0..", visible_gpus - 1, ")");
}

}  // namespace

int InstancePlacement::total_instances() const {
  int total = 0;
  for (const DeviceShare& share : shares) total += share.instances;
  return total;
}

absl::StatusOr<InstancePlacement> PlaceInstances(const inference::ModelConfig& config,
                                                 const PlacementContext& context) {
  absl::StatusOr<InstancePlan> plan = PlanInstances(config, /*warnings=*/nullptr);
  if (!plan.ok()) return plan.status();
  InstancePlacement placement;
  placement.device = plan->device;
  const std::optional<DeviceKind> kind =
      plan->device.has_value() ? plan->device : context.server_device;
  const bool cuda = kind.has_value() ? *kind == DeviceKind::kCuda : context.visible_gpus > 0;
  const int unplaced = plan->instances > 0 ? static_cast<int>(plan->instances)
                                           : context.default_instances;
  if (!cuda || context.visible_gpus <= 0) {
    // One device, the backend's choice; a listed GPU must still exist on a CUDA model, so that
    // a config written for more GPUs than the host has fails here rather than runs elsewhere.
    if (cuda) {
      for (int i = 0; i < config.instance_group_size(); ++i) {
        const ModelInstanceGroup& group = config.instance_group(i);
        if (group.kind() == ModelInstanceGroup::KIND_CPU || group.gpus().empty()) continue;
        return Invalid(config.name(),
                       absl::StrCat(GroupLabel(group, i), " gpus: GPU ", group.gpus(0),
                                    " does not exist; ", VisibleText(context.visible_gpus)));
      }
    }
    placement.shares.push_back({-1, unplaced});
    return placement;
  }

  std::map<int, int> per_gpu;
  auto place = [&](int gpu, int instances) { per_gpu[gpu] += instances; };
  if (config.instance_group_size() == 0) {
    for (int gpu = 0; gpu < context.visible_gpus; ++gpu) place(gpu, context.default_instances);
  }
  for (int i = 0; i < config.instance_group_size(); ++i) {
    const ModelInstanceGroup& group = config.instance_group(i);
    const int count = std::max(group.count(), 1);
    if (group.gpus().empty()) {
      for (int gpu = 0; gpu < context.visible_gpus; ++gpu) place(gpu, count);
      continue;
    }
    for (int gpu : group.gpus()) {
      if (gpu < 0 || gpu >= context.visible_gpus) {
        return Invalid(config.name(), absl::StrCat(GroupLabel(group, i), " gpus: GPU ", gpu,
                                                   " does not exist; ",
                                                   VisibleText(context.visible_gpus)));
      }
      place(gpu, count);
    }
  }
  placement.device = DeviceKind::kCuda;
  for (const auto& [gpu, instances] : per_gpu) placement.shares.push_back({gpu, instances});
  if (placement.total_instances() > kMaxPlacedInstances) {
    return Invalid(config.name(),
                   absl::StrCat("instance_group: expected at most ", kMaxPlacedInstances,
                                " instances in all, got ", placement.total_instances(),
                                " placed on ", per_gpu.size(), " GPU(s)"));
  }
  return placement;
}

}  // namespace coalesce
