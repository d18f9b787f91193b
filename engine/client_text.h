#ifndef COALESCE_ENGINE_CLIENT_TEXT_H_
#define COALESCE_ENGINE_CLIENT_TEXT_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace coalesce {

// Client-supplied text quoted in error messages and log lines.
//
// A request may carry a model, tensor, parameter or shared-memory region name, or a version
// string, of any length and holding any character the protocol allows. Quoted whole, a 1 MB name
// makes a status message that a client with gRPC's default metadata limit (8 KiB) cannot receive,
// so it sees RESOURCE_EXHAUSTED instead of the real error; a newline in it forges a line in the
// text log. Every such string passes through ClientText() before it joins a message.

// Bytes of client text quoted before it is cut.
inline constexpr size_t kMaxClientTextBytes = 128;

// Bytes of a whole message that LogText() keeps.
inline constexpr size_t kMaxLogTextBytes = 4096;

// `text` fit to quote: its first kMaxClientTextBytes bytes (cut at a UTF-8 character boundary)
// followed by "...(N bytes)" with N its full size, if it is longer; then with backslashes and
// line-breaking or control characters escaped (\n, \r, \t, \\, \xNN for the other C0 controls
// and DEL, \uNNNN for C1 controls and U+2028/U+2029). Other text, UTF-8 included, is unchanged,
// so an ordinary name reads as it was sent. At most about 4 x kMaxClientTextBytes bytes. Pure.
std::string ClientText(absl::string_view text);

// A whole message bound for a log line that may quote client text nobody bounded (a status from
// another layer, say): escaped as ClientText() escapes, and cut past `max_bytes` the same way.
std::string LogText(absl::string_view text, size_t max_bytes = kMaxLogTextBytes);

// `text` cut past `max_bytes` as ClientText() cuts it, not escaped: for messages that keep their
// line breaks (status messages sent to clients).
std::string TruncateText(absl::string_view text, size_t max_bytes);

// If `text` starts with a character that is no ASCII control but that some readers of logs take
// for a line break (a C1 control, U+0080..U+009F, NEL among them; U+2028; U+2029), its code point,
// with `*length` set to the bytes of its UTF-8 form; 0 otherwise. For escapers (ClientText(),
// the JSON log formatter).
uint32_t NonAsciiLineBreak(absl::string_view text, size_t* length);

}  // namespace coalesce

#endif  // COALESCE_ENGINE_CLIENT_TEXT_H_
