#include "common/flag_parsing.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace coalesce {
namespace {

// Abseil's ParseCommandLine() reports each bad flag as "ERROR: ..." on stderr and then calls
// std::exit(1); it has no way to return errors in this abseil (20220623). So stderr goes to a
// temporary file while it parses, and an atexit handler, registered just before, turns an exit
// that follows such a report into the usage-error exit. Both are process-wide by nature.
std::FILE* captured_stderr = nullptr;
int saved_stderr = -1;
std::string* program_name = nullptr;

// Puts stderr back and returns what was written to it meanwhile.
std::string RestoreStderr() {
  std::cerr.flush();
  std::fflush(stderr);
  std::string text;
  if (captured_stderr == nullptr) return text;
  std::fflush(captured_stderr);
  dup2(saved_stderr, STDERR_FILENO);
  close(saved_stderr);
  std::rewind(captured_stderr);
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), captured_stderr)) > 0) text.append(buffer, n);
  std::fclose(captured_stderr);
  captured_stderr = nullptr;
  return text;
}

// The first "ERROR: " line of `text` without its prefix, or "" if there is none.
std::string FirstError(const std::string& text) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    absl::string_view line(text.data() + start, end - start);
    if (absl::ConsumePrefix(&line, "ERROR: ")) return std::string(line);
    start = end + 1;
  }
  return "";
}

void OnExitWhileParsing() {
  if (captured_stderr == nullptr) return;
  std::string text = RestoreStderr();
  std::string error = FirstError(text);
  if (error.empty()) {
    // An exit with no error reported: a usage flag (--help, --helpfull, --version, ...) was
    // answered. Abseil exits 1 after help, which scripts read as a failure; asking for help
    // succeeded, so the exit is 0.
    std::fputs(text.c_str(), stderr);
    std::cout.flush();
    std::fflush(stdout);
    std::fflush(stderr);
    std::_Exit(0);
  }
  std::fprintf(stderr, "%s: %s\n", program_name->c_str(), error.c_str());
  std::fflush(stderr);
  std::_Exit(kUsageErrorExit);
}

}  // namespace

void ExitWithUsageError(const std::string& program, const std::string& message) {
  std::fprintf(stderr, "%s: %s\n", program.c_str(), message.c_str());
  std::fflush(stderr);
  std::exit(kUsageErrorExit);
}

void ParseFlagsOrExit(int argc, char** argv, const std::string& program,
                      absl::string_view usage) {
  program_name = new std::string(program);
  absl::SetProgramUsageMessage(usage);
  absl::FlagsUsageConfig config;
  config.contains_help_flags = [](absl::string_view file) {
    return !absl::StrContains(file, "absl/flags/");
  };
  config.contains_helpshort_flags = config.contains_help_flags;
  config.version_string = [] { return absl::StrCat(*program_name, " ", COALESCE_VERSION, "\n"); };
  absl::SetFlagsUsageConfig(config);

  std::vector<char*> args(argv, argv + argc);
  static char kCheckConfig[] = "--check_config";
  for (char*& arg : args) {
    if (std::strcmp(arg, "--check-config") == 0) arg = kCheckConfig;
  }

  std::cerr.flush();
  std::fflush(stderr);
  captured_stderr = std::tmpfile();
  if (captured_stderr != nullptr) {
    saved_stderr = dup(STDERR_FILENO);
    dup2(fileno(captured_stderr), STDERR_FILENO);
    std::atexit(OnExitWhileParsing);
  }
  std::vector<char*> positional = absl::ParseCommandLine(static_cast<int>(args.size()),
                                                         args.data());
  std::fputs(RestoreStderr().c_str(), stderr);
  if (positional.size() > 1) {
    ExitWithUsageError(program, absl::StrCat("unexpected argument '", positional[1],
                                             "' (flags are written --name=value)"));
  }
}

}  // namespace coalesce
