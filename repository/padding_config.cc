#include "repository/padding_config.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "engine/padding.h"
#include "execution/padded_rows.h"
#include "repository/model_config.h"
#include "repository/model_config_checks.h"

namespace coalesce {
namespace {

using model_config_internal::Invalid;

// The index of `name` among `tensors`, or -1.
template <typename Tensors>
int IndexOf(const Tensors& tensors, absl::string_view name) {
  for (int i = 0; i < tensors.size(); ++i) {
    if (tensors[i].name() == name) return i;
  }
  return -1;
}

// The index of the one -1 of `dims`, or why there is none.
template <typename Tensor>
absl::StatusOr<int> VariableDim(const Tensor& tensor) {
  const auto& dims = tensor.dims();
  if (std::count(dims.begin(), dims.end(), -1) != 1) {
    return absl::InvalidArgumentError("expected exactly one variable (-1) dim");
  }
  if (tensor.has_reshape()) return absl::InvalidArgumentError("expected no reshape");
  return static_cast<int>(std::find(dims.begin(), dims.end(), -1) - dims.begin());
}

absl::StatusOr<std::vector<int64_t>> ParseBuckets(absl::string_view text) {
  std::vector<int64_t> buckets;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int64_t bucket = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &bucket) || bucket < 1 ||
        bucket > kMaxPadBucket) {
      return absl::InvalidArgumentError(absl::StrCat("expected lengths in 1..", kMaxPadBucket,
                                                     " separated by commas, got \"", text, "\""));
    }
    if (!buckets.empty() && bucket <= buckets.back()) {
      return absl::InvalidArgumentError(
          absl::StrCat("expected ascending lengths, got ", bucket, " after ", buckets.back()));
    }
    buckets.push_back(bucket);
  }
  return buckets;
}

}  // namespace

absl::StatusOr<std::optional<PaddingSpec>> PaddingFromConfig(
    const inference::ModelConfig& config) {
  const std::string& model = config.name();
  auto bad = [&](absl::string_view parameter, absl::string_view problem) {
    return Invalid(model, absl::StrCat("parameter '", parameter, "': ", problem));
  };
  // Sorted, so that the first problem reported does not depend on the map's order.
  std::map<std::string, std::string> declared;
  for (const auto& [key, value] : config.parameters()) {
    if (absl::StartsWith(key, "coalesce.pad") || absl::StartsWith(key, "coalesce.cut")) {
      declared[key] = value.string_value();
    }
  }
  if (declared.empty()) return std::nullopt;

  PaddingSpec padding;
  std::map<std::string, int> padded;  // Padded input name -> its index in padding.inputs.
  for (const auto& [key, value] : declared) {
    if (key == kPadBucketsParameter) {
      absl::StatusOr<std::vector<int64_t>> buckets = ParseBuckets(value);
      if (!buckets.ok()) return bad(key, buckets.status().message());
      padding.buckets = *std::move(buckets);
    } else if (key == kPadMaxRatioParameter) {
      double ratio = 0;
      if (!absl::SimpleAtod(value, &ratio) || !CheckMaxPaddingRatio(ratio).ok()) {
        return bad(key, absl::StrCat("expected a number in [0, 1), got \"", value, "\""));
      }
      padding.max_padding_ratio = ratio;
    } else if (absl::StartsWith(key, kPadInputPrefix)) {
      const std::string name(absl::StripPrefix(key, kPadInputPrefix));
      const int i = IndexOf(config.input(), name);
      if (i < 0) return bad(key, absl::StrCat("the model has no input '", name, "'"));
      absl::StatusOr<int> dim = VariableDim(config.input(i));
      if (!dim.ok()) return bad(key, absl::StrCat("input '", name, "': ", dim.status().message()));
      double pad = 0;
      if (!absl::SimpleAtod(value, &pad) || !std::isfinite(pad)) {
        return bad(key, absl::StrCat("expected a number (the pad value), got \"", value, "\""));
      }
      const std::optional<DataType> type = DataTypeFromConfig(config.input(i).data_type());
      if (type.has_value()) {
        if (absl::Status s = RepeatedValue(*type, pad, 1).status(); !s.ok()) {
          return bad(key, absl::StrCat("input '", name, "' is ", DataTypeName(*type), ": ",
                                       s.message()));
        }
      }
      padded[name] = static_cast<int>(padding.inputs.size());
      padding.inputs.push_back({i, *dim, pad});
    } else if (!absl::StartsWith(key, kCutOutputPrefix)) {
      return bad(key, absl::StrCat("unknown; expected ", kPadBucketsParameter, ", ",
                                   kPadMaxRatioParameter, ", ", kPadInputPrefix, "<input> or ",
                                   kCutOutputPrefix, "<output>"));
    }
  }
  // Cuts, once every padded input is known.
  for (const auto& [key, value] : declared) {
    if (!absl::StartsWith(key, kCutOutputPrefix)) continue;
    const std::string name(absl::StripPrefix(key, kCutOutputPrefix));
    const int o = IndexOf(config.output(), name);
    if (o < 0) return bad(key, absl::StrCat("the model has no output '", name, "'"));
    absl::StatusOr<int> dim = VariableDim(config.output(o));
    if (!dim.ok()) return bad(key, absl::StrCat("output '", name, "': ", dim.status().message()));
    if (padded.count(value) == 0) {
      return bad(key, absl::StrCat("expected the name of a padded input, got \"", value, "\""));
    }
    padding.outputs.push_back({o, *dim});
  }

  if (config.max_batch_size() == 0) {
    return bad(declared.begin()->first, "padding needs a batching model (max_batch_size > 0)");
  }
  if (padding.inputs.empty()) {
    return bad(declared.begin()->first,
               absl::StrCat("no input is padded; declare ", kPadInputPrefix, "<input>"));
  }
  if (padding.buckets.empty()) {
    return bad(kPadBucketsParameter, "required when an input is padded");
  }
  // A model pads every variable input and cuts every variable output, or none: a batch holds
  // one padded length, and an uncut output would answer with another request's padding.
  for (int i = 0; i < config.input_size(); ++i) {
    const auto& dims = config.input(i).dims();
    if (std::count(dims.begin(), dims.end(), -1) > 0 && padded.count(config.input(i).name()) == 0) {
      return bad(absl::StrCat(kPadInputPrefix, config.input(i).name()),
                 "missing: every variable input of a model that pads must be padded");
    }
  }
  for (int o = 0; o < config.output_size(); ++o) {
    const auto& dims = config.output(o).dims();
    const bool cut = std::any_of(padding.outputs.begin(), padding.outputs.end(),
                                 [o](const PaddingSpec::Output& out) { return out.output == o; });
    if (std::count(dims.begin(), dims.end(), -1) > 0 && !cut) {
      return bad(absl::StrCat(kCutOutputPrefix, config.output(o).name()),
                 "missing: every variable output of a model that pads must be cut");
    }
  }
  for (const PaddingSpec::Input& in : padding.inputs) {
    const auto& tensor = config.input(in.input);
    const std::optional<DataType> type = DataTypeFromConfig(tensor.data_type());
    double block = static_cast<double>(padding.buckets.back()) *
                   static_cast<double>(type.has_value() ? DataTypeSize(*type) : 1);
    for (int d = in.dim + 1; d < tensor.dims_size(); ++d) {
      block *= static_cast<double>(std::max<int64_t>(1, tensor.dims(d)));
    }
    if (block > static_cast<double>(kMaxPadBlockBytes)) {
      return bad(absl::StrCat(kPadInputPrefix, tensor.name()),
                 absl::StrCat("the last bucket's block of pad values takes ", block,
                              " bytes; expected at most ", kMaxPadBlockBytes));
    }
  }
  return padding;
}

}  // namespace coalesce
