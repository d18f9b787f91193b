#include "engine/client_text.h"

#include "absl/strings/str_cat.h"

namespace coalesce {
namespace {

// The size of the longest prefix of `text` of at most `max_bytes` bytes that does not end inside
// a UTF-8 character.
size_t CutAt(absl::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text.size();
  size_t cut = max_bytes;
  // The first byte left out is a continuation byte (10xxxxxx) when the cut splits a character;
  // a character has at most three of them.
  for (int i = 0; i < 3 && cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80; ++i) {
    --cut;
  }
  return cut;
}

void AppendEscaped(absl::string_view text, std::string* out) {
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      out->append("\\n");
    } else if (c == '\r') {
      out->append("\\r");
    } else if (c == '\t') {
      out->append("\\t");
    } else if (c == '\\') {
      out->append("\\\\");
    } else if (c < 0x20 || c == 0x7f) {
      absl::StrAppend(out, "\\x", absl::Hex(c, absl::kZeroPad2));
    } else if (size_t length = 0; uint32_t code = NonAsciiLineBreak(text.substr(i), &length)) {
      absl::StrAppend(out, "\\u", absl::Hex(code, absl::kZeroPad4));
      i += length - 1;
    } else {
      out->push_back(static_cast<char>(c));
    }
  }
}

std::string Bounded(absl::string_view text, size_t max_bytes, bool escape) {
  const size_t keep = CutAt(text, max_bytes);
  std::string out;
  if (escape) {
    AppendEscaped(text.substr(0, keep), &out);
  } else {
    out.assign(text.data(), keep);
  }
  if (keep < text.size()) absl::StrAppend(&out, "...(", text.size(), " bytes)");
  return out;
}

}  // namespace

uint32_t NonAsciiLineBreak(absl::string_view text, size_t* length) {
  auto byte = [&text](size_t i) -> unsigned {
    return i < text.size() ? static_cast<unsigned char>(text[i]) : 0;
  };
  if (byte(0) == 0xC2 && byte(1) >= 0x80 && byte(1) <= 0x9F) {
    *length = 2;
    return byte(1);
  }
  if (byte(0) == 0xE2 && byte(1) == 0x80 && (byte(2) == 0xA8 || byte(2) == 0xA9)) {
    *length = 3;
    return 0x2000 + (byte(2) - 0x80);
  }
  return 0;
}

std::string ClientText(absl::string_view text) {
  return Bounded(text, kMaxClientTextBytes, /*escape=*/true);
}

std::string LogText(absl::string_view text, size_t max_bytes) {
  return Bounded(text, max_bytes, /*escape=*/true);
}

std::string TruncateText(absl::string_view text, size_t max_bytes) {
  return Bounded(text, max_bytes, /*escape=*/false);
}

}  // namespace coalesce
