#ifndef COALESCE_SERVER_JSON_LOG_FORMATTER_H_
#define COALESCE_SERVER_JSON_LOG_FORMATTER_H_

#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "spdlog/formatter.h"

namespace coalesce {

// Formats each spdlog record as one JSON object on one line, for log collectors that parse
// JSON (Kubernetes, journald exporters, Loki, Cloud Logging):
//
//   {"time":"2026-11-26T00:15:02.123Z","level":"info","logger":"coalesce","msg":"stopped"}
//
// time is ISO-8601 in UTC with milliseconds; level is spdlog's name ("trace" .. "critical");
// "source" ("file.cc:42") is added when the record carries a source location. Strings are
// escaped per RFC 8259, C1 controls and U+2028/U+2029 too (some readers break lines at them),
// and bytes that are not valid UTF-8 become U+FFFD, so every line parses as one line whatever a
// message contains.
//
// Thread-safety: as every spdlog formatter, used by one sink under that sink's lock; clone()
// makes independent copies.
class JsonLogFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override;
};

// Appends `text` to `out` as a JSON string literal, quotes included (see JsonLogFormatter).
void AppendJsonString(absl::string_view text, std::string* out);

}  // namespace coalesce

#endif  // COALESCE_SERVER_JSON_LOG_FORMATTER_H_
