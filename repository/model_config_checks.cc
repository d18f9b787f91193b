// The checks ParseModelConfig() runs on a parsed config, split from model_config.cc so that each
// file reads on its own: what a config may say, and how text becomes a config.
#include "repository/model_config_checks.h"

#include <algorithm>
#include <limits>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"
#include "repository/model_config.h"

namespace coalesce {
namespace model_config_internal {

using inference::ModelConfig;
using inference::ModelInstanceGroup;

namespace {

// More executor threads than this for one model is a typo, not a plan.
constexpr int64_t kMaxInstances = 256;
// A fixed row (one sample of one tensor) larger than 1 TiB cannot be served; the bound also
// keeps TensorSpec::RowElements() far from int64 overflow.
constexpr int64_t kMaxRowBytes = int64_t{1} << 40;
constexpr uint64_t kMaxMicroseconds = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

// Top-level fields that coalesce parses but does not act on, and why: set in a config, each
// produces a warning. Ignoring them changes performance or reporting, never results.
struct IgnoredField {
  const char* name;
  const char* reason;
};
constexpr IgnoredField kIgnoredFields[] = {
    {"runtime", "coalesce always runs the model with its LibTorch backend"},
    {"cc_model_filenames", "default_model_filename is loaded on every device"},
    {"metric_tags", "metrics carry only the `model` label"},
    {"model_warmup", "coalesce profiles every batch size at load instead"},
    {"model_operations", "custom-op libraries are not loaded"},
    {"model_repository_agents", "repository agents are not run"},
    {"response_cache", "coalesce has no response cache"},
    {"model_metrics", "histogram buckets are fixed"},
};

// Top-level fields whose meaning coalesce cannot honour: serving the model while ignoring them
// would compute something else, so a config that sets one is refused.
constexpr IgnoredField kRefusedFields[] = {
    {"batch_input", "coalesce does not create batch inputs"},
    {"batch_output", "coalesce does not scatter batch outputs"},
    {"sequence_batching", "coalesce serves stateless models only"},
    {"ensemble_scheduling", "coalesce serves single TorchScript models, not ensembles"},
};

// The element counts of the runs of fixed dims that the -1s of `shape` separate: [2, 4, -1, 6]
// gives {8, 6}, [] gives {1}. A count past kMaxRowBytes is held at kMaxRowBytes + 1 (no
// overflow; such a run never matches a valid dims' run).
std::vector<int64_t> FixedRuns(const google::protobuf::RepeatedField<int64_t>& shape) {
  std::vector<int64_t> runs = {1};
  for (int64_t dim : shape) {
    if (dim == -1) {
      runs.push_back(1);
    } else if (dim > 0) {
      runs.back() = dim > kMaxRowBytes / runs.back() ? kMaxRowBytes + 1 : runs.back() * dim;
    }
  }
  return runs;
}

}  // namespace

// Whether `text` is structurally valid UTF-8 (RFC 3629: shortest form, no surrogates, at most
// U+10FFFF). Proto3 strings must be, or the config cannot be sent to clients (the ModelConfig
// and ModelMetadata RPCs), and text format's escapes ("\377") can produce any byte.
static bool IsValidUtf8(absl::string_view text) {
  static constexpr uint32_t kShortest[] = {0, 0x80, 0x800, 0x10000};
  size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    size_t extra = 0;
    uint32_t code = 0;
    if (lead < 0x80) {
      ++i;
      continue;
    } else if ((lead & 0xE0) == 0xC0) {
      extra = 1, code = lead & 0x1F;
    } else if ((lead & 0xF0) == 0xE0) {
      extra = 2, code = lead & 0x0F;
    } else if ((lead & 0xF8) == 0xF0) {
      extra = 3, code = lead & 0x07;
    } else {
      return false;
    }
    if (text.size() - i <= extra) return false;
    for (size_t k = 1; k <= extra; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code = (code << 6) | (next & 0x3F);
    }
    if (code < kShortest[extra] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
      return false;
    }
    i += extra + 1;
  }
  return true;
}

// The full name of the first string field (map keys included) anywhere in `message` that is not
// UTF-8; nullopt when all are.
std::optional<std::string> FindInvalidUtf8(const google::protobuf::Message& message) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection* reflection = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const FieldDescriptor* field : fields) {
    const int count = field->is_repeated() ? reflection->FieldSize(message, field) : 1;
    for (int i = 0; i < count; ++i) {
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
        std::string scratch;
        const std::string& value =
            field->is_repeated()
                ? reflection->GetRepeatedStringReference(message, field, i, &scratch)
                : reflection->GetStringReference(message, field, &scratch);
        if (!IsValidUtf8(value)) return field->full_name();
      } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        std::optional<std::string> found =
            FindInvalidUtf8(field->is_repeated() ? reflection->GetRepeatedMessage(message, field, i)
                                                 : reflection->GetMessage(message, field));
        if (found.has_value()) return found;
      }
    }
  }
  return std::nullopt;
}

absl::Status Invalid(absl::string_view model, absl::string_view message) {
  return absl::InvalidArgumentError(
      absl::StrCat("config.pbtxt of model '", model, "': ", message));
}

std::string DataTypeLabel(inference::DataType type) {
  const std::string& name = inference::DataType_Name(type);
  return name.empty() ? absl::StrCat("data type number ", static_cast<int>(type)) : name;
}

// Platform and backend must both say PyTorch (either may be empty); fills in the other.
absl::Status CheckPlatform(ModelConfig& config, std::vector<std::string>& warnings) {
  constexpr absl::string_view kPlatform = "pytorch_libtorch";
  constexpr absl::string_view kBackend = "pytorch";
  if (!config.platform().empty() && config.platform() != kPlatform) {
    return Invalid(config.name(), absl::StrCat("platform: expected \"", kPlatform, "\", got \"",
                                               config.platform(), "\""));
  }
  if (!config.backend().empty() && config.backend() != kBackend) {
    return Invalid(config.name(), absl::StrCat("backend: expected \"", kBackend, "\", got \"",
                                               config.backend(), "\""));
  }
  if (config.platform().empty() && config.backend().empty()) {
    warnings.push_back(
        "neither platform nor backend is set; serving the model as platform "
        "\"pytorch_libtorch\" (TorchScript)");
  }
  config.set_platform(std::string(kPlatform));
  config.set_backend(std::string(kBackend));
  return absl::OkStatus();
}

static absl::Status CheckTensor(const ModelConfig& config, absl::string_view kind, int index,
                         const std::string& name, inference::DataType type,
                         const google::protobuf::RepeatedField<int64_t>& dims) {
  if (name.empty()) {
    return Invalid(config.name(), absl::StrCat(kind, " #", index, ": name is empty"));
  }
  const std::string label = absl::StrCat(kind, " '", name, "'");
  if (!IsServableConfigDataType(type)) {
    return Invalid(config.name(),
                   absl::StrCat(label, " data_type: expected one of TYPE_BOOL, TYPE_UINT8, "
                                "TYPE_INT8, TYPE_INT16, TYPE_INT32, TYPE_INT64, TYPE_FP16, "
                                "TYPE_BF16, TYPE_FP32, TYPE_FP64, got ",
                                DataTypeLabel(type)));
  }
  if (dims.empty()) {
    return Invalid(config.name(), absl::StrCat(label, " dims: expected at least one dim (a "
                                               "scalar per sample is dims: [ 1 ]), got []"));
  }
  int64_t row_bytes = DataTypeSize(*DataTypeFromConfig(type));
  for (int64_t dim : dims) {
    if (dim == -1) continue;
    if (dim < 1) {
      return Invalid(config.name(),
                     absl::StrCat(label, " dims: expected each dim >= 1 or -1 (variable), got ",
                                  dim, " in ", ShapeToString(dims)));
    }
    if (dim > kMaxRowBytes / row_bytes) {
      return Invalid(config.name(),
                     absl::StrCat(label, " dims ", ShapeToString(dims),
                                  ": a sample would exceed ", kMaxRowBytes, " bytes"));
    }
    row_bytes *= dim;
  }
  return absl::OkStatus();
}

// Triton's rules for `reshape`: each dim >= 1 or -1; as many -1s as `dims` has, with equal
// element counts between them (so the model's tensor holds the request's elements whatever
// sizes the request chooses); empty only for a batching model whose dims hold one element.
static absl::Status CheckReshape(const ModelConfig& config, const std::string& label,
                                 const google::protobuf::RepeatedField<int64_t>& dims,
                                 const inference::ModelTensorReshape& reshape) {
  const auto& shape = reshape.shape();
  if (shape.empty() && config.max_batch_size() == 0) {
    return Invalid(config.name(),
                   absl::StrCat(label, " reshape: expected at least one dim for a model with "
                                "max_batch_size 0 (an empty reshape is a scalar tensor), got []"));
  }
  for (int64_t dim : shape) {
    if (dim != -1 && dim < 1) {
      return Invalid(config.name(),
                     absl::StrCat(label, " reshape: expected each dim >= 1 or -1 (variable), got ",
                                  dim, " in ", ShapeToString(shape)));
    }
  }
  const std::vector<int64_t> dims_runs = FixedRuns(dims);
  const std::vector<int64_t> reshape_runs = FixedRuns(shape);
  if (dims_runs.size() != reshape_runs.size()) {
    return Invalid(config.name(),
                   absl::StrCat(label, " reshape ", ShapeToString(shape), ": expected as many "
                                "variable (-1) dims as dims ", ShapeToString(dims), " (",
                                dims_runs.size() - 1, "), got ", reshape_runs.size() - 1));
  }
  if (dims_runs != reshape_runs) {
    if (dims_runs.size() == 1) {
      return Invalid(config.name(),
                     absl::StrCat(label, " reshape ", ShapeToString(shape), ": expected ",
                                  dims_runs[0], " elements, as dims ", ShapeToString(dims),
                                  " hold, got ", reshape_runs[0]));
    }
    return Invalid(config.name(),
                   absl::StrCat(label, " reshape ", ShapeToString(shape), ": expected the "
                                "fixed dims before, between and after its -1s to hold as many "
                                "elements as those of dims ", ShapeToString(dims), " (",
                                absl::StrJoin(dims_runs, ", "), "), got ",
                                absl::StrJoin(reshape_runs, ", ")));
  }
  return absl::OkStatus();
}

absl::Status CheckTensors(const ModelConfig& config, std::vector<std::string>& warnings) {
  if (config.input().empty()) {
    return Invalid(config.name(), "input: expected at least one input, got none");
  }
  if (config.output().empty()) {
    return Invalid(config.name(), "output: expected at least one output, got none");
  }
  std::set<std::string> names;
  for (int i = 0; i < config.input_size(); ++i) {
    const inference::ModelInput& in = config.input(i);
    absl::Status status =
        CheckTensor(config, "input", i, in.name(), in.data_type(), in.dims());
    if (!status.ok()) return status;
    const std::string label = absl::StrCat("input '", in.name(), "'");
    if (!names.insert(in.name()).second) {
      return Invalid(config.name(), absl::StrCat(label, " is declared twice"));
    }
    if (in.is_shape_tensor()) {
      return Invalid(config.name(),
                     absl::StrCat(label, " is_shape_tensor: not supported; coalesce passes "
                                  "every input to the model as a tensor of its dims"));
    }
    if (in.has_reshape()) {
      if (absl::Status s = CheckReshape(config, label, in.dims(), in.reshape()); !s.ok()) {
        return s;
      }
    }
    if (in.format() != inference::ModelInput::FORMAT_NONE) {
      warnings.push_back(absl::StrCat(label, " format: ",
                                      inference::ModelInput::Format_Name(in.format()),
                                      " is informational and ignored"));
    }
    if (in.allow_ragged_batch()) {
      warnings.push_back(absl::StrCat(
          label, " allow_ragged_batch: ignored; requests are batched only with equal shapes"));
    }
    if (in.optional()) {
      warnings.push_back(
          absl::StrCat(label, " optional: ignored; every request must carry every input"));
    }
    if (in.is_non_linear_format_io()) {
      warnings.push_back(absl::StrCat(label, " is_non_linear_format_io: ignored (TensorRT)"));
    }
  }
  names.clear();
  for (int i = 0; i < config.output_size(); ++i) {
    const inference::ModelOutput& out = config.output(i);
    absl::Status status =
        CheckTensor(config, "output", i, out.name(), out.data_type(), out.dims());
    if (!status.ok()) return status;
    const std::string label = absl::StrCat("output '", out.name(), "'");
    if (!names.insert(out.name()).second) {
      return Invalid(config.name(), absl::StrCat(label, " is declared twice"));
    }
    if (out.is_shape_tensor()) {
      return Invalid(config.name(),
                     absl::StrCat(label, " is_shape_tensor: not supported; coalesce returns "
                                  "every output as a tensor of its dims"));
    }
    if (out.has_reshape()) {
      if (absl::Status s = CheckReshape(config, label, out.dims(), out.reshape()); !s.ok()) {
        return s;
      }
    }
    if (!out.label_filename().empty()) {
      warnings.push_back(absl::StrCat(label, " label_filename: ignored; coalesce does not "
                                             "serve the classification extension"));
    }
    if (out.is_non_linear_format_io()) {
      warnings.push_back(absl::StrCat(label, " is_non_linear_format_io: ignored (TensorRT)"));
    }
  }
  return absl::OkStatus();
}

// The bytes of one sample of a tensor of fixed dims; 0 for variable dims or a tensor that
// CheckTensor() refuses. At most kMaxRowBytes + 1.
static int64_t FixedSampleBytes(inference::DataType type,
                                const google::protobuf::RepeatedField<int64_t>& dims) {
  if (!IsServableConfigDataType(type) || dims.empty()) return 0;
  int64_t bytes = DataTypeSize(*DataTypeFromConfig(type));
  for (int64_t dim : dims) {
    if (dim < 1) return 0;
    if (dim > kMaxRowBytes / bytes) return kMaxRowBytes + 1;
    bytes *= dim;
  }
  return bytes;
}

absl::Status CheckStaging(const ModelConfig& config, int64_t max_staging_bytes) {
  // Each term is at most kMaxRowBytes + 1 (2^40 + 1), and a config under kMaxConfigBytes has
  // fewer than 2^20 tensors: the sum stays far from overflow.
  int64_t sample_bytes = 0;
  for (const inference::ModelInput& in : config.input()) {
    sample_bytes += FixedSampleBytes(in.data_type(), in.dims());
  }
  for (const inference::ModelOutput& out : config.output()) {
    sample_bytes += FixedSampleBytes(out.data_type(), out.dims());
  }
  const int64_t rows = std::max<int64_t>(config.max_batch_size(), 1);
  if (sample_bytes == 0 || sample_bytes <= max_staging_bytes / rows) return absl::OkStatus();
  const bool overflows = sample_bytes > std::numeric_limits<int64_t>::max() / rows;
  return Invalid(config.name(),
                 absl::StrCat("max_batch_size ", config.max_batch_size(), " x ", sample_bytes,
                              " bytes per sample (inputs and outputs of fixed dims) = ",
                              overflows ? "more than 2^63" : absl::StrCat(rows * sample_bytes),
                              " bytes of staging per executor thread; expected at most ",
                              max_staging_bytes, " (--max_staging_bytes)"));
}

absl::Status CheckDynamicBatching(const ModelConfig& config,
                                  std::vector<std::string>& warnings) {
  if (!config.has_dynamic_batching()) return absl::OkStatus();
  const inference::ModelDynamicBatching& batching = config.dynamic_batching();
  for (int32_t size : batching.preferred_batch_size()) {
    if (size < 1 || size > config.max_batch_size()) {
      return Invalid(config.name(),
                     absl::StrCat("dynamic_batching preferred_batch_size: expected each in 1..",
                                  config.max_batch_size(), " (max_batch_size), got ", size));
    }
  }
  if (batching.max_queue_delay_microseconds() > kMaxMicroseconds) {
    return Invalid(config.name(),
                   absl::StrCat("dynamic_batching max_queue_delay_microseconds: expected at "
                                "most ", kMaxMicroseconds, ", got ",
                                batching.max_queue_delay_microseconds()));
  }
  const uint64_t levels = batching.priority_levels();
  if (levels > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) {
    return Invalid(config.name(), absl::StrCat("dynamic_batching priority_levels: expected at "
                                               "most ", std::numeric_limits<int32_t>::max(),
                                               ", got ", levels));
  }
  const uint64_t default_level = batching.default_priority_level();
  if ((levels == 0 && default_level != 0) ||
      (levels > 0 && (default_level < 1 || default_level > levels))) {
    return Invalid(config.name(),
                   absl::StrCat("dynamic_batching default_priority_level: expected ",
                                levels == 0 ? "0 (priority_levels is not set)"
                                            : absl::StrCat("1..", levels, " (priority_levels)"),
                                ", got ", default_level));
  }
  const inference::ModelQueuePolicy& queue = batching.default_queue_policy();
  if (queue.default_timeout_microseconds() > kMaxMicroseconds) {
    return Invalid(config.name(),
                   absl::StrCat("dynamic_batching default_queue_policy "
                                "default_timeout_microseconds: expected at most ",
                                kMaxMicroseconds, ", got ", queue.default_timeout_microseconds()));
  }
  if (queue.timeout_action() == inference::ModelQueuePolicy::DELAY) {
    warnings.push_back(
        "dynamic_batching default_queue_policy timeout_action: DELAY is ignored; a request "
        "past its deadline is answered DEADLINE_EXCEEDED (REJECT)");
  }
  if (batching.preserve_ordering()) {
    warnings.push_back(
        "dynamic_batching preserve_ordering: ignored; each call is answered independently");
  }
  if (!batching.priority_queue_policy().empty()) {
    warnings.push_back(
        "dynamic_batching priority_queue_policy: ignored; default_queue_policy applies to "
        "every priority level");
  }
  return absl::OkStatus();
}


absl::StatusOr<InstancePlan> PlanInstances(const ModelConfig& config,
                                           std::vector<std::string>* warnings) {
  InstancePlan plan;
  ModelInstanceGroup::Kind placed = ModelInstanceGroup::KIND_AUTO;
  for (int i = 0; i < config.instance_group_size(); ++i) {
    const ModelInstanceGroup& group = config.instance_group(i);
    const std::string label =
        group.name().empty() ? absl::StrCat("instance_group #", i)
                             : absl::StrCat("instance_group '", group.name(), "'");
    if (group.count() < 0) {
      return Invalid(config.name(),
                     absl::StrCat(label, " count: expected >= 1, got ", group.count()));
    }
    plan.instances += std::max<int64_t>(group.count(), 1);
    if (plan.instances > kMaxInstances) {
      return Invalid(config.name(), absl::StrCat("instance_group: expected at most ",
                                                 kMaxInstances, " instances in all, got ",
                                                 plan.instances, " by ", label));
    }
    const ModelInstanceGroup::Kind kind = group.kind();
    if (kind != ModelInstanceGroup::KIND_AUTO && kind != ModelInstanceGroup::KIND_GPU &&
        kind != ModelInstanceGroup::KIND_CPU) {
      return Invalid(config.name(),
                     absl::StrCat(label, " kind: expected KIND_AUTO, KIND_GPU or KIND_CPU, got ",
                                  ModelInstanceGroup::Kind_IsValid(kind)
                                      ? ModelInstanceGroup::Kind_Name(kind)
                                      : absl::StrCat(static_cast<int>(kind))));
    }
    if (kind != ModelInstanceGroup::KIND_AUTO) {
      if (placed != ModelInstanceGroup::KIND_AUTO && placed != kind) {
        return Invalid(config.name(),
                       absl::StrCat(label, " kind: ", ModelInstanceGroup::Kind_Name(kind),
                                    " after ", ModelInstanceGroup::Kind_Name(placed),
                                    "; coalesce serves a model from one device"));
      }
      placed = kind;
    }
    if (group.passive()) {
      return Invalid(config.name(), absl::StrCat(label, " passive: not supported; every "
                                                        "coalesce instance takes requests"));
    }
    if (warnings == nullptr) continue;
    // On CUDA, gpus places the group's instances (repository/instance_placement.h).
    if (!group.gpus().empty() && kind == ModelInstanceGroup::KIND_CPU) {
      warnings->push_back(absl::StrCat(label, " gpus: ignored for KIND_CPU"));
    }
    if (group.has_rate_limiter() || !group.secondary_devices().empty() ||
        !group.profile().empty() || !group.host_policy().empty()) {
      warnings->push_back(absl::StrCat(
          label, " rate_limiter/secondary_devices/profile/host_policy: ignored"));
    }
  }
  if (placed == ModelInstanceGroup::KIND_CPU) plan.device = DeviceKind::kCpu;
#if defined(__APPLE__)
  if (placed == ModelInstanceGroup::KIND_GPU) plan.device = DeviceKind::kMps;
#else
  if (placed == ModelInstanceGroup::KIND_GPU) plan.device = DeviceKind::kCuda;
#endif
  return plan;
}

absl::Status CheckTopLevel(const ModelConfig& config, std::vector<std::string>& warnings) {
  const google::protobuf::Descriptor* descriptor = config.GetDescriptor();
  const google::protobuf::Reflection* reflection = config.GetReflection();
  auto is_set = [&](const char* name) {
    const google::protobuf::FieldDescriptor* field = descriptor->FindFieldByName(name);
    return field->is_repeated() ? reflection->FieldSize(config, field) > 0
                                : reflection->HasField(config, field);
  };
  for (const IgnoredField& refused : kRefusedFields) {
    if (is_set(refused.name)) {
      return Invalid(config.name(),
                     absl::StrCat(refused.name, ": not supported; ", refused.reason));
    }
  }
  if (config.model_transaction_policy().decoupled()) {
    return Invalid(config.name(), "model_transaction_policy decoupled: not supported; coalesce "
                                  "answers each request with exactly one response");
  }
  for (const IgnoredField& ignored : kIgnoredFields) {
    if (is_set(ignored.name)) {
      warnings.push_back(absl::StrCat(ignored.name, ": ignored; ", ignored.reason));
    }
  }
  // optimization.cuda.graphs is used (ApplyModelConfig); the rest of the block is not.
  inference::ModelOptimizationPolicy rest = config.optimization();
  rest.mutable_cuda()->set_graphs(false);
  if (rest.cuda().ByteSizeLong() == 0) rest.clear_cuda();
  if (rest.ByteSizeLong() > 0) {
    warnings.push_back("optimization: ignored except cuda.graphs; coalesce chooses precision and "
                       "pinned buffers itself");
  }
  return absl::OkStatus();
}

absl::Status CheckFiles(const ModelConfig& config) {
  if (config.has_version_policy() && config.version_policy().has_specific()) {
    const auto& versions = config.version_policy().specific().versions();
    if (versions.empty()) {
      return Invalid(config.name(), "version_policy specific: expected at least one version, "
                                    "got none");
    }
    for (int64_t version : versions) {
      if (version < 0) {
        return Invalid(config.name(), absl::StrCat("version_policy specific: expected "
                                                   "versions >= 0, got ", version));
      }
    }
  }
  const std::string& file = config.default_model_filename();
  if (!file.empty() && (file == "." || file == ".." ||
                        file.find_first_of(std::string("/\\\0", 3)) != std::string::npos)) {
    return Invalid(config.name(), absl::StrCat("default_model_filename: expected a file name "
                                               "inside the version folder, got \"",
                                               absl::CEscape(file), "\""));
  }
  return absl::OkStatus();
}


}  // namespace model_config_internal
}  // namespace coalesce
