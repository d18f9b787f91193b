#ifndef COALESCE_SERVER_FLAG_PARSING_H_
#define COALESCE_SERVER_FLAG_PARSING_H_

#include <string>
#include <vector>

namespace coalesce {

// Exit status for a command line that is wrong (unknown flag, unparsable or invalid value,
// unexpected argument), as opposed to 1 for a failure once the flags are valid.
inline constexpr int kUsageErrorExit = 2;

// Parses `argv` with abseil (flag files, --help and all), with two changes for operators:
//  - `--check-config` is accepted as a spelling of `--check_config`;
//  - an error exits with kUsageErrorExit after one line on stderr, "<program>: <first error>",
//    instead of abseil's exit status 1 (which would read as a runtime failure) and its list.
// Positional arguments are an error too. --help and friends behave as abseil's.
//
// Call once, from main(), before other threads start: it redirects stderr while abseil parses.
void ParseFlagsOrExit(int argc, char** argv, const std::string& program);

// Prints "<program>: <message>" on stderr and exits with kUsageErrorExit.
[[noreturn]] void ExitWithUsageError(const std::string& program, const std::string& message);

}  // namespace coalesce

#endif  // COALESCE_SERVER_FLAG_PARSING_H_
