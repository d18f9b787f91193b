#ifndef COALESCE_SERVER_LOAD_PARAMETERS_H_
#define COALESCE_SERVER_LOAD_PARAMETERS_H_

#include <string>

#include "absl/status/statusor.h"
#include "google/protobuf/map.h"
#include "proto/inference.pb.h"
#include "repository/model_repository.h"

namespace coalesce {

// A RepositoryModelLoad request's parameters as the repository takes them, with Triton's names
// and types: "config" (string_param, a JSON ModelConfig) and "file:<path>" (bytes_param, the
// file's contents). An error, in Triton's words (which the server puts after Triton's "failed to
// poll" text, LoadPollFailure()), for a parameter of another name
// ("Unrecognized load parameter 'NAME' with type 'TYPE'") or of the wrong type ("Config parameter
// 'config' must have string type for its value", "File parameter 'file:...' must have bytes type
// for its value"). Paths are checked later, by OverrideModelFolder. Pure; thread-safe.
absl::StatusOr<ModelRepository::LoadOverrides> LoadOverridesFromParameters(
    const google::protobuf::Map<std::string, inference::ModelRepositoryParameter>& parameters);

}  // namespace coalesce

#endif  // COALESCE_SERVER_LOAD_PARAMETERS_H_
