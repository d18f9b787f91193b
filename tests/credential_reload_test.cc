// The real coalesce-server binary re-reads its TLS certificates and token file on SIGHUP, and
// when the files change: new clients get the new ones, connections already open keep working, a
// file that does not validate leaves the old one serving and the log says why (once per
// change), and SIGHUP never ends the process.
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "proto/inference.grpc.pb.h"
#include "tests/test_certificates.h"

namespace coalesce {
namespace {

namespace fs = std::filesystem;

// gRPC re-reads the server's private copies every second (RotatingTlsCredentials).
constexpr absl::Duration kRefresh = absl::Seconds(1);

std::string ReadAll(const fs::path& path) {
  std::ifstream file(path);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

// Replaces `path` at once, as an operator's tooling should.
void WriteFile(const fs::path& path, const std::string& contents) {
  const fs::path temporary = path.string() + ".tmp";
  std::ofstream(temporary) << contents;
  fs::rename(temporary, path);
}

size_t Count(const std::string& text, const std::string& what) {
  size_t count = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
    ++count;
  }
  return count;
}

// A coalesce-server process with the echo model, TLS and a token, its output in a log file.
// Killed if still running when destroyed.
class ServerProcess {
 public:
  ServerProcess(const fs::path& dir, const std::vector<std::string>& flags) : log_(dir / "log") {
    std::vector<std::string> args = {COALESCE_SERVER_BINARY, "--backend=echo",
                                     "--grpc_address=127.0.0.1:0",
                                     "--metrics_address=127.0.0.1:0"};
    args.insert(args.end(), flags.begin(), flags.end());
    pid_ = fork();
    if (pid_ == 0) {
      freopen(log_.c_str(), "w", stdout);
      dup2(fileno(stdout), fileno(stderr));
      std::vector<char*> argv;
      for (std::string& arg : args) argv.push_back(arg.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }
  ~ServerProcess() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  pid_t pid() const { return pid_; }
  std::string Log() const { return ReadAll(log_); }
  bool Running() { return !reaped_ && waitpid(pid_, nullptr, WNOHANG) == 0; }

  // Waits until the log holds `text` at least `count` times; false if the process ends or 60 s
  // pass first.
  bool AwaitLog(const std::string& text, size_t count = 1) {
    for (absl::Time deadline = absl::Now() + absl::Seconds(60); absl::Now() < deadline;
         absl::SleepFor(absl::Milliseconds(20))) {
      if (Count(Log(), text) >= count) return true;
      if (!Running()) return false;
    }
    return false;
  }

  // The gRPC port the log names once serving; 0 if it never serves.
  int AwaitGrpcPort() {
    if (!AwaitLog("serving gRPC on")) return 0;
    std::smatch match;
    const std::string log = Log();
    if (!std::regex_search(log, match, std::regex("gRPC on \\S+ \\(port (\\d+)\\)"))) return 0;
    return std::stoi(match[1]);
  }

  // SIGTERM; the exit status, or -1 if it is still running 30 s later.
  int Stop() {
    kill(pid_, SIGTERM);
    int status = 0;
    for (absl::Time deadline = absl::Now() + absl::Seconds(30); absl::Now() < deadline;
         absl::SleepFor(absl::Milliseconds(20))) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        reaped_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
    }
    return -1;
  }

 private:
  fs::path log_;
  pid_t pid_ = -1;
  bool reaped_ = false;
};

class CredentialReloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto certs = MakeTestCertificates();
    ASSERT_TRUE(certs.ok()) << certs.status();
    certs_ = *std::move(certs);
    dir_ = certs_.dir;
    // The files the flags name, which the test replaces as an operator would.
    WriteFile(cert_file(), certs_.server_cert);
    WriteFile(key_file(), certs_.server_key);
    WriteFile(token_file(), "first-token\n");
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path cert_file() const { return dir_ / "live.crt"; }
  fs::path key_file() const { return dir_ / "live.key"; }
  fs::path token_file() const { return dir_ / "live.token"; }

  // `check_interval`: --credential_check_interval; 0 (off) for the SIGHUP tests, so that what
  // reloads is the signal.
  std::unique_ptr<ServerProcess> StartServer(const std::string& check_interval = "0") {
    auto server = std::make_unique<ServerProcess>(
        dir_, std::vector<std::string>{"--grpc_tls_cert=" + cert_file().string(),
                                       "--grpc_tls_key=" + key_file().string(),
                                       "--auth_token_file=" + token_file().string(),
                                       "--credential_check_interval=" + check_interval});
    port_ = server->AwaitGrpcPort();
    EXPECT_NE(port_, 0) << server->Log();
    return server;
  }

  // A channel of its own (no connection shared with another channel) that trusts `ca` only.
  std::shared_ptr<grpc::Channel> Channel(const std::string& ca) const {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = ca;
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port_), grpc::SslCredentials(tls),
                                     args);
  }

  // ServerMetadata with `token`: needs both the TLS handshake and the token.
  static grpc::Status Call(const std::shared_ptr<grpc::Channel>& channel,
                           const std::string& token) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    context.AddMetadata("authorization", "Bearer " + token);
    inference::ServerMetadataResponse response;
    return inference::GRPCInferenceService::NewStub(channel)->ServerMetadata(&context, {},
                                                                             &response);
  }

  // Calls through new channels until one is served; the last status after 30 s otherwise.
  grpc::Status AwaitServed(const std::string& ca, const std::string& token) const {
    grpc::Status status;
    for (absl::Time deadline = absl::Now() + absl::Seconds(30); absl::Now() < deadline;
         absl::SleepFor(absl::Milliseconds(50))) {
      status = Call(Channel(ca), token);
      if (status.ok()) break;
    }
    return status;
  }

  // Replaces the certificate, key and token files with the other CA's certificate and
  // "second-token".
  void RotateFiles() {
    WriteFile(cert_file(), certs_.other_server_cert);
    WriteFile(key_file(), certs_.other_server_key);
    WriteFile(token_file(), "second-token\n");
  }

  // After RotateFiles() and the reload: new clients need the new certificate and token, and
  // `open`, connected before, keeps working with the new token.
  void ExpectRotated(ServerProcess& server, const std::shared_ptr<grpc::Channel>& open) {
    EXPECT_NE(server.Log().find("TLS reloaded: TLS (server certificate /CN=localhost"),
              std::string::npos)
        << server.Log();
    // New clients: the new certificate (from the other CA) and the new token.
    grpc::Status rotated = AwaitServed(certs_.other_ca_cert, "second-token");
    EXPECT_TRUE(rotated.ok()) << rotated.error_message() << "\n" << server.Log();
    EXPECT_EQ(Call(Channel(certs_.ca_cert), "second-token").error_code(),
              grpc::StatusCode::UNAVAILABLE);
    EXPECT_EQ(Call(Channel(certs_.other_ca_cert), "first-token").error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    // The connection opened before: still up (it trusts the old CA only, so a new connection
    // would fail), and its calls need the new token.
    EXPECT_TRUE(Call(open, "second-token").ok());
    EXPECT_EQ(Call(open, "first-token").error_code(), grpc::StatusCode::UNAUTHENTICATED);

    EXPECT_EQ(server.Stop(), 0) << server.Log();
    const std::string log = server.Log();
    EXPECT_EQ(log.find("first-token"), std::string::npos) << log;
    EXPECT_EQ(log.find("second-token"), std::string::npos) << log;
  }

  TestCertificates certs_;
  fs::path dir_;
  int port_ = 0;
};

TEST_F(CredentialReloadTest, SighupRotatesCertificateAndTokenWhileOpenConnectionsKeepWorking) {
  std::unique_ptr<ServerProcess> server = StartServer();
  ASSERT_NE(port_, 0);
  auto open = Channel(certs_.ca_cert);
  ASSERT_TRUE(Call(open, "first-token").ok()) << server->Log();

  RotateFiles();
  ASSERT_EQ(kill(server->pid(), SIGHUP), 0);
  ASSERT_TRUE(server->AwaitLog("auth: token reloaded from")) << server->Log();
  EXPECT_NE(server->Log().find("received SIGHUP: reloading"), std::string::npos) << server->Log();
  ExpectRotated(*server, open);
}

TEST_F(CredentialReloadTest, ChangedFilesRotateCertificateAndTokenWithoutASignal) {
  std::unique_ptr<ServerProcess> server = StartServer("100ms");
  ASSERT_NE(port_, 0);
  auto open = Channel(certs_.ca_cert);
  ASSERT_TRUE(Call(open, "first-token").ok()) << server->Log();

  RotateFiles();
  ASSERT_TRUE(server->AwaitLog("auth: token reloaded from")) << server->Log();
  EXPECT_NE(server->Log().find("TLS or token file changed: reloading"), std::string::npos)
      << server->Log();
  ExpectRotated(*server, open);
}

TEST_F(CredentialReloadTest, AChangedFileThatDoesNotValidateIsKeptOutAndLoggedOncePerChange) {
  std::unique_ptr<ServerProcess> server = StartServer("100ms");
  ASSERT_NE(port_, 0);

  WriteFile(cert_file(), "-----BEGIN CERTIFICATE-----\nnot base64 at all\n");
  ASSERT_TRUE(server->AwaitLog("TLS not reloaded")) << server->Log();
  EXPECT_NE(server->Log().find("TLS certificate chain: expected one or more PEM certificates"),
            std::string::npos)
      << server->Log();
  // A second change (a new token) reloads again: the bad certificate is refused a second time,
  // not at every check in between (10 checks a second here).
  WriteFile(token_file(), "second-token\n");
  ASSERT_TRUE(server->AwaitLog("auth: token reloaded from", 2)) << server->Log();
  EXPECT_EQ(Count(server->Log(), "TLS not reloaded"), 2u) << server->Log();
  EXPECT_EQ(Count(server->Log(), "TLS or token file changed"), 2u) << server->Log();

  // New clients still get the old certificate, with the new token.
  grpc::Status kept = Call(Channel(certs_.ca_cert), "second-token");
  EXPECT_TRUE(kept.ok()) << kept.error_message() << "\n" << server->Log();
  EXPECT_EQ(server->Stop(), 0) << server->Log();
}

TEST_F(CredentialReloadTest, SighupWithFilesThatDoNotValidateKeepsTheOldOnesAndLogsWhy) {
  std::unique_ptr<ServerProcess> server = StartServer();
  ASSERT_NE(port_, 0);

  WriteFile(cert_file(), "-----BEGIN CERTIFICATE-----\nnot base64 at all\n");
  WriteFile(token_file(), " \n");
  ASSERT_EQ(kill(server->pid(), SIGHUP), 0);
  ASSERT_TRUE(server->AwaitLog("auth: token not reloaded")) << server->Log();
  EXPECT_NE(server->Log().find("TLS not reloaded, still serving TLS (server certificate "
                               "/CN=localhost"),
            std::string::npos)
      << server->Log();
  EXPECT_NE(server->Log().find("TLS certificate chain: expected one or more PEM certificates"),
            std::string::npos)
      << server->Log();
  EXPECT_NE(server->Log().find("auth: token not reloaded, the previous one stays: "
                               "--auth_token_file: '" + token_file().string() +
                               "' holds no token"),
            std::string::npos)
      << server->Log();

  // The new certificate with the old key: a key of another certificate.
  WriteFile(cert_file(), certs_.other_server_cert);
  WriteFile(token_file(), "first-token\n");
  ASSERT_EQ(kill(server->pid(), SIGHUP), 0);
  ASSERT_TRUE(server->AwaitLog("TLS not reloaded", 2)) << server->Log();
  EXPECT_NE(server->Log().find("TLS private key: does not belong to the certificate"),
            std::string::npos)
      << server->Log();

  // Nothing to await: what is checked is that nothing changes. gRPC re-reads its copies every
  // second; after two refreshes, new clients still get the old certificate and token.
  absl::SleepFor(2 * kRefresh + absl::Milliseconds(500));
  grpc::Status kept = Call(Channel(certs_.ca_cert), "first-token");
  EXPECT_TRUE(kept.ok()) << kept.error_message() << "\n" << server->Log();
  EXPECT_EQ(Call(Channel(certs_.other_ca_cert), "first-token").error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(server->Stop(), 0) << server->Log();
}

TEST_F(CredentialReloadTest, SighupWhileStartingDoesNotEndTheProcess) {
  ServerProcess server(dir_, {"--grpc_tls_cert=" + cert_file().string(),
                              "--grpc_tls_key=" + key_file().string(),
                              "--auth_token_file=" + token_file().string()});
  ASSERT_TRUE(server.AwaitLog("starting coalesce-server")) << server.Log();
  ASSERT_EQ(kill(server.pid(), SIGHUP), 0);
  ASSERT_EQ(kill(server.pid(), SIGHUP), 0);
  port_ = server.AwaitGrpcPort();
  ASSERT_NE(port_, 0) << server.Log();
  EXPECT_TRUE(Call(Channel(certs_.ca_cert), "first-token").ok()) << server.Log();
  EXPECT_TRUE(server.Running());
  EXPECT_EQ(server.Stop(), 0) << server.Log();
}

}  // namespace
}  // namespace coalesce
