#include "execution/echo_backend.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace coalesce {

absl::StatusOr<std::unique_ptr<EchoBackend>> EchoBackend::Create(ModelMetadata metadata) {
  if (metadata.inputs.size() != metadata.outputs.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "echo model '", metadata.name, "' needs one output per input, got ",
        metadata.inputs.size(), " inputs and ", metadata.outputs.size(), " outputs"));
  }
  for (size_t i = 0; i < metadata.inputs.size(); ++i) {
    const TensorSpec& in = metadata.inputs[i];
    const TensorSpec& out = metadata.outputs[i];
    if (in.dtype != out.dtype || in.dims != out.dims) {
      return absl::InvalidArgumentError(absl::StrCat("echo model '", metadata.name, "': output '",
                                                     out.name, "' must match input '", in.name,
                                                     "' in datatype and dims"));
    }
  }
  return std::unique_ptr<EchoBackend>(new EchoBackend(std::move(metadata)));
}

absl::Status EchoBackend::Execute(int worker, int64_t rows, absl::Span<const char* const> inputs,
                                  absl::Span<char* const> outputs) {
  for (size_t i = 0; i < outputs.size(); ++i) {
    std::memcpy(outputs[i], inputs[i], rows * metadata_.inputs[i].RowBytes());
  }
  return absl::OkStatus();
}

}  // namespace coalesce

namespace coalesce {

absl::Status EchoBackend::ExecuteVariable(int worker, int64_t rows,
                                          absl::Span<const char* const> inputs,
                                          const VariableBatch& batch) {
  for (size_t i = 0; i < inputs.size(); ++i) {
    int64_t bytes =
        rows * DimsElements(batch.input_dims[i]) * DataTypeSize(metadata_.inputs[i].dtype);
    std::memcpy(batch.output_buffer(static_cast<int>(i), bytes), inputs[i], bytes);
  }
  return absl::OkStatus();
}

}  // namespace coalesce
