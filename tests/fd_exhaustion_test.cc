// The real coalesce-server binary at its open-file limit. gRPC 1.51 stops accepting for good the
// first time accept() fails with EMFILE; coalesce notices that its listener no longer takes
// connections off the accept queue and exits with status 4, so that its supervisor starts a
// fresh process, instead of looking alive while every new client waits out its deadline. The
// server runs with a hard limit of 64 descriptors; 200 silent connections exhaust it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "proto/inference.grpc.pb.h"

namespace coalesce {
namespace {

namespace fs = std::filesystem;

std::string ReadAll(const fs::path& path) {
  std::ifstream file(path);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

int LoggedGrpcPort(const std::string& log) {
  std::smatch match;
  if (!std::regex_search(log, match, std::regex("gRPC on \\S+ \\(port (\\d+)\\)"))) return 0;
  return std::stoi(match[1]);
}

// A TCP connection to 127.0.0.1:`port` that sends nothing; -1 if it could not be opened.
int SilentConnection(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Whether ServerLive answers OK within `wait` on a new channel (a new connection).
bool ServedWithin(int port, absl::Duration wait) {
  auto stub = inference::GRPCInferenceService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       absl::ToChronoMilliseconds(wait));
  inference::ServerLiveRequest request;
  inference::ServerLiveResponse response;
  return stub->ServerLive(&context, request, &response).ok() && response.live();
}

TEST(FdExhaustionTest, AListenerThatStopsAcceptingEndsTheProcessForItsSupervisor) {
  const fs::path log = fs::path(testing::TempDir()) / absl::StrCat("coalesce_fds_", getpid());
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    freopen(log.c_str(), "w", stdout);
    dup2(fileno(stdout), fileno(stderr));
    rlimit limit{64, 64};
    setrlimit(RLIMIT_NOFILE, &limit);
    execl(COALESCE_SERVER_BINARY, COALESCE_SERVER_BINARY, "--backend=echo",
          "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
          "--grpc_handshake_timeout=1s", "--grpc_listener_check_interval=100ms",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
      }
    }
  } reaper{pid};

  int port = 0;
  for (absl::Time deadline = absl::Now() + absl::Seconds(60);
       port == 0 && absl::Now() < deadline; absl::SleepFor(absl::Milliseconds(50))) {
    port = LoggedGrpcPort(ReadAll(log));
    ASSERT_EQ(waitpid(pid, nullptr, WNOHANG), 0) << "server exited:\n" << ReadAll(log);
  }
  ASSERT_NE(port, 0) << ReadAll(log);
  ASSERT_TRUE(ServedWithin(port, absl::Seconds(10))) << ReadAll(log);

  // More connections than the server has descriptors; the kernel completes them all (backlog),
  // so the server meets EMFILE taking them off its listen queue.
  std::vector<int> silent;
  for (int i = 0; i < 200; ++i) {
    const int fd = SilentConnection(port);
    if (fd >= 0) silent.push_back(fd);
  }
  ASSERT_GT(silent.size(), 64u);

  // The listener hit EMFILE taking them off its queue and stopped; within 10 readings of 100 ms
  // the watch sees connections left waiting and the process exits 4. A server that kept
  // running here would never accept a new client (the bound is generous).
  int status = 0;
  const absl::Time start = absl::Now();
  while (waitpid(pid, &status, WNOHANG) == 0 && absl::Now() - start < absl::Seconds(30)) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  for (int fd : silent) close(fd);
  ASSERT_LT(absl::Now() - start, absl::Seconds(30))
      << "still running, not accepting, 30 s after the descriptors ran out\n"
      << ReadAll(log);
  reaper.pid = -1;
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 4) << ReadAll(log);
  EXPECT_NE(ReadAll(log).find("the listener has stopped accepting"), std::string::npos)
      << ReadAll(log);
  fs::remove(log);
}

}  // namespace
}  // namespace coalesce
