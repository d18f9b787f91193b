#ifndef COALESCE_SERVER_LOGGING_H_
#define COALESCE_SERVER_LOGGING_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace coalesce {

// How the server logs (spdlog's default logger, on stdout).
struct LoggingOptions {
  // trace, debug, info, warn, error, critical or off. Lifecycle events are logged at info,
  // never one line per request.
  std::string level = "info";
  // text: spdlog's human-readable lines. json: one JSON object per line (JsonLogFormatter).
  std::string format = "text";
};

// INVALID_ARGUMENT naming the flag and the accepted values if `level` or `format` is unknown.
absl::Status ValidateLogLevel(absl::string_view level);
absl::Status ValidateLogFormat(absl::string_view format);

// Validates `options`, then makes LogControl::Global() (which owns spdlog's default logger)
// log accordingly. Call once at start-up, before other threads log (spdlog's default logger is
// not swapped atomically with its use). --log_level=critical shows error lines too (the
// logging extension switches errors and critical lines together).
absl::Status ConfigureLogging(const LoggingOptions& options);

}  // namespace coalesce

#endif  // COALESCE_SERVER_LOGGING_H_
