#ifndef COALESCE_SERVER_LOG_CONTROL_H_
#define COALESCE_SERVER_LOG_CONTROL_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "spdlog/common.h"

namespace coalesce {

// What the server logs, as Triton's logging extension states it.
struct LogSettings {
  // Lines at info, warn, and error/critical: each kind on or off by itself.
  bool info = true;
  bool warning = true;
  bool error = true;
  // 0: no debug lines; 1: debug lines (per-request access lines among them); 2 and up: trace
  // lines too.
  uint32_t verbose_level = 0;
  // "default": spdlog's text lines; "ISO8601": text lines stamped with ISO-8601 UTC time (as
  // Triton's option of that name); "json": one JSON object per line (JsonLogFormatter).
  std::string format = "default";
};

// The process's logging, changeable while serving (the LogSettings RPC). spdlog's default
// logger is process-wide, so there is one LogControl per process (Global()); it owns that logger:
// its level follows verbose_level, and its one sink drops the kinds of lines switched off and
// formats as `format` says. Lines go to stdout unless Install() names another sink (tests).
//
// Thread-safe. Apply() may race with logging threads: a line logged during the change comes out
// in the old or the new settings, whole.
class LogControl {
 public:
  static LogControl& Global();

  // Makes spdlog's default logger write to `sink` under the current settings. Call at start-up
  // (or in a test) before other threads log: spdlog does not swap its default logger atomically
  // with its use.
  void Install(spdlog::sink_ptr sink);

  LogSettings Get() const;
  // Checks `settings` and, if they are valid, makes them the current ones. INVALID_ARGUMENT
  // naming the value for an unknown format.
  absl::Status Apply(const LogSettings& settings);
  // Reads the current settings, has `change` derive new ones from them, and applies those, with
  // no other Update() in between: two concurrent changes of different settings both stay. An
  // error from `change` or Apply() changes nothing. Returns the settings in force afterwards.
  absl::StatusOr<LogSettings> Update(
      const std::function<absl::StatusOr<LogSettings>(const LogSettings&)>& change);

 private:
  class FilterSink;

  LogControl();

  // Held across an Update()'s read, change and apply; taken before mu_.
  absl::Mutex update_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  LogSettings settings_ ABSL_GUARDED_BY(mu_);
  // Shared with the logger; the switches it reads are atomics of its own.
  std::shared_ptr<FilterSink> sink_ ABSL_GUARDED_BY(mu_);
};

// The settings that a --log_level and --log_format give. "text" is "default"; levels map to the
// kinds of lines shown (warn: no info; error and critical: errors only; off: none; debug:
// verbose 1; trace: verbose 2). INVALID_ARGUMENT naming the value for an unknown one.
absl::Status LogSettingsFromFlags(absl::string_view level, absl::string_view format,
                                  LogSettings* settings);

}  // namespace coalesce

#endif  // COALESCE_SERVER_LOG_CONTROL_H_
