// libFuzzer target: bytes -> ParseModelConfig (as the config.pbtxt of a folder "demo_mlp"), and on
// success MetadataFromConfig, ApplyModelConfig, SelectVersions and ModelConfigToText. None may
// crash or read out of bounds (ASan), and what an accepted config yields must hold:
//   - a refusal is INVALID_ARGUMENT; the input goes through the same entry point as the server's
//     (the size and nesting bounds of repository/model_config.h in force), so nesting deep enough to
//     overflow the parser's stack must be refused, not crash;
//   - max_batch_size is within 0..kMaxBatchSize, and a full batch's staging within the default
//     ModelConfigLimits;
//   - the config is named after its folder, has inputs and outputs, and its metadata has the same
//     tensors with every fixed row addressable without int64 overflow;
//   - the overrides are servable: workers 1..256, preferred sizes within 1..max_batch_size,
//     default priority within 1..priority_levels, a positive queue bound;
//   - selected versions are sorted, distinct and a subset of those present;
//   - the config serializes and parses back (every string is UTF-8), and printed as text it
//     parses back to the same config.
// A violation aborts, which libFuzzer reports as a crash with the input saved.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "repository/model_config.h"

namespace coalesce {
namespace {

constexpr absl::string_view kModelDir = "demo_mlp";

[[noreturn]] void Violation(const char* what) {
  std::fprintf(stderr, "model_config_fuzzer: %s\n", what);
  std::abort();
}

#define FUZZ_CHECK(condition)                 \
  do {                                        \
    if (!(condition)) Violation(#condition);  \
  } while (false)

// Map order is unspecified in plain serialization; deterministic bytes compare configs exactly
// (and, unlike field-by-field comparison, treat a NaN that round-trips as equal to itself).
std::string Bytes(const google::protobuf::Message& message) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return out;
}

void CheckTensors(const std::vector<TensorSpec>& specs, int expected) {
  FUZZ_CHECK(static_cast<int>(specs.size()) == expected);
  for (const TensorSpec& spec : specs) {
    FUZZ_CHECK(!spec.name.empty());
    FUZZ_CHECK(!spec.dims.empty());
    int64_t bytes = DataTypeSize(spec.dtype);
    for (int64_t dim : spec.dims) {
      FUZZ_CHECK(dim == -1 || dim >= 1);
      if (dim > 0) FUZZ_CHECK(!__builtin_mul_overflow(bytes, dim, &bytes));
    }
  }
}

// A full batch of every tensor of fixed dims fits the default staging limit.
void CheckStaging(const ModelMetadata& metadata) {
  int64_t sample_bytes = 0;
  for (const auto* specs : {&metadata.inputs, &metadata.outputs}) {
    for (const TensorSpec& spec : *specs) {
      if (!spec.HasVariableDims()) sample_bytes += spec.RowBytes();
    }
  }
  const int64_t rows = std::max<int64_t>(metadata.max_batch_size, 1);
  FUZZ_CHECK(sample_bytes <= ModelConfigLimits().max_staging_bytes / rows);
}

void CheckOverrides(const inference::ModelConfig& config, const ModelConfigOverrides& o) {
  const ServedModel::Options& m = o.model;
  FUZZ_CHECK(m.num_workers >= 1 && m.num_workers <= 256);
  FUZZ_CHECK(m.max_queue_size >= 1);
  for (int64_t size : m.preferred_batch_sizes) {
    FUZZ_CHECK(size >= 1 && size <= config.max_batch_size());
  }
  FUZZ_CHECK(m.scheduling.priority_levels >= 1);
  FUZZ_CHECK(m.scheduling.default_priority >= 1 &&
             m.scheduling.default_priority <= m.scheduling.priority_levels);
  FUZZ_CHECK(m.max_queue_delay >= absl::ZeroDuration());
  FUZZ_CHECK(m.scheduling.default_timeout > absl::ZeroDuration());
}

void CheckVersions(const inference::ModelVersionPolicy& policy, const uint8_t* data,
                   size_t size) {
  // Versions "on disk" drawn from the input's first bytes: varied, and sometimes none.
  std::vector<int64_t> available;
  for (size_t i = 0; i < size && i < 4; ++i) available.push_back(data[i] % 8);
  absl::StatusOr<std::vector<int64_t>> selected = SelectVersions(policy, available);
  if (!selected.ok()) {
    FUZZ_CHECK(selected.status().code() == absl::StatusCode::kNotFound ||
               selected.status().code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  FUZZ_CHECK(!selected->empty());
  for (size_t i = 0; i < selected->size(); ++i) {
    if (i > 0) FUZZ_CHECK((*selected)[i - 1] < (*selected)[i]);
    bool present = false;
    for (int64_t version : available) present = present || version == (*selected)[i];
    FUZZ_CHECK(present);
  }
}

}  // namespace
}  // namespace coalesce

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace coalesce;  // NOLINT: a fuzz entry point, outside the namespace by contract
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<ParsedModelConfig> parsed = ParseModelConfig(text, kModelDir);
  if (!parsed.ok()) {
    FUZZ_CHECK(parsed.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  const inference::ModelConfig& config = parsed->config;
  FUZZ_CHECK(config.name() == kModelDir);
  FUZZ_CHECK(config.platform() == "pytorch_libtorch");
  FUZZ_CHECK(config.max_batch_size() >= 0 && config.max_batch_size() <= kMaxBatchSize);
  FUZZ_CHECK(size <= static_cast<size_t>(kMaxConfigBytes));

  absl::StatusOr<ModelMetadata> metadata = MetadataFromConfig(config, "1");
  FUZZ_CHECK(metadata.ok());
  CheckTensors(metadata->inputs, config.input_size());
  CheckTensors(metadata->outputs, config.output_size());
  CheckStaging(*metadata);

  absl::StatusOr<ModelConfigOverrides> overrides =
      ApplyModelConfig(config, ServedModel::Options());
  FUZZ_CHECK(overrides.ok());
  CheckOverrides(config, *overrides);

  CheckVersions(config.version_policy(), data, size);
  FUZZ_CHECK(!ModelFileName(config).empty());

  inference::ModelConfig decoded;
  FUZZ_CHECK(decoded.ParseFromString(Bytes(config)));
  absl::StatusOr<ParsedModelConfig> again =
      ParseModelConfig(ModelConfigToText(config), kModelDir);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(Bytes(again->config) == Bytes(config));
  return 0;
}
