#include "server/load_parameters.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/client_text.h"

namespace coalesce {
namespace {

constexpr char kFilePrefix[] = "file:";

const char* TypeName(const inference::ModelRepositoryParameter& parameter) {
  switch (parameter.parameter_choice_case()) {
    case inference::ModelRepositoryParameter::kBoolParam:
      return "BOOL";
    case inference::ModelRepositoryParameter::kInt64Param:
      return "INT";
    case inference::ModelRepositoryParameter::kStringParam:
      return "STRING";
    case inference::ModelRepositoryParameter::kBytesParam:
      return "BYTES";
    default:
      return "NONE";
  }
}

}  // namespace

absl::StatusOr<ModelRepository::LoadOverrides> LoadOverridesFromParameters(
    const google::protobuf::Map<std::string, inference::ModelRepositoryParameter>& parameters) {
  ModelRepository::LoadOverrides overrides;
  for (const auto& [name, parameter] : parameters) {
    const auto choice = parameter.parameter_choice_case();
    if (name == "config") {
      if (choice != inference::ModelRepositoryParameter::kStringParam) {
        return absl::InvalidArgumentError(
            absl::StrCat("Config parameter 'config' must have string type for its value, got ",
                         TypeName(parameter)));
      }
      overrides.config_json = parameter.string_param();
    } else if (absl::StartsWith(name, kFilePrefix)) {
      if (choice != inference::ModelRepositoryParameter::kBytesParam) {
        return absl::InvalidArgumentError(absl::StrCat("File parameter '", ClientText(name),
                                                       "' must have bytes type for its value, got ",
                                                       TypeName(parameter)));
      }
      overrides.files.emplace_back(name.substr(sizeof(kFilePrefix) - 1), parameter.bytes_param());
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("Unrecognized load parameter '", ClientText(name), "' with type '",
                       TypeName(parameter), "' (coalesce takes 'config' and 'file:<path>')"));
    }
  }
  // The map's order is unspecified; a fixed order makes errors and writes reproducible.
  std::sort(overrides.files.begin(), overrides.files.end());
  return overrides;
}

}  // namespace coalesce
