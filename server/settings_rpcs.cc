// InferenceService's run-time settings RPCs (Triton's trace and logging extensions).

#include "server/inference_service.h"

#include <limits>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/client_text.h"
#include "server/log_control.h"
#include "spdlog/spdlog.h"

namespace coalesce {
namespace {

using LogValue = inference::LogSettingsRequest::SettingValue;

// `current` changed by every setting `request` names, in Triton's names and types; nothing is
// applied unless all of them are valid. Triton's texts for a wrong type ("expect boolean for
// 'log_info'") and for log_file, which it does not change over the network either.
absl::StatusOr<coalesce::LogSettings> ChangedLogSettings(
    const inference::LogSettingsRequest& request, coalesce::LogSettings current) {
  for (const auto& [name, value] : request.settings()) {
    const auto choice = value.parameter_choice_case();
    if (name == "log_file") {
      return absl::UnimplementedError(
          "log file location can not be updated through network protocol (coalesce logs to "
          "stdout; redirect it when starting the server)");
    } else if (name == "log_info" || name == "log_warning" || name == "log_error") {
      if (choice != LogValue::kBoolParam) {
        return absl::InvalidArgumentError(
            absl::StrCat("expect boolean for '", ClientText(name), "'"));
      }
      bool& flag = name == "log_info"      ? current.info
                   : name == "log_warning" ? current.warning
                                           : current.error;
      flag = value.bool_param();
    } else if (name == "log_verbose_level") {
      if (choice != LogValue::kUint32Param) {
        return absl::InvalidArgumentError(
            absl::StrCat("expect int32 for '", ClientText(name), "'"));
      }
      current.verbose_level = value.uint32_param();
    } else if (name == "log_format") {
      if (choice != LogValue::kStringParam) {
        return absl::InvalidArgumentError(
            absl::StrCat("expect string for '", ClientText(name), "'"));
      }
      current.format = value.string_param();
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown log setting '", ClientText(name),
          "' (expected log_file, log_info, log_warning, log_error, log_verbose_level or "
          "log_format)"));
    }
  }
  return current;
}

// A setting's one value as a number in [min, max], in Triton's words when it is not.
template <typename T>
absl::StatusOr<T> ParseSettingNumber(const std::string& name,
                                     const inference::TraceSettingRequest::SettingValue& value,
                                     int64_t min, int64_t max) {
  if (value.value_size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("expect only 1 value for '", ClientText(name), "'"));
  }
  int64_t number = 0;
  if (!absl::SimpleAtoi(value.value(0), &number)) {
    return absl::InvalidArgumentError(absl::StrCat("Unable to parse '", ClientText(name),
                                                   "', got: ", ClientText(value.value(0))));
  }
  if (number < min || number > max) {
    return absl::InvalidArgumentError(absl::StrCat("Unable to parse '", ClientText(name),
                                                   "', value is out of range [ ", min, ", ", max,
                                                   " ], got: ", ClientText(value.value(0))));
  }
  return static_cast<T>(number);
}

// The settings a TraceSetting request changes. A setting with no value is cleared (a model's
// then follows the global one; a global one returns to its default).
absl::StatusOr<RequestTracer::Update> TraceUpdateFrom(
    const inference::TraceSettingRequest& request) {
  RequestTracer::Update update;
  constexpr int64_t kMaxUint32 = std::numeric_limits<uint32_t>::max();
  for (const auto& [name, value] : request.settings()) {
    const bool clear = value.value_size() == 0;
    if (name == "trace_file") {
      return absl::UnimplementedError(
          "trace file location can not be updated through network protocol (coalesce: start the "
          "server with --trace_file)");
    } else if (name == "trace_level") {
      if (clear) {
        update.level.action = update.level.kClear;
        continue;
      }
      if (value.value_size() != 1) {
        return absl::InvalidArgumentError(
            "expect only 1 value for 'trace_level': OFF or TIMESTAMPS (coalesce traces no "
            "tensors)");
      }
      const std::string& level = value.value(0);
      if (level == "TENSORS") {
        return absl::InvalidArgumentError(
            "trace_level TENSORS is not supported: coalesce traces TIMESTAMPS only");
      }
      if (level != "OFF" && level != "TIMESTAMPS") {
        return absl::InvalidArgumentError(
            absl::StrCat("trace_level must be OFF or TIMESTAMPS, got '", ClientText(level), "'"));
      }
      update.level = {update.level.kSet, level == "OFF" ? RequestTracer::Level::kOff
                                                        : RequestTracer::Level::kTimestamps};
    } else if (name == "trace_rate" || name == "log_frequency") {
      auto& change = name == "trace_rate" ? update.rate : update.log_frequency;
      if (clear) {
        change.action = change.kClear;
        continue;
      }
      absl::StatusOr<uint32_t> number =
          ParseSettingNumber<uint32_t>(name, value, name == "trace_rate" ? 1 : 0, kMaxUint32);
      if (!number.ok()) return number.status();
      change = {change.kSet, *number};
    } else if (name == "trace_count") {
      if (clear) {
        update.count.action = update.count.kClear;
        continue;
      }
      absl::StatusOr<int64_t> number =
          ParseSettingNumber<int64_t>(name, value, -1, std::numeric_limits<int32_t>::max());
      if (!number.ok()) return number.status();
      update.count = {update.count.kSet, *number};
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown trace setting '", ClientText(name),
          "' (expected trace_file, trace_level, trace_rate, trace_count or log_frequency)"));
    }
  }
  return update;
}

}  // namespace

grpc::ServerUnaryReactor* InferenceService::TraceSetting(
    grpc::CallbackServerContext* context, const inference::TraceSettingRequest* request,
    inference::TraceSettingResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  if (tracer_ == nullptr) {
    return FinishNow(context, absl::UnimplementedError(
                                  "TraceSetting: the trace extension is not implemented by this "
                                  "server instance (no tracer)"));
  }
  const std::string& model = request->model_name();
  if (!model.empty()) {
    // Settings for a model that is served now (Triton asks the same).
    if (auto found = registry_->Find(model, ""); !found.ok()) {
      return FinishNow(context, found.status());
    }
  }
  if (!request->settings().empty()) {
    absl::StatusOr<RequestTracer::Update> update = TraceUpdateFrom(*request);
    if (!update.ok()) return FinishNow(context, update.status());
    if (absl::Status s = tracer_->Apply(model, *update); !s.ok()) return FinishNow(context, s);
  }
  const RequestTracer::Settings now = tracer_->Get(model);
  auto& settings = *response->mutable_settings();
  settings["trace_level"].add_value(now.level == RequestTracer::Level::kOff ? "OFF" : "TIMESTAMPS");
  settings["trace_rate"].add_value(std::to_string(now.rate));
  settings["trace_count"].add_value(std::to_string(now.count));
  settings["log_frequency"].add_value(std::to_string(now.log_frequency));
  settings["trace_file"].add_value(tracer_->file());
  settings["trace_mode"].add_value("triton");
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::LogSettings(
    grpc::CallbackServerContext* context, const inference::LogSettingsRequest* request,
    inference::LogSettingsResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  LogControl& control = LogControl::Global();
  if (!request->settings().empty()) {
    absl::StatusOr<coalesce::LogSettings> changed =
        control.Update([request](const coalesce::LogSettings& current) {
          return ChangedLogSettings(*request, current);
        });
    if (!changed.ok()) return FinishNow(context, changed.status());
    spdlog::info("LogSettings: info={} warning={} error={} verbose_level={} format={}",
                 changed->info, changed->warning, changed->error, changed->verbose_level,
                 changed->format);
  }
  const coalesce::LogSettings now = control.Get();
  auto& settings = *response->mutable_settings();
  settings["log_file"].set_string_param("");  // stdout.
  settings["log_info"].set_bool_param(now.info);
  settings["log_warning"].set_bool_param(now.warning);
  settings["log_error"].set_bool_param(now.error);
  settings["log_verbose_level"].set_uint32_param(now.verbose_level);
  settings["log_format"].set_string_param(now.format);
  return FinishNow(context, absl::OkStatus());
}

}  // namespace coalesce
