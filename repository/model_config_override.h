#ifndef COALESCE_REPOSITORY_MODEL_CONFIG_OVERRIDE_H_
#define COALESCE_REPOSITORY_MODEL_CONFIG_OVERRIDE_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/model_config.pb.h"

namespace coalesce {

// The `config` parameter of a model load (Triton's model_repository extension): a JSON
// ModelConfig, in protobuf's JSON mapping ("max_batch_size": 16, "input": [{"name": "X",
// "data_type": "TYPE_FP32", "dims": [2]}]; camelCase names are accepted too).
//
// Applied over `base` (the model's config.pbtxt, parsed) field by field: every top-level field
// the JSON names replaces the base's field whole (a named repeated field such as `input`
// replaces the whole list, a named message such as `dynamic_batching` the whole message); the
// fields it does not name keep the base's values. So '{"max_batch_size": 16}' changes the batch
// size of a repository model and nothing else. With no base (files given with the load, or a
// model with no config on disk), the JSON is the whole config.
//
// The result is not validated here; the caller runs it through ParseModelConfig's checks.
// INVALID_ARGUMENT, with protobuf's description (which names the field), for text that is not
// JSON, a field ModelConfig does not have, or a value of the wrong type. Pure; thread-safe.
absl::StatusOr<inference::ModelConfig> OverrideModelConfig(absl::string_view json,
                                                           const inference::ModelConfig* base);

}  // namespace coalesce

#endif  // COALESCE_REPOSITORY_MODEL_CONFIG_OVERRIDE_H_
