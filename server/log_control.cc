#include "server/log_control.h"

#include <memory>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/client_text.h"
#include "server/json_log_formatter.h"
#include "spdlog/pattern_formatter.h"
#include "spdlog/sinks/sink.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace coalesce {
namespace {

std::unique_ptr<spdlog::formatter> FormatterFor(const std::string& format) {
  if (format == "json") return std::make_unique<JsonLogFormatter>();
  if (format == "ISO8601") {
    return std::make_unique<spdlog::pattern_formatter>("%Y-%m-%dT%H:%M:%S.%fZ [%l] %v",
                                                       spdlog::pattern_time_type::utc);
  }
  // spdlog's default lines, without the logger's name.
  return std::make_unique<spdlog::pattern_formatter>("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
}

spdlog::level::level_enum ThresholdFor(const LogSettings& settings) {
  if (settings.verbose_level >= 2) return spdlog::level::trace;
  if (settings.verbose_level == 1) return spdlog::level::debug;
  return spdlog::level::info;
}

}  // namespace

// Forwards the lines whose kind is switched on to the sink it wraps.
class LogControl::FilterSink final : public spdlog::sinks::sink {
 public:
  explicit FilterSink(spdlog::sink_ptr inner) : inner_(std::move(inner)) {}

  void log(const spdlog::details::log_msg& msg) override {
    if (Shown(msg.level)) inner_->log(msg);
  }
  void flush() override { inner_->flush(); }
  void set_pattern(const std::string& pattern) override { inner_->set_pattern(pattern); }
  void set_formatter(std::unique_ptr<spdlog::formatter> formatter) override {
    inner_->set_formatter(std::move(formatter));
  }

  void Switch(const LogSettings& settings) {
    info_.store(settings.info, std::memory_order_relaxed);
    warning_.store(settings.warning, std::memory_order_relaxed);
    error_.store(settings.error, std::memory_order_relaxed);
  }

 private:
  bool Shown(spdlog::level::level_enum level) const {
    switch (level) {
      case spdlog::level::info:
        return info_.load(std::memory_order_relaxed);
      case spdlog::level::warn:
        return warning_.load(std::memory_order_relaxed);
      case spdlog::level::err:
      case spdlog::level::critical:
        return error_.load(std::memory_order_relaxed);
      default:
        return true;  // trace and debug: the logger's level decides.
    }
  }

  const spdlog::sink_ptr inner_;
  std::atomic<bool> info_{true};
  std::atomic<bool> warning_{true};
  std::atomic<bool> error_{true};
};

LogControl& LogControl::Global() {
  static LogControl* const control = new LogControl();
  return *control;
}

LogControl::LogControl() { Install(std::make_shared<spdlog::sinks::stdout_sink_mt>()); }

void LogControl::Install(spdlog::sink_ptr sink) {
  absl::MutexLock lock(&mu_);
  sink_ = std::make_shared<FilterSink>(std::move(sink));
  sink_->Switch(settings_);
  sink_->set_formatter(FormatterFor(settings_.format));
  auto logger = std::make_shared<spdlog::logger>("coalesce", sink_);
  logger->set_level(ThresholdFor(settings_));
  // Lifecycle lines are rare and matter most just before a crash or a kill: write each at once.
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
}

LogSettings LogControl::Get() const {
  absl::MutexLock lock(&mu_);
  return settings_;
}

absl::StatusOr<LogSettings> LogControl::Update(
    const std::function<absl::StatusOr<LogSettings>(const LogSettings&)>& change) {
  absl::MutexLock serial(&update_mu_);
  absl::StatusOr<LogSettings> changed = change(Get());
  if (!changed.ok()) return changed.status();
  if (absl::Status s = Apply(*changed); !s.ok()) return s;
  return *changed;
}

absl::Status LogControl::Apply(const LogSettings& settings) {
  if (settings.format != "default" && settings.format != "ISO8601" && settings.format != "json") {
    return absl::InvalidArgumentError(absl::StrCat("invalid argument for log_format, got: '",
                                                   ClientText(settings.format),
                                                   "' (expected default, ISO8601 or json)"));
  }
  absl::MutexLock lock(&mu_);
  if (settings.format != settings_.format) sink_->set_formatter(FormatterFor(settings.format));
  sink_->Switch(settings);
  spdlog::default_logger()->set_level(ThresholdFor(settings));
  settings_ = settings;
  return absl::OkStatus();
}

absl::Status LogSettingsFromFlags(absl::string_view level, absl::string_view format,
                                  LogSettings* settings) {
  LogSettings result;
  if (format == "text" || format == "default") {
    result.format = "default";
  } else if (format == "json" || format == "ISO8601") {
    result.format = std::string(format);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--log_format must be text, json or ISO8601, got '", format, "'"));
  }
  if (level == "trace") {
    result.verbose_level = 2;
  } else if (level == "debug") {
    result.verbose_level = 1;
  } else if (level == "info") {
  } else if (level == "warn") {
    result.info = false;
  } else if (level == "error" || level == "critical") {
    result.info = result.warning = false;
  } else if (level == "off") {
    result.info = result.warning = result.error = false;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--log_level must be trace, debug, info, warn, error, critical or off, got '", level, "'"));
  }
  *settings = std::move(result);
  return absl::OkStatus();
}

}  // namespace coalesce
