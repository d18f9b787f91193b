#ifndef COALESCE_COMMON_FLAG_PARSING_H_
#define COALESCE_COMMON_FLAG_PARSING_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace coalesce {

// Exit status for a command line that is wrong (unknown flag, unparsable or invalid value,
// unexpected argument), as opposed to 1 for a failure once the flags are valid.
inline constexpr int kUsageErrorExit = 2;

// Parses `argv` with abseil (flag files, --help and all), with these changes for operators:
//  - `usage` (what the program does, and an example) heads --help, which lists every flag the
//    program defines (abseil's default lists only those of a file named after the binary, so
//    most programs listed none), and abseil's own flags only under --helpfull;
//  - `--check-config` is accepted as a spelling of `--check_config`;
//  - an error exits with kUsageErrorExit after one line on stderr, "<program>: <first error>",
//    instead of abseil's exit status 1 (which would read as a runtime failure) and its list.
//  - --version prints "<program> <project version>";
//  - a usage flag (--help, --helpfull, --version, ...) prints what abseil prints and exits 0
//    (abseil exits 1 after help).
// Positional arguments are an error too. Every program a user runs parses its flags here.
//
// Call once, from main(), before other threads start: it redirects stderr while abseil parses.
void ParseFlagsOrExit(int argc, char** argv, const std::string& program,
                      absl::string_view usage);

// Prints "<program>: <message>" on stderr and exits with kUsageErrorExit.
[[noreturn]] void ExitWithUsageError(const std::string& program, const std::string& message);

}  // namespace coalesce

#endif  // COALESCE_COMMON_FLAG_PARSING_H_
