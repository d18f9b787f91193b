#ifndef COALESCE_TESTS_TORCHSCRIPT_MODELS_H_
#define COALESCE_TESTS_TORCHSCRIPT_MODELS_H_

// No Torch (and no protobuf) here: tests that build repositories include this header only.

#include <string>

#include "absl/status/status.h"

namespace coalesce {

// Saves a TorchScript module with no parameters whose forward() is `forward_source` (Python
// source of a `def forward(self, ...)`, TorchScript dialect) to `path`.
absl::Status SaveTorchScript(const std::string& path, const std::string& forward_source);

}  // namespace coalesce

#endif  // COALESCE_TESTS_TORCHSCRIPT_MODELS_H_
