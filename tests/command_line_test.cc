// Every program a user runs, as a script sees it: `--help` prints the usage text and exits 0; an
// unknown flag, an unparsable value or a stray argument exits 2 with one line on stderr naming
// the program and the problem. Each case runs the real binary; nothing binds a port.

#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/binary_run.h"

namespace coalesce {
namespace {

struct Program {
  std::string name;  // As it names itself in an error line.
  std::string path;
  std::string int_flag;  // A flag of the program that takes an integer.
};

void PrintTo(const Program& program, std::ostream* os) { *os << program.name; }

std::vector<Program> Programs() {
  return {
      {"coalesce-server", COALESCE_SERVER_BINARY, "workers"},
      {"coalesce-client", COALESCE_CLIENT_BINARY, "batch"},
      {"coalesce-bench", COALESCE_BENCH_BINARY, "threads"},
      {"coalesce-echo-server", COALESCE_ECHO_SERVER_BINARY, "max_message_mib"},
      {"coalesce-stress", COALESCE_STRESS_BINARY, "rounds"},
      {"coalesce-model-ceiling", COALESCE_MODEL_CEILING_BINARY, "workers"},
      {"coalesce-engine-bench", COALESCE_ENGINE_BENCH_BINARY, "copy_threads"},
      {"coalesce-poison-model", COALESCE_POISON_MODEL_BINARY, "width"},
  };
}

BinaryRun RunProgram(const Program& program, const std::string& args) {
  return RunBinary(program.path, args);
}

class CommandLineTest : public testing::TestWithParam<Program> {};

TEST_P(CommandLineTest, HelpPrintsUsageAndExitsZero) {
  const Program& program = GetParam();
  BinaryRun run = RunProgram(program, "--help");
  EXPECT_EQ(run.exit_status, 0) << run.out << run.err;
  // The usage text lists the program's own flags.
  EXPECT_TRUE(absl::StrContains(run.out + run.err, "--" + program.int_flag))
      << run.out << run.err;
}

TEST_P(CommandLineTest, VersionNamesTheProgramAndExitsZero) {
  const Program& program = GetParam();
  BinaryRun run = RunProgram(program, "--version");
  EXPECT_EQ(run.exit_status, 0) << run.err;
  EXPECT_TRUE(absl::StartsWith(run.out, program.name + " ")) << run.out;
}

TEST_P(CommandLineTest, UnknownFlagExitsTwoWithOneLine) {
  const Program& program = GetParam();
  BinaryRun run = RunProgram(program, "--no_such_flag_at_all=1");
  EXPECT_EQ(run.exit_status, 2) << run.err;
  std::vector<std::string> lines = absl::StrSplit(run.err, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u) << run.err;
  EXPECT_TRUE(absl::StartsWith(lines[0], program.name + ": ")) << lines[0];
  EXPECT_TRUE(absl::StrContains(lines[0], "no_such_flag_at_all")) << lines[0];
  EXPECT_EQ(run.out, "");
}

TEST_P(CommandLineTest, UnparsableValueExitsTwoNamingTheFlag) {
  const Program& program = GetParam();
  BinaryRun run = RunProgram(program, absl::StrCat("--", program.int_flag, "=many"));
  EXPECT_EQ(run.exit_status, 2) << run.err;
  std::vector<std::string> lines = absl::StrSplit(run.err, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u) << run.err;
  EXPECT_TRUE(absl::StrContains(lines[0], program.int_flag)) << lines[0];
}

TEST_P(CommandLineTest, StrayArgumentExitsTwo) {
  BinaryRun run = RunProgram(GetParam(), "stray");
  EXPECT_EQ(run.exit_status, 2) << run.err;
  EXPECT_TRUE(absl::StrContains(run.err, "'stray'")) << run.err;
}

INSTANTIATE_TEST_SUITE_P(EveryProgram, CommandLineTest, testing::ValuesIn(Programs()),
                         [](const testing::TestParamInfo<Program>& info) {
                           std::string name = info.param.name;
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace coalesce
