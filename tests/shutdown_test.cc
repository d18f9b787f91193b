// The real coalesce-server binary stops within --shutdown_delay + --drain_timeout (+ 5 s) of
// SIGTERM whatever is stuck: here a TorchScript model whose forward pass runs for minutes with a
// request in flight. The process exits with status 3 and says what was stuck; the client gets
// an error instead of waiting.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "proto/inference.grpc.pb.h"
#include "tests/http_get.h"
#include "tests/torchscript_models.h"

namespace coalesce {
namespace {

namespace fs = std::filesystem;

constexpr char kConfig[] = R"pb(
  name: "slow"
  platform: "pytorch_libtorch"
  max_batch_size: 4
  input [ { name: "X" data_type: TYPE_FP32 dims: [ 2 ] } ]
  output [ { name: "Y" data_type: TYPE_FP32 dims: [ 2 ] } ]
)pb";
// Quick for the dry runs' and profiling's inputs (within [-1, 1]); a value over 100 makes it
// spin for minutes.
constexpr char kForward[] = R"(
def forward(self, x):
    if bool(x.max() > 100.0):
        i = 0
        while i < 2000000000:
            x = x + 0.0
            i += 1
    return x * 2.0
)";

std::string ReadAll(const fs::path& path) {
  std::ifstream file(path);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

// The port the server's log names for `what` ("gRPC on ... (port N)", "metrics on ... (port N)").
int LoggedPort(const std::string& log, const std::string& what) {
  std::smatch match;
  if (!std::regex_search(log, match, std::regex(what + " on \\S+ \\(port (\\d+)\\)"))) return 0;
  return std::stoi(match[1]);
}

TEST(ShutdownTest, SigtermEndsTheProcessInTimeWhileAForwardPassRunsOn) {
  const fs::path dir = fs::path(testing::TempDir()) / absl::StrCat("coalesce_shutdown_", getpid());
  fs::remove_all(dir);
  fs::create_directories(dir / "repo" / "slow" / "1");
  std::ofstream(dir / "repo" / "slow" / "config.pbtxt") << kConfig;
  ASSERT_TRUE(SaveTorchScript((dir / "repo" / "slow" / "1" / "model.pt").string(), kForward).ok());
  const fs::path log = dir / "log";

  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    freopen(log.c_str(), "w", stdout);
    dup2(fileno(stdout), fileno(stderr));
    const std::string repo = "--model_repository=" + (dir / "repo").string();
    execl(COALESCE_SERVER_BINARY, COALESCE_SERVER_BINARY, repo.c_str(),
          "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0", "--workers=1",
          "--drain_timeout=2s", "--shutdown_delay=0s", static_cast<char*>(nullptr));
    _exit(127);
  }
  // Kills the server if the test ends early.
  struct Reaper {
    pid_t pid;
    bool reaped = false;
    ~Reaper() {
      if (!reaped) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
      }
    }
  } reaper{pid};

  int grpc_port = 0, metrics_port = 0;
  for (absl::Time deadline = absl::Now() + absl::Seconds(120);
       grpc_port == 0 && absl::Now() < deadline; absl::SleepFor(absl::Milliseconds(50))) {
    const std::string text = ReadAll(log);
    grpc_port = LoggedPort(text, "gRPC");
    metrics_port = LoggedPort(text, "metrics");
    ASSERT_EQ(waitpid(pid, nullptr, WNOHANG), 0) << "server exited:\n" << text;
  }
  ASSERT_NE(grpc_port, 0) << ReadAll(log);

  // A request whose forward pass runs on.
  const std::string series = "coalesce_queue_duration_seconds_count{model=\"slow\",version=\"1\"}";
  const double queued_before = MetricValue(HttpGet(metrics_port, "/metrics"), series);
  auto stub = inference::GRPCInferenceService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", grpc_port), grpc::InsecureChannelCredentials()));
  grpc::Status answer;
  std::thread client([&] {
    inference::ModelInferRequest request;
    request.set_model_name("slow");
    auto* input = request.add_inputs();
    input->set_name("X");
    input->set_datatype("FP32");
    input->add_shape(1);
    input->add_shape(2);
    input->mutable_contents()->add_fp32_contents(1000);
    input->mutable_contents()->add_fp32_contents(1000);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    inference::ModelInferResponse response;
    answer = stub->ModelInfer(&context, request, &response);
  });
  // Its batch has left the queue for the model.
  for (absl::Time deadline = absl::Now() + absl::Seconds(60);
       MetricValue(HttpGet(metrics_port, "/metrics"), series) <= queued_before &&
       absl::Now() < deadline;
       absl::SleepFor(absl::Milliseconds(20))) {
  }

  const absl::Time signalled = absl::Now();
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  int status = 0;
  // The bound is 0 s + 2 s + 5 s; 20 s is generous.
  while (waitpid(pid, &status, WNOHANG) == 0 && absl::Now() - signalled < absl::Seconds(20)) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  const absl::Duration took = absl::Now() - signalled;
  ASSERT_LT(took, absl::Seconds(20)) << "still running after SIGTERM:\n" << ReadAll(log);
  reaper.reaped = true;
  client.join();

  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 3) << ReadAll(log);
  EXPECT_FALSE(answer.ok());
  const std::string text = ReadAll(log);
  EXPECT_NE(text.find("after the stop signal; exiting with status 3"), std::string::npos) << text;
  EXPECT_NE(text.find("1 inference call(s) in flight"), std::string::npos) << text;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace coalesce
