#ifndef COALESCE_TESTS_BINARY_RUN_H_
#define COALESCE_TESTS_BINARY_RUN_H_

// Runs a program to completion through the shell and captures what it printed: for tests of the
// real binaries' command lines and exit statuses.

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace coalesce {

struct BinaryRun {
  int exit_status = -1;  // 128 + the signal for a program a signal ended.
  std::string out;
  std::string err;
};

inline std::string ReadWholeFile(const std::string& path) {
  std::ifstream file(path);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

// Runs `path` with `args` (shell words, unquoted), after the shell commands `before`, with no
// input.
inline BinaryRun RunBinary(const std::string& path, const std::string& args,
                           const std::string& before = "") {
  char dir[] = "/tmp/coalesce-binary-run-XXXXXX";
  EXPECT_NE(mkdtemp(dir), nullptr);
  const std::string out = absl::StrCat(dir, "/out"), err = absl::StrCat(dir, "/err");
  const std::string command =
      absl::StrCat(before, "'", path, "' ", args, " >", out, " 2>", err, " </dev/null");
  const int status = std::system(command.c_str());
  BinaryRun run;
  run.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  run.out = ReadWholeFile(out);
  run.err = ReadWholeFile(err);
  return run;
}

}  // namespace coalesce

#endif  // COALESCE_TESTS_BINARY_RUN_H_
