#include "server/json_log_formatter.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/client_text.h"

namespace coalesce {
namespace {

// Length of the valid UTF-8 sequence at the start of `s`, or 0 if it does not start with one
// (overlong forms, surrogates and code points past U+10FFFF are invalid, as in RFC 3629).
size_t Utf8SequenceLength(absl::string_view s) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  auto continuation = [&](size_t i, unsigned char low = 0x80, unsigned char high = 0xBF) {
    return i < s.size() && byte(i) >= low && byte(i) <= high;
  };
  unsigned char b = byte(0);
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) return continuation(1) ? 2 : 0;
  if (b >= 0xE0 && b <= 0xEF) {
    unsigned char low = b == 0xE0 ? 0xA0 : 0x80;
    unsigned char high = b == 0xED ? 0x9F : 0xBF;
    return continuation(1, low, high) && continuation(2) ? 3 : 0;
  }
  if (b >= 0xF0 && b <= 0xF4) {
    unsigned char low = b == 0xF0 ? 0x90 : 0x80;
    unsigned char high = b == 0xF4 ? 0x8F : 0xBF;
    return continuation(1, low, high) && continuation(2) && continuation(3) ? 4 : 0;
  }
  return 0;
}

}  // namespace

void AppendJsonString(absl::string_view text, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t i = 0;
  while (i < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      size_t length = Utf8SequenceLength(text.substr(i));
      size_t line_break_length = 0;
      if (length == 0) {
        out->append("\\ufffd");
        ++i;
      } else if (uint32_t code = NonAsciiLineBreak(text.substr(i), &line_break_length)) {
        // Valid JSON as they are, but they end a line for some readers (NEL; U+2028 and U+2029
        // for JavaScript before ES2019 and Python's splitlines()).
        absl::StrAppend(out, "\\u", absl::Hex(code, absl::kZeroPad4));
        i += line_break_length;
      } else {
        out->append(text.data() + i, length);
        i += length;
      }
      continue;
    }
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\b': out->append("\\b"); break;
      case '\f': out->append("\\f"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 0xf]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
  out->push_back('"');
}

void JsonLogFormatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
  std::string line = "{\"time\":\"";
  line += absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromChrono(msg.time), absl::UTCTimeZone());
  line += "\",\"level\":";
  spdlog::string_view_t level = spdlog::level::to_string_view(msg.level);
  AppendJsonString(absl::string_view(level.data(), level.size()), &line);
  line += ",\"logger\":";
  AppendJsonString(msg.logger_name.size() == 0
                       ? absl::string_view("coalesce")
                       : absl::string_view(msg.logger_name.data(), msg.logger_name.size()),
                   &line);
  if (!msg.source.empty()) {
    line += ",\"source\":";
    AppendJsonString(absl::StrCat(msg.source.filename, ":", msg.source.line), &line);
  }
  line += ",\"msg\":";
  AppendJsonString(absl::string_view(msg.payload.data(), msg.payload.size()), &line);
  line += "}\n";
  dest.append(line.data(), line.data() + line.size());
}

std::unique_ptr<spdlog::formatter> JsonLogFormatter::clone() const {
  return std::make_unique<JsonLogFormatter>();
}

}  // namespace coalesce
