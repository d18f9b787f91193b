#ifndef COALESCE_SERVER_TENSOR_PARAMETERS_H_
#define COALESCE_SERVER_TENSOR_PARAMETERS_H_

#include <string>

#include "absl/status/status.h"
#include "proto/inference.pb.h"

namespace coalesce {

// Checks the parameters a ModelInferRequest attaches to its input tensors and requested output
// tensors (Triton's `inputs[].parameters` and `outputs[].parameters`), so that none that would
// change what the client receives is ignored silently.
//
//   accepted, no effect on gRPC: `binary_data_size` (input) and `binary_data` (output), hints of
//       Triton's HTTP binary tensor extension; gRPC always carries raw bytes.
//   left to the shared-memory path: `shared_memory_region`, `shared_memory_byte_size`,
//       `shared_memory_offset` (input and output).
//   refused: `classification` (output), Triton's classification extension, which replaces the
//       output with BYTES "score:index:label" strings; and every other name, which coalesce
//       would otherwise ignore.
//
// Returns INVALID_ARGUMENT naming the tensor, the model and the parameter. `model` is the name
// the messages use. Pure and thread-safe.
absl::Status CheckTensorParameters(const std::string& model,
                                   const inference::ModelInferRequest& request);

}  // namespace coalesce

#endif  // COALESCE_SERVER_TENSOR_PARAMETERS_H_
