// The gRPC endpoint against clients that misbehave at the transport: bytes that are no request,
// clients that never read their answers, connections left idle or never completed. Real gRPC over loopback, the echo
// demo model; the non-reading client speaks HTTP/2 itself (bench/non_reading_client.h).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bench/non_reading_client.h"
#include "gtest/gtest.h"
#include "proto/inference.grpc.pb.h"
#include "tests/echo_test_server.h"
#include "tests/raw_calls.h"

namespace coalesce {
namespace {

using inference::GRPCInferenceService;
using stress::NonReadingClient;

constexpr char kModelInfer[] = "/inference.GRPCInferenceService/ModelInfer";
constexpr char kModelStreamInfer[] = "/inference.GRPCInferenceService/ModelStreamInfer";
// Rows per request of the non-reading tests: 16 rows of 32 KiB, a 512 KiB request and answer.
constexpr int64_t kRows = 16;
constexpr int64_t kRequestBytes = kRows * kEchoRowFloats * sizeof(float);
constexpr int kRequests = 512;

// This process's resident memory (the server runs in it), in bytes.
int64_t ResidentBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (!absl::StartsWith(line, "VmRSS:")) continue;
    std::vector<std::string> parts = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    int64_t kb = 0;
    if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &kb)) return kb << 10;
  }
  return -1;
}

class TransportTest : public ::testing::Test {
 protected:
  void TearDown() override {
    // Its calls would hold the drain until the timeout.
    slow_.reset();
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(5));
  }

  void Start(Server::Options options) {
    auto backend = EchoBackend::Create(DemoModel::Metadata(kRows));
    ASSERT_TRUE(backend.ok()) << backend.status();
    auto server = StartServerWith(*std::move(backend), std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(address(), grpc::InsecureChannelCredentials());
    stub_ = GRPCInferenceService::NewStub(channel_);
  }

  std::string address() const { return absl::StrCat("127.0.0.1:", server_->grpc_port()); }

  // An echo inference by a well-behaved client.
  grpc::Status Infer() {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    inference::ModelInferResponse response;
    return stub_->ModelInfer(&context, EchoRequest(1), &response);
  }

  // Requests of the demo model answered OK so far.
  int64_t Succeeded() {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    inference::ModelStatisticsRequest request;
    request.set_name("demo");
    inference::ModelStatisticsResponse response;
    if (!stub_->ModelStatistics(&context, request, &response).ok()) return -1;
    return response.model_stats(0).inference_stats().success().count();
  }

  // Waits until `count` requests have succeeded (in all, warm-up included).
  void AwaitSucceeded(int64_t count) {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (Succeeded() < count && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
    ASSERT_GE(Succeeded(), count);
  }

  // Connects `slow_`, a client that never reads, and sends kRequests requests of kRows rows as
  // unary calls or on one stream until the server takes no more (none within a second).
  void SendWithoutReading(bool on_stream) {
    auto client = NonReadingClient::Connect(address());
    ASSERT_TRUE(client.ok()) << client.status();
    slow_ = *std::move(client);
    if (on_stream) ASSERT_TRUE(slow_->OpenStream(kModelStreamInfer, absl::Seconds(5)));
    const std::string request = EchoRequest(kRows).SerializeAsString();
    for (int i = 0; i < kRequests; ++i) {
      const bool taken = on_stream ? slow_->SendOnStream(request, absl::Seconds(1))
                                   : slow_->Unary(kModelInfer, request, absl::Seconds(1));
      if (!taken) break;
    }
  }

  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<GRPCInferenceService::Stub> stub_;
  std::unique_ptr<NonReadingClient> slow_;
};

TEST_F(TransportTest, BytesThatAreNoRequestAreInvalidArgumentSayingSo) {
  Start({});
  grpc::ClientContext context;
  grpc::ByteBuffer response;
  grpc::Status status =
      RawUnaryCall(channel_, &context, "ModelInfer", BytesOf(kNotAProtobuf), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "request is not a valid ModelInferRequest: 6 bytes that do not parse as one");
  EXPECT_TRUE(Infer().ok());
}

// A client that sends requests on as many streams as the server allows and never reads an
// answer makes the connection hold at most max_concurrent_streams answers (the requests are
// freed once parsed); without the limit it held every request and answer it sent.
TEST_F(TransportTest, AClientThatNeverReadsUnaryAnswersHoldsAtMostItsStreamsWorth) {
  Server::Options options;
  options.connections.max_concurrent_streams = 32;
  Start(options);
  ASSERT_TRUE(Infer().ok());
  const int64_t before = ResidentBytes();
  SendWithoutReading(/*on_stream=*/false);
  EXPECT_EQ(slow_->max_concurrent_streams(), 32);
  AwaitSucceeded(1 + slow_->messages_sent());
  const int64_t growth = ResidentBytes() - before;
  // 32 answers of 512 KiB, with room for gRPC's and the allocator's own (and, under
  // AddressSanitizer, for its quarantine of freed memory and red zones; 499 MB without the limits).
#if defined(__SANITIZE_ADDRESS__)
  constexpr int64_t kBound = 32 * 2 * kRequestBytes + (160 << 20);
#else
  constexpr int64_t kBound = 32 * 2 * kRequestBytes + (64 << 20);
#endif
  EXPECT_LT(growth, kBound) << "sent " << slow_->messages_sent() << " requests";
  // The server answers others meanwhile.
  EXPECT_TRUE(Infer().ok());
}

// On one stream, the server reads at most max_pending_per_stream requests ahead of the answers
// written back; then flow control holds the client, which never reads, back.
TEST_F(TransportTest, AStreamThatNeverReadsItsAnswersIsHeldBackAndHoldsBoundedMemory) {
  Server::Options options;
  options.connections.max_pending_per_stream = 8;
  Start(options);
  ASSERT_TRUE(Infer().ok());
  const int64_t before = ResidentBytes();
  SendWithoutReading(/*on_stream=*/true);
  EXPECT_LT(slow_->messages_sent(), kRequests);
  AwaitSucceeded(1 + 8);
  const int64_t growth = ResidentBytes() - before;
  // 8 answers of 512 KiB, the requests in flow-control windows, and gRPC's and the allocator's
  // own.
  constexpr int64_t kBound = 8 * 2 * kRequestBytes + (64 << 20);
  EXPECT_LT(growth, kBound) << "sent " << slow_->messages_sent() << " requests";
  EXPECT_TRUE(Infer().ok());
}

// A client that connects and sends its HTTP/2 preface a byte at a time never completes the
// handshake: the server closes the connection at the handshake timeout.
TEST_F(TransportTest, AConnectionThatNeverCompletesItsHandshakeIsClosed) {
  Server::Options options;
  options.connections.handshake_timeout = absl::Milliseconds(300);
  Start(options);
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(server_->grpc_port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(send(fd, "PRI * HTTP", 10, MSG_NOSIGNAL), 10);
  // The server's own SETTINGS arrive at once; then it closes the connection (end of stream, or
  // a reset) well within the test's patience, where gRPC's default would hold it 120 s.
  bool closed = false;
  for (absl::Time deadline = absl::Now() + absl::Seconds(20); !closed && absl::Now() < deadline;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) != 1) continue;
    char buffer[4096];
    closed = recv(fd, buffer, sizeof(buffer), 0) <= 0;
  }
  close(fd);
  EXPECT_TRUE(closed);
  EXPECT_TRUE(Infer().ok());
}

TEST_F(TransportTest, AnIdleConnectionIsClosedAfterMaxConnectionIdle) {
  Server::Options options;
  options.connections.max_connection_idle = absl::Milliseconds(300);
  Start(options);
  ASSERT_TRUE(Infer().ok());
  ASSERT_EQ(channel_->GetState(false), GRPC_CHANNEL_READY);
  // The server's GOAWAY takes the channel out of READY; without it the channel stays there.
  EXPECT_TRUE(channel_->WaitForStateChange(
      GRPC_CHANNEL_READY, std::chrono::system_clock::now() + std::chrono::seconds(20)));
  EXPECT_NE(channel_->GetState(false), GRPC_CHANNEL_READY);
  // A new call reconnects.
  EXPECT_TRUE(Infer().ok());
}

}  // namespace
}  // namespace coalesce
