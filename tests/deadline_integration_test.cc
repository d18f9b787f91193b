// Deadlines, shedding and cancellation end to end: real gRPC over loopback against a server
// whose model is a slow fake that records every sample it runs.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "proto/inference.grpc.pb.h"
#include "server/server.h"
#include "tests/http_get.h"
#include "tests/test_server.h"

namespace coalesce {
namespace {

using inference::GRPCInferenceService;
using inference::ModelInferRequest;
using inference::ModelInferResponse;

// Long beside a loaded machine's scheduling stalls, so that the deadlines below (multiples of
// it) hold their meaning on a busy 2-core CI machine.
constexpr absl::Duration kBatchTime = absl::Milliseconds(200);

// Each sample is one float, its id; every batch takes kBatchTime and the ids it ran are
// recorded (profiling at start-up runs zeros: id 0, which no test uses). Can be made to hold its
// next batch until released.
class SlowCountingBackend : public Backend {
 public:
  SlowCountingBackend() {
    metadata_.name = "slow";
    metadata_.max_batch_size = 8;
    metadata_.inputs.push_back({"ID", DataType::kFp32, {1}});
    metadata_.outputs.push_back({"ID_OUT", DataType::kFp32, {1}});
  }
  const ModelMetadata& metadata() const override { return metadata_; }
  std::string DeviceDescription() const override { return "sleep"; }

  absl::Status Execute(int worker, int64_t rows, absl::Span<const char* const> inputs,
                       absl::Span<char* const> outputs) override {
    absl::Notification* hold = nullptr;
    {
      absl::MutexLock lock(&mu_);
      std::swap(hold, hold_next_);
      const float* ids = reinterpret_cast<const float*>(inputs[0]);
      for (int64_t r = 0; r < rows; ++r) seen_.insert(static_cast<int>(ids[r]));
    }
    if (hold != nullptr) {
      started_.Notify();
      hold->WaitForNotification();
    }
    absl::SleepFor(kBatchTime);
    std::memcpy(outputs[0], inputs[0], rows * sizeof(float));
    return absl::OkStatus();
  }

  // The next batch blocks until `release` is notified; started() is notified when it begins.
  void HoldNextBatch(absl::Notification* release) {
    absl::MutexLock lock(&mu_);
    hold_next_ = release;
  }
  absl::Notification& started() { return started_; }

  std::set<int> seen() {
    absl::MutexLock lock(&mu_);
    return seen_;
  }

 private:
  ModelMetadata metadata_;
  absl::Mutex mu_;
  std::set<int> seen_ ABSL_GUARDED_BY(mu_);
  absl::Notification* hold_next_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Notification started_;
};

class DeadlineIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto backend = std::make_unique<SlowCountingBackend>();
    backend_ = backend.get();
    ServedModel::Options model_options;
    model_options.num_workers = 1;
    auto server = StartLoopbackServer(std::move(backend), model_options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = GRPCInferenceService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_->grpc_port()), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(10));
  }

  // A request for sample `id` with a `timeout` parameter (microseconds; 0: none).
  static ModelInferRequest Request(int id, int64_t timeout_us) {
    ModelInferRequest request;
    request.set_model_name("slow");
    auto* input = request.add_inputs();
    input->set_name("ID");
    input->set_datatype("FP32");
    input->add_shape(1);
    input->add_shape(1);
    float value = static_cast<float>(id);
    request.add_raw_input_contents()->assign(reinterpret_cast<const char*>(&value), sizeof(value));
    if (timeout_us > 0) (*request.mutable_parameters())["timeout"].set_int64_param(timeout_us);
    return request;
  }

  grpc::Status Infer(int id, int64_t timeout_us, absl::Duration* took = nullptr) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    ModelInferResponse response;
    absl::Time start = absl::Now();
    grpc::Status status = stub_->ModelInfer(&context, Request(id, timeout_us), &response);
    if (took != nullptr) *took = absl::Now() - start;
    if (status.ok()) {
      float echoed;
      std::memcpy(&echoed, response.raw_output_contents(0).data(), sizeof(echoed));
      EXPECT_EQ(echoed, static_cast<float>(id));
    }
    return status;
  }

  double Metric(const std::string& name) {
    return MetricValue(HttpGet(server_->metrics_port(), "/metrics"),
                       absl::StrCat(name, "{model=\"slow\",version=\"1\"}"));
  }

  SlowCountingBackend* backend_ = nullptr;
  std::unique_ptr<Server> server_;
  std::unique_ptr<GRPCInferenceService::Stub> stub_;
};

TEST_F(DeadlineIntegrationTest, TightDeadlinesAreMetAndImpossibleOnesShedFast) {
  // Loose clients keep the single worker busy; tight ones (900 ms, room for the running batch
  // and their own) must all be met; impossible ones (100 ms, under one 200 ms batch) must be
  // answered DEADLINE_EXCEEDED before their deadline without running.
  std::vector<std::thread> threads;
  std::vector<grpc::Status> loose(12), tight(4), impossible(4);
  std::vector<absl::Duration> impossible_took(4);
  for (int i = 0; i < 12; ++i) {
    threads.emplace_back([&, i] { loose[i] = Infer(1000 + i, 10'000'000); });
  }
  absl::SleepFor(absl::Milliseconds(20));  // Let the loose load queue up first.
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] { tight[i] = Infer(2000 + i, 900'000); });
    threads.emplace_back([&, i] { impossible[i] = Infer(3000 + i, 100'000, &impossible_took[i]); });
  }
  for (auto& t : threads) t.join();

  for (const auto& s : loose) EXPECT_TRUE(s.ok()) << s.error_message();
  for (const auto& s : tight) EXPECT_TRUE(s.ok()) << s.error_message();
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(impossible[i].error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
    EXPECT_NE(impossible[i].error_message().find("cannot meet the deadline"), std::string::npos)
        << impossible[i].error_message();
    EXPECT_LT(impossible_took[i], absl::Milliseconds(100));  // Before its own deadline.
  }
  std::set<int> seen = backend_->seen();
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(seen.count(3000 + i), 0u) << "impossible request " << i << " ran";
    EXPECT_EQ(seen.count(2000 + i), 1u);
  }
  EXPECT_EQ(Metric("coalesce_deadline_missed_total"), 0);
  EXPECT_EQ(Metric("coalesce_shed_requests_total"), 4);
}

TEST_F(DeadlineIntegrationTest, CancelledCallsNeverReachTheBackend) {
  absl::Notification release;
  backend_->HoldNextBatch(&release);
  std::thread blocker([&] { EXPECT_TRUE(Infer(1, 0).ok()); });
  backend_->started().WaitForNotification();  // The worker is now busy with sample 1.

  // Four calls queue behind it; the clients cancel them.
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<ModelInferResponse> responses(4);
  std::vector<grpc::Status> statuses(4);
  absl::BlockingCounter answered(4);
  std::vector<ModelInferRequest> requests;
  for (int i = 0; i < 4; ++i) requests.push_back(Request(100 + i, 0));
  for (int i = 0; i < 4; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    stub_->async()->ModelInfer(contexts[i].get(), &requests[i], &responses[i],
                               [&, i](grpc::Status s) {
                                 statuses[i] = std::move(s);
                                 answered.DecrementCount();
                               });
  }
  absl::SleepFor(absl::Milliseconds(100));  // Let the calls reach the server's queue.
  for (auto& context : contexts) context->TryCancel();
  answered.Wait();
  absl::SleepFor(absl::Milliseconds(100));  // Let the server see the cancellations.
  release.Notify();
  blocker.join();
  // A later call is served normally, after the batcher has dropped the cancelled ones.
  EXPECT_TRUE(Infer(2, 0).ok());

  for (const auto& s : statuses) EXPECT_EQ(s.error_code(), grpc::StatusCode::CANCELLED);
  std::set<int> seen = backend_->seen();
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(seen.count(100 + i), 0u) << "cancelled call " << i << " ran";
  }
  EXPECT_EQ(seen.count(1), 1u);
  EXPECT_EQ(seen.count(2), 1u);
  EXPECT_EQ(Metric("coalesce_cancelled_requests_total"), 4);
}

}  // namespace
}  // namespace coalesce
