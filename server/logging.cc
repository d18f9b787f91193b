#include "server/logging.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "server/log_control.h"

namespace coalesce {
namespace {

constexpr absl::string_view kLevels[] = {"trace", "debug", "info", "warn",
                                         "error", "critical", "off"};

}  // namespace

absl::Status ValidateLogLevel(absl::string_view level) {
  for (absl::string_view known : kLevels) {
    if (level == known) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--log_level must be trace, debug, info, warn, error, critical or off, got '", level, "'"));
}

absl::Status ValidateLogFormat(absl::string_view format) {
  if (format == "text" || format == "json") return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("--log_format must be text or json, got '", format, "'"));
}

absl::Status ConfigureLogging(const LoggingOptions& options) {
  if (absl::Status s = ValidateLogLevel(options.level); !s.ok()) return s;
  if (absl::Status s = ValidateLogFormat(options.format); !s.ok()) return s;
  LogSettings settings;
  if (absl::Status s = LogSettingsFromFlags(options.level, options.format, &settings); !s.ok()) {
    return s;
  }
  // LogControl owns spdlog's default logger from here on, so that LogSettings can change it.
  return LogControl::Global().Apply(settings);
}

}  // namespace coalesce
