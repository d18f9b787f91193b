#include "repository/model_config.h"

#include <algorithm>
#include <limits>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/text_format.h"
#include "repository/model_config_checks.h"
#include "repository/padding_config.h"

namespace coalesce {
namespace {

using inference::ModelConfig;
using model_config_internal::CheckDynamicBatching;
using model_config_internal::CheckFiles;
using model_config_internal::CheckPlatform;
using model_config_internal::CheckStaging;
using model_config_internal::CheckTensors;
using model_config_internal::CheckTopLevel;
using model_config_internal::DataTypeLabel;
using model_config_internal::FindInvalidUtf8;
using model_config_internal::InstancePlan;
using model_config_internal::Invalid;
using model_config_internal::PlanInstances;

// "line L:C: " for the zero-based `line` and `column` protobuf reports, one-based.
std::string Position(int line, int column) {
  if (line < 0) return "";
  return absl::StrCat("line ", line + 1, ":", column + 1, ": ");
}

// Collects the text-format parser's findings. Errors (syntax, wrong value types, unknown enum
// names, repeated singular fields) fail the parse; the parser's warnings, which with
// AllowUnknownField(true) are "no field named X" notices, become warnings: the first
// kMaxConfigWarnings kept, the rest only counted.
class ConfigErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (first_error_.empty()) first_error_ = absl::StrCat(Position(line, column), message);
  }
  void AddWarning(int line, google::protobuf::io::ColumnNumber column,
                  const std::string& message) override {
    if (warnings_.size() >= static_cast<size_t>(kMaxConfigWarnings)) {
      ++dropped_;
      return;
    }
    warnings_.push_back(absl::StrCat(Position(line, column), message, " Ignored."));
  }

  const std::string& first_error() const { return first_error_; }
  std::vector<std::string>& warnings() { return warnings_; }
  int64_t dropped() const { return dropped_; }

 private:
  std::string first_error_;
  std::vector<std::string> warnings_;
  int64_t dropped_ = 0;
};

// Tokenizer errors are the parser's to report; the nesting scan ignores them.
class IgnoreErrors : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int, google::protobuf::io::ColumnNumber, const std::string&) override {}
};

// Where `text` first nests messages or lists ('{', '<', '[') more than kMaxConfigNesting deep,
// as "line L:C: "; nullopt if it never does. Read with the tokenizer the text-format parser uses,
// set up as it sets it up, so that brackets inside strings and comments do not count; the scan
// is a loop, so it is safe at any depth.
std::optional<std::string> FindDeepNesting(absl::string_view text) {
  using google::protobuf::io::Tokenizer;
  google::protobuf::io::ArrayInputStream input(text.data(), static_cast<int>(text.size()));
  IgnoreErrors errors;
  Tokenizer tokenizer(&input, &errors);
  tokenizer.set_allow_f_after_float(true);
  tokenizer.set_comment_style(Tokenizer::SH_COMMENT_STYLE);
  tokenizer.set_require_space_after_number(false);
  tokenizer.set_allow_multiline_strings(true);
  int depth = 0;
  while (tokenizer.Next()) {
    const Tokenizer::Token& token = tokenizer.current();
    if (token.type != Tokenizer::TYPE_SYMBOL || token.text.size() != 1) continue;
    const char symbol = token.text[0];
    if (symbol == '{' || symbol == '<' || symbol == '[') {
      if (++depth > kMaxConfigNesting) return Position(token.line, token.column);
    } else if ((symbol == '}' || symbol == '>' || symbol == ']') && depth > 0) {
      --depth;
    }
  }
  return std::nullopt;
}

// Keeps the first kMaxConfigWarnings of `warnings` and says how many more there were, counting
// `dropped` others never recorded.
void CapWarnings(std::vector<std::string>& warnings, int64_t dropped) {
  if (warnings.size() > static_cast<size_t>(kMaxConfigWarnings)) {
    dropped += static_cast<int64_t>(warnings.size()) - kMaxConfigWarnings;
    warnings.resize(kMaxConfigWarnings);
  }
  if (dropped > 0) warnings.push_back(absl::StrCat("and ", dropped, " more warning(s) not shown"));
}


}  // namespace

absl::StatusOr<ParsedModelConfig> ParseModelConfig(absl::string_view text,
                                                   absl::string_view model_dir_name,
                                                   const ModelConfigLimits& limits) {
  if (text.size() > static_cast<size_t>(kMaxConfigBytes)) {
    return Invalid(model_dir_name, absl::StrCat("expected at most ", kMaxConfigBytes,
                                                " bytes (1 MiB), got ", text.size()));
  }
  if (std::optional<std::string> where = FindDeepNesting(text); where.has_value()) {
    return Invalid(model_dir_name,
                   absl::StrCat(*where, "expected messages and lists nested at most ",
                                kMaxConfigNesting, " deep, got deeper"));
  }
  ParsedModelConfig parsed;
  ModelConfig& config = parsed.config;
  ConfigErrorCollector collector;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&collector);
  parser.AllowUnknownField(true);
  // Also bounds the parser itself, should its idea of a level ever differ from the scan's.
  parser.SetRecursionLimit(kMaxConfigNesting);
  google::protobuf::io::ArrayInputStream input(text.data(), static_cast<int>(text.size()));
  if (!parser.Parse(&input, &config)) {
    return Invalid(model_dir_name, collector.first_error().empty() ? "not valid text format"
                                                                   : collector.first_error());
  }
  parsed.warnings = std::move(collector.warnings());
  if (std::optional<std::string> field = FindInvalidUtf8(config); field.has_value()) {
    return Invalid(model_dir_name,
                   absl::StrCat(*field, ": expected UTF-8 text, got bytes that are not UTF-8"));
  }

  if (config.name().empty()) config.set_name(std::string(model_dir_name));
  if (config.name() != model_dir_name) {
    return Invalid(model_dir_name, absl::StrCat("name: expected \"", model_dir_name,
                                                "\" (the model's folder) or empty, got \"",
                                                config.name(), "\""));
  }
  if (config.name().empty()) return Invalid(model_dir_name, "name: the model has no name");
  if (config.max_batch_size() < 0 || config.max_batch_size() > kMaxBatchSize) {
    return Invalid(config.name(), absl::StrCat("max_batch_size: expected 0..", kMaxBatchSize,
                                               ", got ", config.max_batch_size()));
  }
  // Every check runs (they are cheap); the first failure, in this order, is the answer.
  for (absl::Status status : {CheckPlatform(config, parsed.warnings),
                              CheckTopLevel(config, parsed.warnings),
                              CheckTensors(config, parsed.warnings),
                              CheckStaging(config, limits.max_staging_bytes),
                              CheckDynamicBatching(config, parsed.warnings),
                              PaddingFromConfig(config).status(),
                              PlanInstances(config, &parsed.warnings).status(),
                              CheckFiles(config)}) {
    if (!status.ok()) return status;
  }
  CapWarnings(parsed.warnings, collector.dropped());
  return parsed;
}

absl::StatusOr<ModelMetadata> MetadataFromConfig(const inference::ModelConfig& config,
                                                 absl::string_view version) {
  ModelMetadata metadata;
  metadata.name = config.name();
  metadata.version = std::string(version);
  metadata.platform = "pytorch_libtorch";
  metadata.max_batch_size = config.max_batch_size();
  auto convert = [&](absl::string_view kind, const auto& tensor,
                     std::vector<TensorSpec>& specs) -> absl::Status {
    if (!IsServableConfigDataType(tensor.data_type())) {
      return Invalid(config.name(),
                     absl::StrCat(kind, " '", tensor.name(), "' data_type: ",
                                  DataTypeLabel(tensor.data_type()), " is not servable"));
    }
    TensorSpec spec;
    spec.name = tensor.name();
    spec.dtype = *DataTypeFromConfig(tensor.data_type());
    spec.dims.assign(tensor.dims().begin(), tensor.dims().end());
    if (tensor.has_reshape()) {
      spec.reshape.emplace(tensor.reshape().shape().begin(), tensor.reshape().shape().end());
    }
    specs.push_back(std::move(spec));
    return absl::OkStatus();
  };
  for (const inference::ModelInput& in : config.input()) {
    if (absl::Status s = convert("input", in, metadata.inputs); !s.ok()) return s;
  }
  for (const inference::ModelOutput& out : config.output()) {
    if (absl::Status s = convert("output", out, metadata.outputs); !s.ok()) return s;
  }
  absl::StatusOr<std::optional<PaddingSpec>> padding = PaddingFromConfig(config);
  if (!padding.ok()) return padding.status();
  metadata.padding = *std::move(padding);
  return metadata;
}

absl::StatusOr<ModelConfigOverrides> ApplyModelConfig(const inference::ModelConfig& config,
                                                      const ServedModel::Options& defaults) {
  std::vector<std::string> unused_warnings;
  absl::Status status = CheckDynamicBatching(config, unused_warnings);
  if (!status.ok()) return status;
  absl::StatusOr<InstancePlan> plan = PlanInstances(config, /*warnings=*/nullptr);
  if (!plan.ok()) return plan.status();

  ModelConfigOverrides overrides;
  overrides.model = defaults;
  ServedModel::Options& model = overrides.model;
  if (plan->instances > 0) model.num_workers = static_cast<int>(plan->instances);
  overrides.device = plan->device;
  overrides.cuda_graphs = config.optimization().cuda().graphs();
  if (!config.has_dynamic_batching()) return overrides;

  const inference::ModelDynamicBatching& batching = config.dynamic_batching();
  if (batching.max_queue_delay_microseconds() > 0) {
    model.max_queue_delay =
        absl::Microseconds(static_cast<int64_t>(batching.max_queue_delay_microseconds()));
  }
  if (!batching.preferred_batch_size().empty()) {
    std::set<int64_t> sizes(batching.preferred_batch_size().begin(),
                            batching.preferred_batch_size().end());
    model.preferred_batch_sizes.assign(sizes.begin(), sizes.end());
  }
  if (batching.priority_levels() > 0) {
    model.scheduling.priority_levels = static_cast<int>(batching.priority_levels());
    model.scheduling.default_priority = static_cast<int>(batching.default_priority_level());
  }
  const inference::ModelQueuePolicy& queue = batching.default_queue_policy();
  if (queue.default_timeout_microseconds() > 0) {
    model.scheduling.default_timeout =
        absl::Microseconds(static_cast<int64_t>(queue.default_timeout_microseconds()));
  }
  if (queue.max_queue_size() > 0) model.max_queue_size = queue.max_queue_size();
  return overrides;
}

absl::StatusOr<std::vector<int64_t>> SelectVersions(const inference::ModelVersionPolicy& policy,
                                                    std::vector<int64_t> available) {
  std::sort(available.begin(), available.end());
  available.erase(std::unique(available.begin(), available.end()), available.end());
  if (policy.has_specific()) {
    std::set<int64_t> wanted(policy.specific().versions().begin(),
                             policy.specific().versions().end());
    if (wanted.empty()) {
      return absl::InvalidArgumentError(
          "version_policy specific: expected at least one version, got none");
    }
    std::vector<int64_t> missing;
    for (int64_t version : wanted) {
      if (!std::binary_search(available.begin(), available.end(), version)) {
        missing.push_back(version);
      }
    }
    if (!missing.empty()) {
      return absl::NotFoundError(absl::StrCat(
          "version_policy specific: version(s) ", absl::StrJoin(missing, ", "),
          " not found; present: [", absl::StrJoin(available, ", "), "]"));
    }
    return std::vector<int64_t>(wanted.begin(), wanted.end());
  }
  if (available.empty()) {
    return absl::NotFoundError("no version folders: expected at least one numbered folder");
  }
  if (policy.has_all()) return available;
  const size_t latest = std::max<uint32_t>(policy.latest().num_versions(), 1);
  if (latest < available.size()) available.erase(available.begin(), available.end() - latest);
  return available;
}

std::string ModelFileName(const inference::ModelConfig& config) {
  return config.default_model_filename().empty() ? "model.pt" : config.default_model_filename();
}

std::string ModelConfigToText(const inference::ModelConfig& config) {
  std::string text;
  google::protobuf::TextFormat::PrintToString(config, &text);
  return text;
}

std::optional<DataType> DataTypeFromConfig(inference::DataType type) {
  switch (type) {
    case inference::TYPE_BOOL: return DataType::kBool;
    case inference::TYPE_UINT8: return DataType::kUint8;
    case inference::TYPE_UINT16: return DataType::kUint16;
    case inference::TYPE_UINT32: return DataType::kUint32;
    case inference::TYPE_UINT64: return DataType::kUint64;
    case inference::TYPE_INT8: return DataType::kInt8;
    case inference::TYPE_INT16: return DataType::kInt16;
    case inference::TYPE_INT32: return DataType::kInt32;
    case inference::TYPE_INT64: return DataType::kInt64;
    case inference::TYPE_FP16: return DataType::kFp16;
    case inference::TYPE_BF16: return DataType::kBf16;
    case inference::TYPE_FP32: return DataType::kFp32;
    case inference::TYPE_FP64: return DataType::kFp64;
    default: return std::nullopt;  // INVALID, STRING, numbers the schema does not define
  }
}

inference::DataType DataTypeToConfig(DataType type) {
  switch (type) {
    case DataType::kBool: return inference::TYPE_BOOL;
    case DataType::kUint8: return inference::TYPE_UINT8;
    case DataType::kUint16: return inference::TYPE_UINT16;
    case DataType::kUint32: return inference::TYPE_UINT32;
    case DataType::kUint64: return inference::TYPE_UINT64;
    case DataType::kInt8: return inference::TYPE_INT8;
    case DataType::kInt16: return inference::TYPE_INT16;
    case DataType::kInt32: return inference::TYPE_INT32;
    case DataType::kInt64: return inference::TYPE_INT64;
    case DataType::kFp16: return inference::TYPE_FP16;
    case DataType::kBf16: return inference::TYPE_BF16;
    case DataType::kFp32: return inference::TYPE_FP32;
    case DataType::kFp64: return inference::TYPE_FP64;
  }
  return inference::TYPE_INVALID;
}

bool IsServableConfigDataType(inference::DataType type) {
  // LibTorch 1.13 has no uint16/32/64 tensors; STRING is variable-length.
  const std::optional<DataType> mapped = DataTypeFromConfig(type);
  return mapped.has_value() && *mapped != DataType::kUint16 && *mapped != DataType::kUint32 &&
         *mapped != DataType::kUint64;
}

}  // namespace coalesce

