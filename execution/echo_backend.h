#ifndef COALESCE_EXECUTION_ECHO_BACKEND_H_
#define COALESCE_EXECUTION_ECHO_BACKEND_H_

#include <memory>

#include "absl/status/statusor.h"
#include "execution/backend.h"

namespace coalesce {

// A backend whose outputs are copies of its inputs: output i = input i. It has no model and
// costs one memcpy, so it measures everything around the model (RPC, queue, batcher, executor)
// and stands in for a model in tests.
//
// Thread-safe; holds no mutable state.
class EchoBackend : public Backend {
 public:
  // `metadata` must have as many outputs as inputs, each with the input's datatype and dims.
  static absl::StatusOr<std::unique_ptr<EchoBackend>> Create(ModelMetadata metadata);

  const ModelMetadata& metadata() const override { return metadata_; }
  absl::Status Execute(int worker, int64_t rows, absl::Span<const char* const> inputs,
                       absl::Span<char* const> outputs) override;
  // Copies each input to its output with the sizes the batch carries.
  absl::Status ExecuteVariable(int worker, int64_t rows, absl::Span<const char* const> inputs,
                               const VariableBatch& batch) override;
  std::string DeviceDescription() const override { return "host memcpy"; }

 private:
  explicit EchoBackend(ModelMetadata metadata) : metadata_(std::move(metadata)) {}

  const ModelMetadata metadata_;
};

}  // namespace coalesce

#endif  // COALESCE_EXECUTION_ECHO_BACKEND_H_
