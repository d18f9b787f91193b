#ifndef COALESCE_SERVER_REQUEST_VALIDATOR_H_
#define COALESCE_SERVER_REQUEST_VALIDATOR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <optional>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "engine/model_metadata.h"
#include "proto/inference.pb.h"

namespace coalesce {

// A ModelInferRequest checked against its model and laid out the way the executor reads it.
struct ValidatedRequest {
  // Samples in the request (the batch dimension; 1 for a model that does not batch).
  int64_t rows = 0;
  // Bytes of each model input, in the model's input order. Views into the request message's
  // raw_input_contents, or into `owned_inputs` for inputs sent as typed contents.
  std::vector<absl::string_view> inputs;
  std::vector<std::unique_ptr<std::string>> owned_inputs;
  // Indices into the model's outputs, in the order the response lists them: the requested
  // outputs in request order, or every output in model order when none was named.
  std::vector<int> outputs;
  // Shape of the batch dimension plus each input's dims, in model input order, as sent.
  std::vector<std::vector<int64_t>> input_shapes;
};

// Bytes of a request input that travel outside the message (in shared memory, say), found by
// the server layer before validation.
struct ExternalInput {
  absl::string_view bytes;
  // Where the bytes are, for error messages: "shared memory region 'r' (offset 0)".
  std::string source;
};

// Checks `request` against `metadata`: every input present once and known, datatypes, shapes
// (rank, fixed dims, batch dimension equal across inputs and within 1..max_batch_size), byte
// sizes of raw contents or element counts of typed contents, requested output names, and the
// tensors' parameters (CheckTensorParameters()).
//
// Returns INVALID_ARGUMENT with a message that names the tensor and the expected and actual
// value. The result's views point into `request`, which must outlive it. Never reads out of
// bounds, whatever the message holds; pure and thread-safe.
absl::StatusOr<ValidatedRequest> ValidateInferRequest(const ModelMetadata& metadata,
                                                      const inference::ModelInferRequest& request);

// As above, for a request some of whose inputs travel outside the message: `external` is empty
// or has one entry per request input (request.inputs(i)), set for each input whose bytes are
// elsewhere. Such an input has no raw_input_contents entry: raw_input_contents holds the other
// inputs' bytes, in request order (as Triton reads it). Its bytes pass the same size check as
// raw contents, and the result's views point into them, so they must outlive the result too.
absl::StatusOr<ValidatedRequest> ValidateInferRequest(
    const ModelMetadata& metadata, const inference::ModelInferRequest& request,
    absl::Span<const std::optional<ExternalInput>> external);

// As above, with the request's raw_input_contents given apart from the message as
// `raw_contents` (in its place: the message's own are not read), so that they may be views into
// the bytes gRPC received (server/wire_messages.h). The result's views point into them.
absl::StatusOr<ValidatedRequest> ValidateInferRequest(
    const ModelMetadata& metadata, const inference::ModelInferRequest& request,
    absl::Span<const absl::string_view> raw_contents,
    absl::Span<const std::optional<ExternalInput>> external);

}  // namespace coalesce

#endif  // COALESCE_SERVER_REQUEST_VALIDATOR_H_
