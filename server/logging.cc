#include "server/logging.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "server/json_log_formatter.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

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
  if (options.format == "json") {
    auto sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
    sink->set_formatter(std::make_unique<JsonLogFormatter>());
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("coalesce", std::move(sink)));
  }
  spdlog::set_level(spdlog::level::from_str(options.level));
  // Lifecycle lines are rare and matter most just before a crash or a kill: write each at once.
  spdlog::default_logger()->flush_on(spdlog::level::info);
  return absl::OkStatus();
}

}  // namespace coalesce
