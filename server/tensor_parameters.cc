#include "server/tensor_parameters.h"

#include "absl/strings/str_cat.h"
#include "engine/client_text.h"

namespace coalesce {
namespace {

bool IsSharedMemoryParameter(const std::string& name) {
  return name == "shared_memory_region" || name == "shared_memory_byte_size" ||
         name == "shared_memory_offset";
}

absl::Status UnknownParameter(absl::string_view kind, const std::string& tensor,
                              const std::string& model, const std::string& parameter,
                              absl::string_view accepted) {
  return absl::InvalidArgumentError(
      absl::StrCat(kind, " '", ClientText(tensor), "' of model '", model, "': unknown parameter '",
                   ClientText(parameter),
                   "'; coalesce would ignore it, so it refuses it (parameters it takes on ", kind,
                   "s: ", accepted, ")"));
}

}  // namespace

absl::Status CheckTensorParameters(const std::string& model,
                                   const inference::ModelInferRequest& request) {
  for (const auto& input : request.inputs()) {
    for (const auto& [name, value] : input.parameters()) {
      if (name == "binary_data_size" || IsSharedMemoryParameter(name)) continue;
      return UnknownParameter("input", input.name(), model, name,
                              "binary_data_size, shared_memory_region, shared_memory_byte_size, "
                              "shared_memory_offset");
    }
  }
  for (const auto& output : request.outputs()) {
    for (const auto& [name, value] : output.parameters()) {
      if (name == "binary_data" || IsSharedMemoryParameter(name)) continue;
      if (name == "classification") {
        return absl::InvalidArgumentError(absl::StrCat(
            "output '", ClientText(output.name()), "' of model '", model,
            "': parameter 'classification' asks for Triton's classification extension (the top "
            "classes as BYTES \"score:index:label\" strings), which coalesce does not support; "
            "request the output without it to receive the scores themselves"));
      }
      return UnknownParameter("output", output.name(), model, name,
                              "binary_data, shared_memory_region, shared_memory_byte_size, "
                              "shared_memory_offset");
    }
  }
  return absl::OkStatus();
}

}  // namespace coalesce
