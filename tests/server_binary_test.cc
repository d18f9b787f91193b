// The real coalesce-server binary's command line: exit status 2 and one stderr line for a wrong
// one, and --check-config's report and status. Nothing here binds a port.
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "tests/binary_run.h"
#include "tests/test_certificates.h"

namespace coalesce {
namespace {

// Runs coalesce-server with `args` (no shell quoting needed: tests pass plain words), after the
// shell commands `before`.
BinaryRun RunServer(const std::vector<std::string>& args, const std::string& before = "") {
  return RunBinary(COALESCE_SERVER_BINARY, absl::StrJoin(args, " "), before);
}

std::string WriteTemp(const std::string& contents) {
  char path[] = "/tmp/coalesce-binary-test-XXXXXX";
  int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << contents;
  return path;
}

// A wrong command line exits 2 with exactly `line` on stderr (and nothing on stdout).
void ExpectUsageError(const std::vector<std::string>& args, const std::string& line) {
  BinaryRun run = RunServer(args);
  EXPECT_EQ(run.exit_status, 2) << absl::StrJoin(args, " ") << "\n" << run.err;
  EXPECT_EQ(run.err, absl::StrCat("coalesce-server: ", line, "\n")) << absl::StrJoin(args, " ");
  EXPECT_EQ(run.out, "") << absl::StrJoin(args, " ");
}

TEST(ServerBinaryTest, InvalidValueExitsTwoWithOneLine) {
  ExpectUsageError({"--workers=0"}, "--workers must be >= 1, got 0");
  ExpectUsageError({"--batch_policy=lifo"},
                   "--batch_policy must be one of deadline, fixed; got 'lifo'");
  ExpectUsageError({"--log_format=xml"}, "--log_format must be text or json, got 'xml'");
  ExpectUsageError({"--drain_timeout=-1s"},
                   "--drain_timeout must be a finite duration >= 0 (like 30s), got -1s");
  ExpectUsageError({"--grpc_address=8001"},
                   "--grpc_address must be host:port with a port in 0..65535, got '8001'");
  ExpectUsageError({"--priority_levels=2", "--default_priority=3"},
                   "--default_priority must be in 1..--priority_levels (2), got 3");
  ExpectUsageError({"--grpc_max_connection_idle=0s"},
                   "--grpc_max_connection_idle must be a positive duration or inf (like 5m), got 0");
  ExpectUsageError({"--grpc_keepalive_timeout=inf"},
                   "--grpc_keepalive_timeout must be a positive duration (like 5m), got inf");
  ExpectUsageError({"--max_pending_per_stream=0"}, "--max_pending_per_stream must be >= 1, got 0");
}

TEST(ServerBinaryTest, UnknownFlagUnparsableValueAndStrayArgumentExitTwoWithOneLine) {
  ExpectUsageError({"--wrkers=1"}, "Unknown command line flag 'wrkers'");
  ExpectUsageError({"--workers=many"}, "Illegal value 'many' specified for flag 'workers'");
  ExpectUsageError({"serve"}, "unexpected argument 'serve' (flags are written --name=value)");
}

TEST(ServerBinaryTest, TlsFlagsThatDoNotGoTogetherExitTwo) {
  ExpectUsageError({"--grpc_tls_cert=/tmp/x.pem"},
                   "--grpc_tls_cert needs --grpc_tls_key (its private key), got none");
  ExpectUsageError({"--grpc_tls_client_ca=/tmp/ca.pem"},
                   "--grpc_tls_client_ca (mutual TLS) needs --grpc_tls_cert and --grpc_tls_key, "
                   "got neither");
}

TEST(ServerBinaryTest, CheckConfigReportsEachCheckAndExitsZero) {
  BinaryRun run = RunServer({"--check-config", "--backend=echo", "--max_batch_size=16"});
  EXPECT_EQ(run.exit_status, 0) << run.out << run.err;
  EXPECT_EQ(run.out,
            "ok    flags: all values valid\n"
            "ok    tls: off (plaintext)\n"
            "ok    auth: off (no token required)\n"
            "ok    model: demo version 1: pytorch_libtorch on host memcpy, max_batch_size 16, 2 "
            "workers x 1 batch\n"
            "coalesce-server: configuration ok\n");
}

TEST(ServerBinaryTest, CheckConfigRefusesADeeplyNestedConfigNamingTheFileAndTheBound) {
  char dir[] = "/tmp/coalesce-binary-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::filesystem::create_directories(std::filesystem::path(dir) / "nested" / "1");
  // Unknown fields nested 100,000 deep: the text-format parser would recurse once per level.
  std::string config = "max_batch_size: 4\n";
  for (int i = 0; i < 100000; ++i) config += "a {";
  for (int i = 0; i < 100000; ++i) config += "}";
  std::ofstream(std::filesystem::path(dir) / "nested" / "config.pbtxt") << config;
  BinaryRun run = RunServer({"--check-config", absl::StrCat("--model_repository=", dir)});
  EXPECT_EQ(run.exit_status, 1) << run.out << run.err;
  EXPECT_NE(run.out.find("FAIL  model: nested is unavailable: failed to load 'nested', failed to "
                         "poll from model repository: nested/config.pbtxt: config.pbtxt of model "
                         "'nested': line 2:303: expected messages and lists nested at most 100 "
                         "deep, got deeper\n"),
            std::string::npos)
      << run.out;
  std::filesystem::remove_all(dir);
}

TEST(ServerBinaryTest, CheckConfigReadsTlsAndTokenFiles) {
  auto certs = MakeTestCertificates();
  ASSERT_TRUE(certs.ok()) << certs.status();
  std::string token = WriteTemp("token-for-check\n");
  BinaryRun run = RunServer({"--check_config", "--backend=echo",
                       "--grpc_tls_cert=" + certs->Path("server.crt"),
                       "--grpc_tls_key=" + certs->Path("server.key"),
                       "--grpc_tls_client_ca=" + certs->Path("ca.crt"),
                       "--auth_token_file=" + token});
  EXPECT_EQ(run.exit_status, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("ok    tls: mutual TLS (server certificate /CN=localhost"),
            std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("ok    auth: bearer token from '" + token + "'"), std::string::npos)
      << run.out;
  EXPECT_EQ(run.out.find("token-for-check"), std::string::npos) << run.out;
}

TEST(ServerBinaryTest, CheckConfigExitsOneOnUnreadableTlsFile) {
  BinaryRun run = RunServer({"--check-config", "--backend=echo", "--grpc_tls_cert=/nonexistent/cert.pem",
                       "--grpc_tls_key=/nonexistent/key.pem"});
  EXPECT_EQ(run.exit_status, 1) << run.out << run.err;
  EXPECT_NE(run.out.find("FAIL  tls: --grpc_tls_cert: cannot read '/nonexistent/cert.pem': No "
                         "such file or directory\n"),
            std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("coalesce-server: configuration has 1 problem(s)\n"), std::string::npos)
      << run.out;
}

TEST(ServerBinaryTest, CheckConfigExitsOneOnEmptyTokenFile) {
  std::string token = WriteTemp("\n");
  BinaryRun run = RunServer({"--check-config", "--backend=echo", "--auth_token_file=" + token});
  EXPECT_EQ(run.exit_status, 1) << run.out << run.err;
  EXPECT_NE(run.out.find("FAIL  auth: --auth_token_file: '" + token +
                         "' holds no token (1 bytes, all whitespace)\n"),
            std::string::npos)
      << run.out;
}

TEST(ServerBinaryTest, UnreadableTokenFileAtStartExitsOne) {
  BinaryRun run = RunServer({"--backend=echo", "--grpc_address=127.0.0.1:0",
                       "--metrics_address=127.0.0.1:0", "--auth_token_file=/nonexistent/token"});
  EXPECT_EQ(run.exit_status, 1) << run.out << run.err;
  EXPECT_EQ(run.err,
            "coalesce-server: NOT_FOUND: --auth_token_file: cannot read '/nonexistent/token': No "
            "such file or directory\n");
}

TEST(ServerBinaryTest, RaisesItsOpenFileLimitToTheHardLimitAtStart) {
  rlimit limit{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  // The test lowers the soft limit to 256 and expects it raised: a host whose hard limit is
  // 256 or less leaves nothing to raise, so there is nothing to check (not a pass either).
  if (limit.rlim_max <= 256) GTEST_SKIP() << "hard limit " << limit.rlim_max << ": no room";
  // Started with a soft limit of 256; the unreadable token file ends the run once it has begun.
  BinaryRun run = RunServer({"--backend=echo", "--grpc_address=127.0.0.1:0",
                             "--metrics_address=127.0.0.1:0",
                             "--auth_token_file=/nonexistent/token"},
                            "ulimit -S -n 256 && exec ");
  EXPECT_EQ(run.exit_status, 1) << run.out << run.err;
  EXPECT_NE(run.out.find(absl::StrCat("open file limit: ", limit.rlim_max, " (was 256, hard limit ",
                                      limit.rlim_max, ")")),
            std::string::npos)
      << run.out;
}

}  // namespace
}  // namespace coalesce
