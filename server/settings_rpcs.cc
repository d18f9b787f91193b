// InferenceService's run-time settings RPCs (Triton's trace and logging extensions).

#include "server/inference_service.h"

#include "absl/strings/str_cat.h"
#include "server/log_control.h"
#include "spdlog/spdlog.h"

namespace coalesce {
namespace {

using LogValue = inference::LogSettingsRequest::SettingValue;

// `current` changed by every setting `request` names, in Triton's names and types; nothing is
// applied unless all of them are valid. Triton's texts for a wrong type ("expect boolean for
// 'log_info'") and for log_file, which it does not change over the network either.
absl::StatusOr<coalesce::LogSettings> ChangedLogSettings(const inference::LogSettingsRequest& request,
                                                         coalesce::LogSettings current) {
  for (const auto& [name, value] : request.settings()) {
    const auto choice = value.parameter_choice_case();
    if (name == "log_file") {
      return absl::UnimplementedError(
          "log file location can not be updated through network protocol (coalesce logs to "
          "stdout; redirect it when starting the server)");
    } else if (name == "log_info" || name == "log_warning" || name == "log_error") {
      if (choice != LogValue::kBoolParam) {
        return absl::InvalidArgumentError(absl::StrCat("expect boolean for '", name, "'"));
      }
      bool& flag = name == "log_info"      ? current.info
                   : name == "log_warning" ? current.warning
                                           : current.error;
      flag = value.bool_param();
    } else if (name == "log_verbose_level") {
      if (choice != LogValue::kUint32Param) {
        return absl::InvalidArgumentError(absl::StrCat("expect int32 for '", name, "'"));
      }
      current.verbose_level = value.uint32_param();
    } else if (name == "log_format") {
      if (choice != LogValue::kStringParam) {
        return absl::InvalidArgumentError(absl::StrCat("expect string for '", name, "'"));
      }
      current.format = value.string_param();
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown log setting '", name,
          "' (expected log_file, log_info, log_warning, log_error, log_verbose_level or "
          "log_format)"));
    }
  }
  return current;
}

}  // namespace

grpc::ServerUnaryReactor* InferenceService::TraceSetting(grpc::CallbackServerContext* context,
                                                         const inference::TraceSettingRequest*,
                                                         inference::TraceSettingResponse*) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  return FinishNow(context, absl::UnimplementedError(
                                "TraceSetting: the trace extension is not implemented by this "
                                "server"));
}

grpc::ServerUnaryReactor* InferenceService::LogSettings(
    grpc::CallbackServerContext* context, const inference::LogSettingsRequest* request,
    inference::LogSettingsResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  LogControl& control = LogControl::Global();
  if (!request->settings().empty()) {
    absl::StatusOr<coalesce::LogSettings> changed = ChangedLogSettings(*request, control.Get());
    if (!changed.ok()) return FinishNow(context, changed.status());
    if (absl::Status s = control.Apply(*changed); !s.ok()) return FinishNow(context, s);
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
