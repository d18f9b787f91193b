#include "repository/model_config_override.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace coalesce {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

absl::Status JsonError(const google::protobuf::util::Status& status) {
  return absl::InvalidArgumentError(
      absl::StrCat("config is not a JSON ModelConfig: ", std::string(status.message())));
}

}  // namespace

absl::StatusOr<inference::ModelConfig> OverrideModelConfig(absl::string_view json,
                                                           const inference::ModelConfig* base) {
  const std::string text(json);
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  inference::ModelConfig named;
  if (auto s = google::protobuf::util::JsonStringToMessage(text, &named, options); !s.ok()) {
    return JsonError(s);
  }
  if (base == nullptr) return named;

  // Which top-level fields the JSON names: proto3 cannot tell a field set to its default ("0",
  // "") from one left out, so read the keys themselves.
  google::protobuf::Struct keys;
  if (auto s = google::protobuf::util::JsonStringToMessage(text, &keys); !s.ok()) {
    return JsonError(s);
  }
  const Descriptor* descriptor = inference::ModelConfig::descriptor();
  const auto* reflection = inference::ModelConfig::GetReflection();
  inference::ModelConfig merged = *base;
  inference::ModelConfig given = named;
  for (int f = 0; f < descriptor->field_count(); ++f) {
    const FieldDescriptor* field = descriptor->field(f);
    const bool present =
        keys.fields().count(field->name()) > 0 || keys.fields().count(field->json_name()) > 0;
    // Clearing in `merged` what the JSON names, and in `given` what it does not, makes MergeFrom
    // a per-field replacement.
    reflection->ClearField(present ? &merged : &given, field);
  }
  merged.MergeFrom(given);
  return merged;
}

}  // namespace coalesce
