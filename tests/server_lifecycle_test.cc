// The gRPC endpoint's limits and its shutdown, over loopback against the echo demo model:
// oversized messages, and what calls in flight and new calls see while the server drains.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "execution/echo_backend.h"
#include "gtest/gtest.h"
#include "proto/health.grpc.pb.h"
#include "proto/inference.grpc.pb.h"
#include "server/server.h"
#include "tests/echo_test_server.h"

namespace coalesce {
namespace {

using grpc::health::v1::HealthCheckResponse;
using inference::GRPCInferenceService;
using inference::ModelInferRequest;
using inference::ModelInferResponse;

// The echo demo model, whose next batch can be made to wait for a release.
class HoldingEchoBackend : public Backend {
 public:
  HoldingEchoBackend() : echo_(MakeEchoBackend()) {}
  const ModelMetadata& metadata() const override { return echo_->metadata(); }
  std::string DeviceDescription() const override { return "held memcpy"; }
  absl::Status Execute(int worker, int64_t rows, absl::Span<const char* const> inputs,
                       absl::Span<char* const> outputs) override {
    absl::Notification* release = hold_next_.exchange(nullptr);
    if (release != nullptr) {
      started_.Notify();
      release->WaitForNotification();
    }
    return echo_->Execute(worker, rows, inputs, outputs);
  }

  // The next batch waits for `release`; started() is notified when it begins waiting.
  void HoldNextBatch(absl::Notification* release) { hold_next_.store(release); }
  absl::Notification& started() { return started_; }

 private:
  std::unique_ptr<EchoBackend> echo_;
  std::atomic<absl::Notification*> hold_next_{nullptr};
  absl::Notification started_;
};

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  return context;
}

std::shared_ptr<grpc::Channel> Channel(const Server& server) {
  return grpc::CreateChannel(absl::StrCat("127.0.0.1:", server.grpc_port()),
                             grpc::InsecureChannelCredentials());
}

TEST(ServerLimitsTest, OversizedRequestIsResourceExhaustedAndServingGoesOn) {
  Server::Options options;
  options.max_message_bytes = 256 << 10;
  auto server = StartEchoServer(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = GRPCInferenceService::NewStub(Channel(**server));

  // Eight rows are a valid batch for the model, but 256 KiB of floats plus framing.
  ModelInferRequest big = EchoRequest(8);
  ASSERT_GT(big.ByteSizeLong(), 256u << 10);
  ModelInferResponse response;
  grpc::Status status = stub->ModelInfer(Context().get(), big, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(status.error_message().find(absl::StrCat(big.ByteSizeLong(), " vs. ", 256 << 10)),
            std::string::npos)
      << status.error_message();

  grpc::Status small = stub->ModelInfer(Context().get(), EchoRequest(2), &response);
  EXPECT_TRUE(small.ok()) << small.error_message();
  ASSERT_EQ(response.raw_output_contents_size(), 1);
  EXPECT_EQ(response.raw_output_contents(0).size(), 2 * kEchoRowFloats * sizeof(float));
  (*server)->Shutdown(absl::Seconds(5));
}

// A server with one call held in its model, and a health watch that reports when readiness
// changes.
class DrainTest : public ::testing::Test {
 protected:
  void Start(absl::Duration shutdown_delay) {
    auto backend = std::make_unique<HoldingEchoBackend>();
    backend_ = backend.get();
    Server::Options options;
    options.shutdown_delay = shutdown_delay;
    auto server = StartServerWith(std::move(backend), options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = Channel(*server_);
    stub_ = GRPCInferenceService::NewStub(channel_);

    watch_context_ = Context();
    watch_ = grpc::health::v1::Health::NewStub(channel_)->Watch(watch_context_.get(), {});
    ASSERT_EQ(NextHealth(), HealthCheckResponse::SERVING);

    backend_->HoldNextBatch(&release_);
    in_flight_request_ = EchoRequest(1, 7.0f);
    stub_->async()->ModelInfer(in_flight_context_.get(), &in_flight_request_,
                               &in_flight_response_, [this](grpc::Status status) {
                                 in_flight_status_ = status;
                                 in_flight_done_.Notify();
                               });
    backend_->started().WaitForNotification();
  }

  void TearDown() override {
    if (!release_.HasBeenNotified()) release_.Notify();
    if (watch_context_ != nullptr) watch_context_->TryCancel();
    if (shutdown_.joinable()) shutdown_.join();
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(5));
  }

  HealthCheckResponse::ServingStatus NextHealth() {
    HealthCheckResponse response;
    if (!watch_->Read(&response)) return HealthCheckResponse::UNKNOWN;
    return response.status();
  }

  void ShutdownInBackground(absl::Duration drain) {
    shutdown_ = std::thread([this, drain] { server_->Shutdown(drain); });
  }

  void ExpectInFlightCallCompletesAfterRelease() {
    if (!release_.HasBeenNotified()) release_.Notify();
    in_flight_done_.WaitForNotification();
    EXPECT_TRUE(in_flight_status_.ok()) << in_flight_status_.error_message();
    ASSERT_EQ(in_flight_response_.raw_output_contents_size(), 1);
    float first;
    std::memcpy(&first, in_flight_response_.raw_output_contents(0).data(), sizeof(float));
    EXPECT_EQ(first, 7.0f);
  }

  HoldingEchoBackend* backend_ = nullptr;
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<GRPCInferenceService::Stub> stub_;
  std::unique_ptr<grpc::ClientContext> watch_context_;
  std::unique_ptr<grpc::ClientReader<HealthCheckResponse>> watch_;
  absl::Notification release_;
  std::unique_ptr<grpc::ClientContext> in_flight_context_ = Context();
  ModelInferRequest in_flight_request_;
  ModelInferResponse in_flight_response_;
  grpc::Status in_flight_status_;
  absl::Notification in_flight_done_;
  std::thread shutdown_;
};

TEST_F(DrainTest, DuringShutdownDelayNewCallsGetUnavailableAndTheCallInFlightFinishes) {
  Start(/*shutdown_delay=*/absl::Seconds(2));
  ShutdownInBackground(absl::Seconds(30));
  ASSERT_EQ(NextHealth(), HealthCheckResponse::NOT_SERVING);

  ModelInferResponse response;
  grpc::Status late = stub_->ModelInfer(Context().get(), EchoRequest(1), &response);
  EXPECT_EQ(late.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(late.error_message(), "server is shutting down");

  ExpectInFlightCallCompletesAfterRelease();
  watch_context_->TryCancel();
  shutdown_.join();
}

TEST_F(DrainTest, WhileDrainingNewCallsGetUnavailableFromTheServiceOnOpenAndNewConnections) {
  Start(/*shutdown_delay=*/absl::ZeroDuration());
  ShutdownInBackground(absl::Seconds(30));
  ASSERT_EQ(NextHealth(), HealthCheckResponse::NOT_SERVING);

  // The held call keeps the drain going, and the listener open: gRPC's own shutdown (which can
  // answer a call that crosses its GOAWAY with CANCELLED) has not begun.
  ModelInferResponse response;
  grpc::Status on_open = stub_->ModelInfer(Context().get(), EchoRequest(1), &response);
  EXPECT_EQ(on_open.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(on_open.error_message(), "server is shutting down");
  auto fresh = GRPCInferenceService::NewStub(Channel(*server_));
  grpc::Status on_new = fresh->ModelInfer(Context().get(), EchoRequest(1), &response);
  EXPECT_EQ(on_new.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(on_new.error_message(), "server is shutting down");

  ExpectInFlightCallCompletesAfterRelease();
  watch_context_->TryCancel();
  shutdown_.join();
  // Closed: the client cannot connect, which it also reports as UNAVAILABLE.
  grpc::Status after = fresh->ModelInfer(Context().get(), EchoRequest(1), &response);
  EXPECT_EQ(after.error_code(), grpc::StatusCode::UNAVAILABLE) << after.error_message();
}

}  // namespace
}  // namespace coalesce
