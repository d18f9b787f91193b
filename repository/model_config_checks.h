#ifndef COALESCE_REPOSITORY_MODEL_CONFIG_CHECKS_H_
#define COALESCE_REPOSITORY_MODEL_CONFIG_CHECKS_H_

// The validation behind ParseModelConfig() (repository/model_config.h), one function per part of a
// config. Internal to model_config.cc; not an API. Each check returns INVALID_ARGUMENT naming
// the model, the field and the bad value, and appends a warning for each field it accepts but
// ignores. Pure and thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "execution/device.h"
#include "google/protobuf/message.h"
#include "proto/model_config.pb.h"

namespace coalesce {
namespace model_config_internal {

// INVALID_ARGUMENT "model 'NAME' config.pbtxt: MESSAGE".
absl::Status Invalid(absl::string_view model, absl::string_view message);
// "TYPE_FP32", or the number for a value the enum does not name.
std::string DataTypeLabel(inference::DataType type);
// The full name of the first string field (map keys included) anywhere in `message` that is not
// UTF-8; nullopt when all are.
std::optional<std::string> FindInvalidUtf8(const google::protobuf::Message& message);

// Platform and backend must both say PyTorch (either may be empty); fills in the other.
absl::Status CheckPlatform(inference::ModelConfig& config, std::vector<std::string>& warnings);
// Top-level fields that are ignored (a warning) or refused.
absl::Status CheckTopLevel(const inference::ModelConfig& config,
                           std::vector<std::string>& warnings);
// Inputs and outputs: names, data types, dims.
absl::Status CheckTensors(const inference::ModelConfig& config,
                          std::vector<std::string>& warnings);
absl::Status CheckDynamicBatching(const inference::ModelConfig& config,
                                  std::vector<std::string>& warnings);
// The staging an executor thread allocates for a full batch (max_batch_size, at least 1, x the
// bytes of one sample of every input and output of fixed dims) must be at most
// `max_staging_bytes`. Tensors CheckTensors() refuses are left out.
absl::Status CheckStaging(const inference::ModelConfig& config, int64_t max_staging_bytes);
// default_model_filename must be a plain file name.
absl::Status CheckFiles(const inference::ModelConfig& config);

// What the instance groups add up to.
struct InstancePlan {
  int64_t instances = 0;  // 0: no instance_group
  std::optional<DeviceKind> device;  // Unset: no kind named (the server's --device).
};
// Validates instance_group and adds it up; `warnings` may be null.
absl::StatusOr<InstancePlan> PlanInstances(const inference::ModelConfig& config,
                                           std::vector<std::string>* warnings);

}  // namespace model_config_internal
}  // namespace coalesce

#endif  // COALESCE_REPOSITORY_MODEL_CONFIG_CHECKS_H_
