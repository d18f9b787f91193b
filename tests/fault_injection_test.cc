// Faults inside the model: a backend that throws, or hangs past its requests' deadlines. The
// affected requests get a clear error, the others are unaffected, and nothing deadlocks: every
// wait here is bounded by a watchdog that fails the test instead of hanging CI.
#include <future>
#include <memory>
#include <stdexcept>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "serving/served_model.h"

namespace coalesce {
namespace {

// Runs `body` on a thread and fails the test if it has not finished within `limit`.
void WithinWatchdog(absl::Duration limit, std::function<void()> body) {
  auto done = std::async(std::launch::async, std::move(body));
  ASSERT_EQ(done.wait_for(absl::ToChronoSeconds(limit)), std::future_status::ready)
      << "deadlock: not finished within " << absl::FormatDuration(limit);
  done.get();
}

// One float per sample, copied through. A sample whose value is `throw_on` makes the whole
// batch throw; one whose value is `hang_on` blocks its batch until `release` is notified.
class FaultyBackend : public Backend {
 public:
  FaultyBackend() {
    metadata_.name = "faulty";
    metadata_.max_batch_size = 1;  // One request per batch: faults stay with their request.
    metadata_.inputs.push_back({"X", DataType::kFp32, {1}});
    metadata_.outputs.push_back({"Y", DataType::kFp32, {1}});
  }
  const ModelMetadata& metadata() const override { return metadata_; }
  std::string DeviceDescription() const override { return "faulty"; }
  absl::Status Execute(int worker, int64_t rows, absl::Span<const char* const> inputs,
                       absl::Span<char* const> outputs) override {
    float value;
    std::memcpy(&value, inputs[0], sizeof(value));
    if (value == kThrow) throw std::runtime_error("injected device fault");
    if (value == kHang) {
      hanging.Notify();
      release.WaitForNotification();
    }
    std::memcpy(outputs[0], inputs[0], rows * sizeof(float));
    return absl::OkStatus();
  }

  static constexpr float kThrow = -1;
  static constexpr float kHang = -2;
  absl::Notification hanging;
  absl::Notification release;

 private:
  ModelMetadata metadata_;
};

// A request for one sample; its answer (status and output) lands in the caller's slots.
struct Call {
  explicit Call(float v) : value(v) {}
  float value;
  std::string output;
  StringOutput output_buffer{&output};
  absl::Status status;
  absl::Notification answered;
};

std::unique_ptr<InferRequest> MakeCall(Call& call, absl::Time deadline = absl::InfiniteFuture()) {
  InferRequest::Options options;
  options.inputs.emplace_back(reinterpret_cast<const char*>(&call.value), sizeof(float));
  options.outputs = {&call.output_buffer};
  options.arrival = Clock::Real()->Now();
  options.deadline = deadline;
  return std::make_unique<InferRequest>(std::move(options), [&call](absl::Status s) {
    call.status = std::move(s);
    call.answered.Notify();
  });
}

class FaultInjectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto backend = std::make_unique<FaultyBackend>();
    backend_ = backend.get();
    ServedModel::Options options;
    options.num_workers = 2;
    auto model = ServedModel::Create(options, std::move(backend), &metrics_, Clock::Real());
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = *std::move(model);
  }

  void Submit(std::unique_ptr<InferRequest> request) {
    ASSERT_TRUE(model_->Submit(request).ok());
  }

  ServerMetrics metrics_{std::make_shared<prometheus::Registry>()};
  FaultyBackend* backend_ = nullptr;
  std::unique_ptr<ServedModel> model_;
};

TEST_F(FaultInjectionTest, ThrowingBackendFailsItsRequestAndTheOthersSucceed) {
  WithinWatchdog(absl::Seconds(30), [&] {
    Call bad(FaultyBackend::kThrow), good1(1), good2(2);
    Submit(MakeCall(good1));
    Submit(MakeCall(bad));
    Submit(MakeCall(good2));
    for (Call* c : {&bad, &good1, &good2}) c->answered.WaitForNotification();
    EXPECT_EQ(bad.status.code(), absl::StatusCode::kInternal);
    EXPECT_NE(bad.status.message().find("injected device fault"), std::string::npos)
        << bad.status;
    for (Call* c : {&good1, &good2}) {
      ASSERT_TRUE(c->status.ok()) << c->status;
      float out;
      std::memcpy(&out, c->output.data(), sizeof(out));
      EXPECT_EQ(out, c->value);
    }
    // The worker that caught the exception is still alive and serving.
    Call after(3);
    Submit(MakeCall(after));
    after.answered.WaitForNotification();
    EXPECT_TRUE(after.status.ok()) << after.status;
  });
}

TEST_F(FaultInjectionTest, HangingBatchDoesNotStallTheOtherWorkerOrExpiredRequests) {
  WithinWatchdog(absl::Seconds(30), [&] {
    Call stuck(FaultyBackend::kHang);
    Submit(MakeCall(stuck));
    backend_->hanging.WaitForNotification();  // One worker is now stuck inside the model.

    // The other worker keeps serving.
    for (int i = 0; i < 5; ++i) {
      Call ok(10 + i);
      Submit(MakeCall(ok));
      ok.answered.WaitForNotification();
      EXPECT_TRUE(ok.status.ok()) << ok.status;
    }
    // A request that cannot meet its deadline is refused at once, not queued behind the stuck
    // batch; the caller keeps it and answers it.
    Call late(20);
    auto request = MakeCall(late, Clock::Real()->Now() - absl::Milliseconds(1));
    absl::Status refused = model_->Submit(request);
    EXPECT_EQ(refused.code(), absl::StatusCode::kDeadlineExceeded) << refused;
    ASSERT_NE(request, nullptr);
    request->Finish(refused);
    EXPECT_FALSE(late.status.ok());

    backend_->release.Notify();
    stuck.answered.WaitForNotification();
    EXPECT_TRUE(stuck.status.ok()) << stuck.status;
    // Shutdown completes: nothing is left waiting on the stuck worker.
    model_->Shutdown();
  });
}

}  // namespace
}  // namespace coalesce
