// libFuzzer target: bytes -> ModelInferRequest -> ValidateInferRequest, against every model of
// FuzzModels(). Validation must never crash or read out of bounds (ASan), and when it accepts a
// request, what it returns must be exactly what the executor will read:
//   - rows within 1..max_batch_size (1 for a model that does not batch),
//   - one view per model input, each exactly rows * row_bytes bytes long, lying entirely inside
//     the request's raw_input_contents (raw requests) or inside one of `owned_inputs` (typed),
//   - output indices valid and distinct.
// A violation aborts, which libFuzzer reports as a crash with the input saved.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz/fuzz_models.h"
#include "proto/inference.pb.h"
#include "server/request_validator.h"

namespace coalesce {
namespace {

[[noreturn]] void Violation(const ModelMetadata& model, const char* what) {
  std::fprintf(stderr, "validate_request_fuzzer: model '%s': %s\n", model.name.c_str(), what);
  std::abort();
}

#define FUZZ_CHECK(model, condition) \
  do {                               \
    if (!(condition)) Violation(model, #condition); \
  } while (false)

bool Within(absl::string_view view, absl::string_view storage) {
  const char* begin = storage.data();
  const char* end = begin + storage.size();
  return view.data() >= begin && view.data() + view.size() <= end;
}

// Reads every byte of `view` so that ASan checks the whole range, not just its ends.
uint8_t Touch(absl::string_view view) {
  uint8_t sum = 0;
  for (char c : view) sum = static_cast<uint8_t>(sum + static_cast<uint8_t>(c));
  return sum;
}

void CheckAccepted(const ModelMetadata& model, const inference::ModelInferRequest& request,
                   const ValidatedRequest& validated) {
  if (model.max_batch_size > 0) {
    FUZZ_CHECK(model, validated.rows >= 1 && validated.rows <= model.max_batch_size);
  } else {
    FUZZ_CHECK(model, validated.rows == 1);
  }
  FUZZ_CHECK(model, validated.inputs.size() == model.inputs.size());
  FUZZ_CHECK(model, validated.input_shapes.size() == model.inputs.size());
  const bool raw = request.raw_input_contents_size() > 0;
  if (raw) FUZZ_CHECK(model, validated.owned_inputs.empty());
  for (size_t i = 0; i < model.inputs.size(); ++i) {
    absl::string_view view = validated.inputs[i];
    FUZZ_CHECK(model, static_cast<int64_t>(view.size()) ==
                          validated.rows * model.inputs[i].RowBytes());
    if (model.max_batch_size > 0) {
      FUZZ_CHECK(model, !validated.input_shapes[i].empty() &&
                            validated.input_shapes[i][0] == validated.rows);
    }
    bool inside = false;
    if (raw) {
      for (const std::string& bytes : request.raw_input_contents()) {
        inside = inside || Within(view, bytes);
      }
    } else {
      for (const auto& owned : validated.owned_inputs) {
        inside = inside || (owned != nullptr && Within(view, *owned));
      }
    }
    FUZZ_CHECK(model, inside);
    volatile uint8_t sink = Touch(view);
    (void)sink;
  }
  std::vector<bool> seen(model.outputs.size(), false);
  FUZZ_CHECK(model, !validated.outputs.empty());
  for (int o : validated.outputs) {
    FUZZ_CHECK(model, o >= 0 && static_cast<size_t>(o) < model.outputs.size());
    FUZZ_CHECK(model, !seen[o]);
    seen[o] = true;
  }
}

}  // namespace
}  // namespace coalesce

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<coalesce::ModelMetadata>* const models =
      new std::vector<coalesce::ModelMetadata>(coalesce::FuzzModels());
  inference::ModelInferRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  for (const coalesce::ModelMetadata& model : *models) {
    absl::StatusOr<coalesce::ValidatedRequest> validated =
        coalesce::ValidateInferRequest(model, request);
    if (validated.ok()) {
      coalesce::CheckAccepted(model, request, *validated);
    } else if (validated.status().code() != absl::StatusCode::kInvalidArgument) {
      coalesce::Violation(model, "rejected with a code other than INVALID_ARGUMENT");
    }
  }
  return 0;
}
