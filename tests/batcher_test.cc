#include "engine/batcher.h"

#include <deque>
#include <map>
#include <vector>

#include "engine/deadline_policy.h"
#include "engine/size_or_delay_policy.h"
#include "gtest/gtest.h"
#include "tests/batcher_fakes.h"
#include "tests/fake_clock.h"
#include "tests/test_requests.h"

namespace coalesce {
namespace {

class BatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    queue_ = *RequestQueue::Create(Capacity(100));
    SizeOrDelayPolicy::Options policy_options;
    policy_options.max_batch_size = 4;
    policy_options.max_queue_delay = absl::Milliseconds(2);
    policy_ = *SizeOrDelayPolicy::Create(policy_options);
    MakeBatcher();
  }

  // Switches to the deadline-aware policy (eager, max batch 4).
  void UseDeadlinePolicy() {
    DeadlinePolicy::Options policy_options;
    policy_options.max_batch_size = 4;
    policy_ = *DeadlinePolicy::Create(policy_options);
    MakeBatcher();
  }

  void MakeBatcher() {
    Batcher::Options options;
    options.queue = queue_.get();
    options.policy = policy_.get();
    options.sink = &sink_;
    options.latency = &latency_;
    options.clock = &clock_;
    batcher_ = *Batcher::Create(options);
  }

  Answer* NewAnswer() { return &answers_.emplace_back(); }

  // Pushes a request with the given deadline, priority and cancellation flag; returns its answer.
  Answer* PushWith(absl::Time deadline, int priority = 1,
                   const std::atomic<bool>* cancelled = nullptr) {
    Answer* answer = NewAnswer();
    InferRequest::Options options;
    options.arrival = clock_.Now();
    options.deadline = deadline;
    options.priority = priority;
    options.cancelled = cancelled;
    auto request = std::make_unique<InferRequest>(std::move(options), [answer](absl::Status s) {
      ++answer->calls;
      answer->status = std::move(s);
    });
    requests_.push_back(request.get());
    EXPECT_TRUE(queue_->Push(request).ok());
    return answer;
  }

  // Requests pushed by PushWith(), in push order (valid while pending or dispatched).
  std::vector<const InferRequest*> requests_;

  void Push(int64_t rows = 1) {
    auto request = MakeRequest(NewAnswer(), clock_.Now(), rows);
    ASSERT_TRUE(queue_->Push(request).ok());
  }

  // Pushes a one-row request of a model with variable dims, its one input `width` wide.
  void PushWidth(int64_t width) {
    InferRequest::Options options;
    options.arrival = clock_.Now();
    options.input_dims = {{width}};
    auto request = MakeRequest(NewAnswer(), std::move(options));
    ASSERT_TRUE(queue_->Push(request).ok());
  }

  // The input width of each request of each dispatched batch.
  std::vector<std::vector<int64_t>> DispatchedWidths() const { return DispatchedFirstDims(sink_); }

  // Declared first so that they outlive the requests that answer into them.
  std::deque<Answer> answers_;
  FakeClock clock_;
  FakeSink sink_;
  FixedLatency latency_{absl::Microseconds(100)};
  std::unique_ptr<RequestQueue> queue_;
  std::unique_ptr<BatchPolicy> policy_;
  std::unique_ptr<Batcher> batcher_;
};

TEST_F(BatcherTest, ClosesOnSize) {
  for (int i = 0; i < 4; ++i) Push();
  batcher_->RunOnce();
  ASSERT_EQ(sink_.batches.size(), 1u);
  EXPECT_EQ(sink_.batches[0].rows, 4);
  EXPECT_EQ(sink_.batches[0].requests.size(), 4u);
  EXPECT_EQ(batcher_->pending(), 0);
}

TEST_F(BatcherTest, ClosesOnDelay) {
  Push();
  clock_.Advance(absl::Milliseconds(1));
  Push();
  absl::Time wake = batcher_->RunOnce();
  EXPECT_TRUE(sink_.batches.empty());
  EXPECT_EQ(wake, clock_.Now() + absl::Milliseconds(1));  // Oldest arrived 1 ms ago.

  clock_.Advance(absl::Microseconds(999));
  batcher_->RunOnce();
  EXPECT_TRUE(sink_.batches.empty());

  clock_.Advance(absl::Microseconds(1));
  batcher_->RunOnce();
  ASSERT_EQ(sink_.batches.size(), 1u);
  EXPECT_EQ(sink_.batches[0].rows, 2);
}

TEST_F(BatcherTest, NeverDispatchesARequestTwice) {
  // Six requests: four close on size, the other two later on delay. Each request must be in
  // exactly one batch, and the batches keep arrival order.
  sink_.idle = 2;
  std::map<const InferRequest*, int> index;
  for (int i = 0; i < 6; ++i) {
    auto request = MakeRequest(NewAnswer(), clock_.Now(), 1);
    index[request.get()] = i;
    ASSERT_TRUE(queue_->Push(request).ok());
    clock_.Advance(absl::Microseconds(10));
  }
  batcher_->RunOnce();
  ASSERT_EQ(sink_.batches.size(), 1u);
  clock_.Advance(absl::Milliseconds(2));
  batcher_->RunOnce();
  batcher_->RunOnce();
  ASSERT_EQ(sink_.batches.size(), 2u);

  std::vector<int> order;
  for (const Batch& batch : sink_.batches) {
    for (const auto& request : batch.requests) order.push_back(index.at(request.get()));
  }
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(sink_.batches[0].rows, 4);
  EXPECT_EQ(sink_.batches[1].rows, 2);
}

TEST_F(BatcherTest, HoldsFullBatchUntilAWorkerIsFree) {
  sink_.idle = 0;
  for (int i = 0; i < 6; ++i) Push();
  clock_.Advance(absl::Seconds(1));
  batcher_->RunOnce();
  EXPECT_TRUE(sink_.batches.empty());
  EXPECT_EQ(batcher_->pending(), 6);

  sink_.idle = 1;
  batcher_->RunOnce();
  ASSERT_EQ(sink_.batches.size(), 1u);
  EXPECT_EQ(sink_.batches[0].rows, 4);
  EXPECT_EQ(batcher_->pending(), 2);
}

TEST_F(BatcherTest, OrdersRequestsByArrivalAcrossProducers) {
  // Producers can enqueue out of arrival order; the older request must lead the batch.
  auto second = MakeRequest(NewAnswer(), clock_.Now() + absl::Microseconds(5));
  auto first = MakeRequest(NewAnswer(), clock_.Now());
  const InferRequest* first_ptr = first.get();
  ASSERT_TRUE(queue_->Push(second).ok());
  ASSERT_TRUE(queue_->Push(first).ok());
  clock_.Advance(absl::Milliseconds(3));
  batcher_->RunOnce();
  ASSERT_EQ(sink_.batches.size(), 1u);
  EXPECT_EQ(sink_.batches[0].requests[0].get(), first_ptr);
}

TEST_F(BatcherTest, StopFlushesPendingRequestsRegardlessOfDelay) {
  sink_.idle = 5;
  Push();
  Push();
  batcher_->Start();
  batcher_->Stop();
  ASSERT_EQ(sink_.batches.size(), 1u);
  EXPECT_EQ(sink_.batches[0].rows, 2);
}

TEST_F(BatcherTest, QueueBoundCountsRequestsTheBatcherHolds) {
  batcher_.reset();  // It points at the queue being replaced.
  queue_ = *RequestQueue::Create(Capacity(3));
  MakeBatcher();
  sink_.idle = 0;
  for (int i = 0; i < 3; ++i) Push();
  batcher_->RunOnce();  // All three move into the batcher's pending list...
  EXPECT_EQ(batcher_->pending(), 3);
  auto fourth = MakeRequest(NewAnswer(), clock_.Now());
  // ...and still count: a flood cannot hide in the batcher.
  EXPECT_EQ(queue_->Push(fourth).code(), absl::StatusCode::kResourceExhausted);

  sink_.idle = 1;
  clock_.Advance(absl::Milliseconds(2));  // The delay rule closes the batch of three.
  batcher_->RunOnce();
  ASSERT_EQ(sink_.batches.size(), 1u);
  EXPECT_EQ(queue_->size(), 0);
  EXPECT_TRUE(queue_->Push(fourth).ok());
}

TEST_F(BatcherTest, CancelledRequestNeverReachesTheSink) {
  UseDeadlinePolicy();
  sink_.idle = 0;
  std::atomic<bool> cancelled{false};
  Answer* doomed = PushWith(absl::InfiniteFuture(), 1, &cancelled);
  Answer* kept = PushWith(absl::InfiniteFuture());
  batcher_->RunOnce();  // Both pending: no worker.
  cancelled = true;
  sink_.idle = 1;
  batcher_->RunOnce();
  EXPECT_EQ(doomed->calls, 1);
  EXPECT_EQ(doomed->status.code(), absl::StatusCode::kCancelled);
  ASSERT_EQ(sink_.batches.size(), 1u);
  ASSERT_EQ(sink_.batches[0].requests.size(), 1u);
  EXPECT_EQ(sink_.batches[0].requests[0].get(), requests_[1]);
  EXPECT_EQ(kept->calls, 0);  // Dispatched, not yet answered.
}

TEST_F(BatcherTest, RequestWhoseDeadlinePassedWhileQueuedIsAnsweredNotRun) {
  UseDeadlinePolicy();
  sink_.idle = 0;
  Answer* late = PushWith(clock_.Now() + absl::Milliseconds(5));
  batcher_->RunOnce();
  clock_.Advance(absl::Milliseconds(5));
  sink_.idle = 1;
  batcher_->RunOnce();
  EXPECT_EQ(late->calls, 1);
  EXPECT_EQ(late->status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(sink_.batches.empty());
}

TEST_F(BatcherTest, ShedsHopelessRequestsBeforeTheirDeadline) {
  UseDeadlinePolicy();  // Every batch takes 100 us (FixedLatency).
  Answer* hopeless = PushWith(clock_.Now() + absl::Microseconds(50));
  Answer* fine = PushWith(clock_.Now() + absl::Milliseconds(10));
  batcher_->RunOnce();
  EXPECT_EQ(hopeless->calls, 1);
  EXPECT_EQ(hopeless->status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(hopeless->status.message().find("shed"), std::string::npos) << hopeless->status;
  ASSERT_EQ(sink_.batches.size(), 1u);
  EXPECT_EQ(sink_.batches[0].requests[0].get(), requests_[1]);
  EXPECT_EQ(fine->calls, 0);
}

TEST_F(BatcherTest, HigherPriorityLeadsTheNextBatchWhateverItsArrival) {
  UseDeadlinePolicy();
  sink_.idle = 0;
  for (int i = 0; i < 6; ++i) PushWith(absl::InfiniteFuture(), 2);
  clock_.Advance(absl::Milliseconds(1));
  PushWith(absl::InfiniteFuture(), 1);
  batcher_->RunOnce();
  sink_.idle = 1;
  batcher_->RunOnce();
  ASSERT_EQ(sink_.batches.size(), 1u);
  ASSERT_EQ(sink_.batches[0].requests.size(), 4u);
  EXPECT_EQ(sink_.batches[0].requests[0].get(), requests_[6]);
  EXPECT_EQ(sink_.batches[0].requests[1].get(), requests_[0]);
}

TEST_F(BatcherTest, DispatchesExactlyTheBatchThePolicyFormsFromMixedShapes) {
  // Five requests fill the limit of four rows, but only three share the first one's shape: no
  // batch is full, so nothing goes before the delay (not a "full" batch cut down to its shape).
  sink_.idle = 2;
  for (int64_t width : {3, 5, 3, 5, 3}) PushWidth(width);
  batcher_->RunOnce();
  EXPECT_TRUE(sink_.batches.empty());
  EXPECT_EQ(batcher_->pending(), 5);

  clock_.Advance(absl::Milliseconds(2));
  batcher_->RunOnce();
  EXPECT_EQ(DispatchedWidths(), (std::vector<std::vector<int64_t>>{{3, 3, 3}, {5, 5}}));
  EXPECT_EQ(sink_.batches[0].rows, 3);
  EXPECT_EQ(sink_.batches[1].rows, 2);
  EXPECT_EQ(batcher_->pending(), 0);
  EXPECT_EQ(queue_->size(), 0);
}

TEST_F(BatcherTest, StopFlushesInTheBatchesThePolicyForms) {
  // The flush asks the policy, which batches each shape together: not one batch per run of
  // equal shapes in the pending order.
  sink_.idle = 5;
  for (int64_t width : {3, 5, 3, 3, 3, 3}) PushWidth(width);
  batcher_->Start();
  batcher_->Stop();
  EXPECT_EQ(DispatchedWidths(), (std::vector<std::vector<int64_t>>{{3, 3, 3, 3}, {5}, {3}}));
  EXPECT_EQ(queue_->size(), 0);
}

TEST_F(BatcherTest, DeadRequestsGetTheSharedAnswer) {
  UseDeadlinePolicy();
  sink_.idle = 0;
  std::atomic<bool> cancelled{false};
  Answer* gone = PushWith(absl::InfiniteFuture(), 1, &cancelled);
  Answer* late = PushWith(clock_.Now() + absl::Milliseconds(5));
  batcher_->RunOnce();
  cancelled = true;
  clock_.Advance(absl::Milliseconds(5));
  batcher_->RunOnce();
  EXPECT_EQ(gone->status, absl::CancelledError("request was not run: the client cancelled it"));
  EXPECT_EQ(late->status, absl::DeadlineExceededError("request was not run: its deadline passed"));
  EXPECT_EQ(batcher_->pending(), 0);
  EXPECT_EQ(queue_->size(), 0);
}

}  // namespace
}  // namespace coalesce
