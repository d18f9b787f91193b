#ifndef COALESCE_CLIENT_REQUEST_BUILDER_H_
#define COALESCE_CLIENT_REQUEST_BUILDER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/length_range.h"
#include "proto/inference.pb.h"

namespace coalesce {

// What BuildInferRequest() should put in the request besides the model's inputs.
struct RequestSpec {
  std::string model_name;
  // Empty lets the server choose the version.
  std::string model_version;
  // Samples per request: the size given to each input's first -1 dimension. Must be >= 1; an
  // input with no -1 dimension accepts only 1.
  int64_t batch = 1;
  // The size given to every later -1 dimension (a token input's length, say). Must be >= 1.
  int64_t variable_dim = 1;
  // Seed of the input values; equal seeds give byte-identical requests.
  uint64_t seed = 1;
};

// Builds a ModelInferRequest that carries one tensor per input of `metadata`, in
// `raw_input_contents`. Each input's first -1 dimension becomes `spec.batch`; later -1
// dimensions become `spec.variable_dim` (nothing in the metadata tells how large they could be). FP32, FP16 and BF16 values are
// uniform in [-1, 1); FP64 likewise; integer types get 0 or 1; BOOL gets false or true.
//
// Returns InvalidArgument naming the input when the metadata has no inputs, an input's datatype
// cannot be generated (BYTES or unknown), or `spec.batch` > 1 meets an input with a fixed shape.
absl::StatusOr<inference::ModelInferRequest> BuildInferRequest(
    const inference::ModelMetadataResponse& metadata, const RequestSpec& spec);

// One request per length of `lengths`, shortest first: BuildInferRequest() with
// `spec.variable_dim` set to each length in turn (and the same seed). Its errors, or
// InvalidArgument for a range of lengths below 1 or with min > max.
absl::StatusOr<std::vector<inference::ModelInferRequest>> BuildInferRequests(
    const inference::ModelMetadataResponse& metadata, const RequestSpec& spec,
    const LengthRange& lengths);

// Bytes per element of `datatype`, or 0 when it has no fixed size (BYTES) or is unknown.
int DatatypeSize(const std::string& datatype);

// IEEE 754 binary16 bits of `value`, rounded to nearest even (values beyond the range become
// infinity, NaN stays NaN).
uint16_t FloatToHalfBits(float value);

}  // namespace coalesce

#endif  // COALESCE_CLIENT_REQUEST_BUILDER_H_
