#ifndef COALESCE_REPOSITORY_MODEL_CONFIG_H_
#define COALESCE_REPOSITORY_MODEL_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/data_type.h"
#include "engine/model_metadata.h"
#include "execution/device.h"
#include "proto/model_config.pb.h"
#include "serving/served_model.h"

namespace coalesce {

// Reading a model repository's `config.pbtxt` (the text format of inference.ModelConfig, a
// compatible subset of Triton's) and turning it into what coalesce serves: the model's metadata,
// its ServedModel options, the versions to load and the file to load them from.
//
// Every function here is pure and thread-safe: no I/O, no global state. The caller reads the
// file and lists the version folders. docs/model-repository.md describes the accepted subset.

// What a config.pbtxt may ask for. Past these bounds a config is refused before anything is
// allocated for it: one model's config must not be able to take the server down.
//  - kMaxConfigBytes: the file's size. Real configs are a few KiB; the bound keeps a huge file
//    out of memory and caps the work of parsing it.
//  - kMaxConfigNesting: messages and lists ('{', '<', '[') inside one another, known fields or
//    not. Protobuf's text parser recurses once per level, unknown fields included, so without a
//    bound a deeply nested file overflows the loading thread's stack. Configs written for
//    Triton nest a handful of levels.
//  - kMaxConfigWarnings: warnings kept per config; the rest are counted in one last line, so
//    that a file of many unknown fields cannot flood the log.
//  - kMaxBatchSize: max_batch_size. Each executor thread stages a full batch, and the latency
//    model profiles sizes up to it at load.
inline constexpr int64_t kMaxConfigBytes = int64_t{1} << 20;
inline constexpr int kMaxConfigNesting = 100;
inline constexpr int kMaxConfigWarnings = 20;
inline constexpr int64_t kMaxBatchSize = int64_t{1} << 20;

// Bounds that the server's flags set.
struct ModelConfigLimits {
  // The host staging one executor thread allocates up front for a full batch: max_batch_size x
  // the bytes of one sample of every input and output of fixed dims (variable ones grow with the
  // requests). A model has num_workers x batches_per_worker such threads.
  int64_t max_staging_bytes = int64_t{4} << 30;
};

// A validated config and what the parser had to say about it.
struct ParsedModelConfig {
  // Valid by ParseModelConfig's rules, with `name` filled in from the folder when the file left
  // it empty, and `platform`/`backend` filled in as "pytorch_libtorch"/"pytorch".
  inference::ModelConfig config;
  // One line per field that coalesce accepted but does not act on, or did not recognise; each
  // names the field (and, for unrecognised ones, the line). For logging at load. At most
  // kMaxConfigWarnings of them, then one line "and N more warning(s) not shown".
  std::vector<std::string> warnings;
};

// Parses and validates the text of a config.pbtxt. `model_dir_name` is the model's folder name
// in the repository: `name` may be empty (it becomes the folder name) or must equal it.
//
// Returns INVALID_ARGUMENT, with a message naming the field and the expected vs actual value, for:
//  - text longer than kMaxConfigBytes, or nested deeper than kMaxConfigNesting (checked before
//    the text is parsed);
//  - a syntax or type error ("line L:C: ...", 1-based), a field given twice, an unknown enum name;
//  - a platform other than "pytorch_libtorch" or a backend other than "pytorch" (both empty is
//    accepted as PyTorch with a warning);
//  - max_batch_size < 0 or > kMaxBatchSize; no input or no output; an empty or repeated tensor
//    name;
//  - max_batch_size x the bytes of one sample (inputs and outputs of fixed dims) above
//    `limits.max_staging_bytes`;
//  - a data type coalesce cannot serve (STRING, UINT16/32/64, INVALID, an unknown number);
//  - dims empty, or a dim that is neither >= 1 nor -1, or a fixed row too large to address;
//  - a reshape that breaks Triton's rules (a dim neither >= 1 nor -1; a different number of -1s
//    than dims; fixed dims before, between or after the -1s holding a different number of
//    elements than those of dims, which for fully fixed shapes is a different element count;
//    an empty reshape for max_batch_size 0), naming the tensor and both shapes;
//  - is_shape_tensor, batch_input/batch_output, sequence_batching, ensemble_scheduling,
//    a decoupled transaction policy, KIND_MODEL, a passive group, mixed CPU/GPU groups: fields
//    whose meaning coalesce cannot honour, so ignoring them would misread the model;
//  - dynamic_batching values out of range (preferred sizes outside 1..max_batch_size, a default
//    priority outside 1..priority_levels, microsecond values past int64);
//  - an instance_group count < 0, or a total above 256 instances;
//  - a version_policy `specific` with no versions or a negative one;
//  - a default_model_filename that is not a plain file name (a path, "." or "..");
//  - padding parameters (coalesce.pad_buckets, coalesce.pad.<input>, coalesce.cut.<output>,
//    coalesce.pad_max_ratio) that PaddingFromConfig() refuses (repository/padding_config.h).
// Fields recognised but not acted on (optimization other than cuda.graphs, model_warmup, gpus
// of a KIND_CPU group, label_filename, ...) and names the schema does not know are accepted with
// a warning each.
absl::StatusOr<ParsedModelConfig> ParseModelConfig(absl::string_view text,
                                                   absl::string_view model_dir_name,
                                                   const ModelConfigLimits& limits = {});

// The served model's metadata for `version`: name, version, platform "pytorch_libtorch",
// max_batch_size, inputs/outputs in config order with dtypes mapped and dims and reshape
// copied, and the padding its parameters declare (PaddingFromConfig()). A reshape is what the
// model sees (TensorSpec::reshape), as in Triton: clients see `dims` (metadata, validation,
// response shapes), the model takes each input in its reshape (after the batch dimension when
// max_batch_size > 0) and returns each output in its reshape.
// INVALID_ARGUMENT, naming the tensor, for a data type coalesce cannot serve.
absl::StatusOr<ModelMetadata> MetadataFromConfig(const inference::ModelConfig& config,
                                                 absl::string_view version);

// What a config changes about how a model is served.
struct ModelConfigOverrides {
  ServedModel::Options model;
  // CPU, CUDA (MPS on macOS) for KIND_CPU / KIND_GPU groups; unset (the server's --device)
  // with no instance_group or only KIND_AUTO groups.
  std::optional<DeviceKind> device;
  // optimization { cuda { graphs: true } }: CUDA graphs for this model (TorchBackend's
  // cuda_graphs) even where the server's --cuda_graphs is off (it is on by default). False
  // (proto3 cannot tell unset from false) keeps the server's setting, so it cannot turn them off
  // for one model.
  bool cuda_graphs = false;
};

// Applies a validated config on top of `defaults` (from the server's flags). A value the config
// leaves at zero (proto3's "unset") keeps the default; batching stays on for max_batch_size > 0
// with or without dynamic_batching (Triton would run such a model one request at a time).
//  - dynamic_batching.max_queue_delay_microseconds -> model.max_queue_delay
//  - dynamic_batching.preferred_batch_size -> model.preferred_batch_sizes (sorted, unique)
//  - dynamic_batching.priority_levels / default_priority_level -> model.scheduling
//  - default_queue_policy.default_timeout_microseconds -> model.scheduling.default_timeout
//  - default_queue_policy.max_queue_size -> model.max_queue_size
//  - instance_group: the sum of counts (0 counts as 1) -> model.num_workers; kinds -> device.
//    Which GPUs the instances go to, and how many on each, is PlaceInstances()'s
//    (repository/instance_placement.h).
//  - optimization.cuda.graphs -> cuda_graphs.
// INVALID_ARGUMENT for a config that ParseModelConfig would refuse in these fields.
absl::StatusOr<ModelConfigOverrides> ApplyModelConfig(const inference::ModelConfig& config,
                                                      const ServedModel::Options& defaults);

// Which of the version numbers present on disk to serve, by `policy` (an unset policy is
// Latest{1}; Latest{0} is Latest{1}). Returns them sorted ascending, without duplicates.
// NOT_FOUND when `available` is empty, or, naming them, when specific versions are missing;
// INVALID_ARGUMENT for a specific policy that lists no versions.
absl::StatusOr<std::vector<int64_t>> SelectVersions(const inference::ModelVersionPolicy& policy,
                                                    std::vector<int64_t> available);

// The model file inside a version folder: default_model_filename, or "model.pt".
std::string ModelFileName(const inference::ModelConfig& config);

// The config in protobuf text format (as a config.pbtxt would hold it), for the ModelConfig RPC
// and logs.
std::string ModelConfigToText(const inference::ModelConfig& config);

// TYPE_FP32 -> kFp32, for every type with a coalesce counterpart (including the UINT16/32/64
// that validation refuses); nullopt for TYPE_INVALID, TYPE_STRING and unknown numbers.
std::optional<DataType> DataTypeFromConfig(inference::DataType type);

// kFp32 -> TYPE_FP32. Total: every coalesce DataType has a config counterpart.
inference::DataType DataTypeToConfig(DataType type);

// Whether coalesce can serve tensors of `type`: BOOL, UINT8, INT8..INT64, FP16, BF16, FP32, FP64.
bool IsServableConfigDataType(inference::DataType type);

}  // namespace coalesce

#endif  // COALESCE_REPOSITORY_MODEL_CONFIG_H_
