#include "tests/torchscript_models.h"

#include <torch/script.h>

#include "absl/strings/str_cat.h"

namespace coalesce {

absl::Status SaveTorchScript(const std::string& path, const std::string& forward_source) {
  try {
    torch::jit::Module module("test_model");
    module.define(forward_source);
    module.save(path);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("cannot save TorchScript to ", path, ": ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace coalesce
