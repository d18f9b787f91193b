#include "engine/deadline_policy.h"

#include <vector>

#include "gtest/gtest.h"

namespace coalesce {
namespace {

const absl::Time kT0 = absl::UnixEpoch() + absl::Hours(1);
const absl::Duration kMs = absl::Milliseconds(1);

// L(n) = base + per_row * n.
class LinearLatency : public LatencyModel {
 public:
  LinearLatency(absl::Duration base, absl::Duration per_row) : base_(base), per_row_(per_row) {}
  absl::Duration Predict(int64_t rows) const override { return base_ + per_row_ * rows; }

 private:
  absl::Duration base_, per_row_;
};

std::unique_ptr<DeadlinePolicy> Policy(int64_t max_batch, absl::Duration delay = absl::ZeroDuration(),
                                       std::vector<int64_t> preferred = {}) {
  DeadlinePolicy::Options options;
  options.max_batch_size = max_batch;
  options.max_queue_delay = delay;
  options.preferred_batch_sizes = std::move(preferred);
  auto policy = DeadlinePolicy::Create(options);
  EXPECT_TRUE(policy.ok()) << policy.status();
  return *std::move(policy);
}

PendingRequest Req(absl::Duration arrival, absl::Duration deadline = absl::InfiniteDuration(),
                   int priority = 1, int64_t rows = 1) {
  return {kT0 + arrival, deadline == absl::InfiniteDuration() ? absl::InfiniteFuture() : kT0 + deadline,
          rows, priority};
}

// `request` with input shape key `shape`.
PendingRequest Shaped(PendingRequest request, int64_t shape) {
  request.shape = shape;
  return request;
}

std::vector<int64_t> Indices(std::initializer_list<int64_t> i) { return i; }

const DecideMode kServe = DecideMode::kServe;

// 1 ms per batch plus 1 ms per row: a batch of 3 takes 4 ms.
const LinearLatency kLatency(kMs, kMs);

TEST(DeadlinePolicyTest, LoneRequestIsDispatchedAtOnceWithoutWaiting) {
  auto policy = Policy(8);
  std::vector<PendingRequest> pending = {Req(absl::ZeroDuration())};
  BatchDecision d = policy->Decide(kT0, pending, 2, kLatency, kServe);
  EXPECT_EQ(d.batch, Indices({0}));
  EXPECT_TRUE(d.shed.empty());
}

TEST(DeadlinePolicyTest, WaitsForAWorkerInsteadOfDispatching) {
  auto policy = Policy(8);
  std::vector<PendingRequest> pending = {Req(absl::ZeroDuration()), Req(absl::ZeroDuration())};
  BatchDecision d = policy->Decide(kT0, pending, 0, kLatency, kServe);
  EXPECT_TRUE(d.batch.empty());
  EXPECT_EQ(d.wake_at, absl::InfiniteFuture());
}

TEST(DeadlinePolicyTest, TakesEverythingThatFitsWhenAWorkerFrees) {
  // Under load requests pile up while workers are busy; the next free worker takes them all.
  auto policy = Policy(4);
  std::vector<PendingRequest> pending(6, Req(absl::ZeroDuration()));
  BatchDecision d = policy->Decide(kT0, pending, 1, kLatency, kServe);
  EXPECT_EQ(d.batch, Indices({0, 1, 2, 3}));
}

TEST(DeadlinePolicyTest, ShedsRequestThatCannotMeetItsDeadlineEvenAlone) {
  auto policy = Policy(8);
  // Alone, a request takes 2 ms. Deadlines at 1.5 ms (hopeless) and 10 ms (fine).
  std::vector<PendingRequest> pending = {Req(absl::ZeroDuration(), absl::Microseconds(1500)),
                                         Req(absl::ZeroDuration(), 10 * kMs)};
  BatchDecision d = policy->Decide(kT0, pending, 1, kLatency, kServe);
  EXPECT_EQ(d.shed, Indices({0}));
  EXPECT_EQ(d.batch, Indices({1}));
}

TEST(DeadlinePolicyTest, ShedsEvenWithoutAnIdleWorker) {
  auto policy = Policy(8);
  std::vector<PendingRequest> pending = {Req(absl::ZeroDuration(), kMs)};
  BatchDecision d = policy->Decide(kT0, pending, 0, kLatency, kServe);
  EXPECT_EQ(d.shed, Indices({0}));
  EXPECT_TRUE(d.batch.empty());
}

TEST(DeadlinePolicyTest, ExactlyMeetableDeadlineIsNotShed) {
  auto policy = Policy(8);
  std::vector<PendingRequest> pending = {Req(absl::ZeroDuration(), 2 * kMs)};  // L(1) = 2 ms.
  BatchDecision d = policy->Decide(kT0, pending, 1, kLatency, kServe);
  EXPECT_TRUE(d.shed.empty());
  EXPECT_EQ(d.batch, Indices({0}));
}

TEST(DeadlinePolicyTest, StopsGrowingBeforeTheEarliestDeadlineWouldBeMissed) {
  auto policy = Policy(8);
  // The first deadline is 6 ms away: L(5) = 6 ms fits, L(6) = 7 ms does not.
  std::vector<PendingRequest> pending = {Req(absl::ZeroDuration(), 6 * kMs)};
  for (int i = 0; i < 6; ++i) pending.push_back(Req(absl::ZeroDuration(), 50 * kMs));
  BatchDecision d = policy->Decide(kT0, pending, 1, kLatency, kServe);
  EXPECT_EQ(d.batch, Indices({0, 1, 2, 3, 4}));
}

TEST(DeadlinePolicyTest, OverloadGuardPrefersTheLargerSafeBatch) {
  auto policy = Policy(8);
  // One urgent request would limit the batch to itself; eight requests with loose deadlines
  // are safe even in a full batch (L(8) = 9 ms). The larger batch goes; the urgent one waits
  // (and is shed later if it becomes hopeless).
  std::vector<PendingRequest> pending = {Req(absl::ZeroDuration(), 2 * kMs)};
  for (int i = 0; i < 8; ++i) pending.push_back(Req(absl::ZeroDuration(), 20 * kMs));
  BatchDecision d = policy->Decide(kT0, pending, 1, kLatency, kServe);
  EXPECT_EQ(d.batch, Indices({1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_TRUE(d.shed.empty());
}

TEST(DeadlinePolicyTest, OverloadGuardLeavesAMildSqueezeToEdf) {
  // The on-time prefix holds 3 of 8 rows, the safe batch 4: not twice as many, so the urgent
  // request is served (the loose ones have time for the next batch).
  auto policy = Policy(8);
  std::vector<PendingRequest> pending = {Req(absl::ZeroDuration(), 4 * kMs)};
  for (int i = 0; i < 4; ++i) pending.push_back(Req(absl::ZeroDuration(), 50 * kMs));
  EXPECT_EQ(policy->Decide(kT0, pending, 1, kLatency, kServe).batch, Indices({0, 1, 2}));
}

TEST(DeadlinePolicyTest, HigherPriorityIsServedFirstEvenUnderAFlood) {
  // The pending list is in ComesBefore() order: priority 1 first whatever it arrived after.
  std::vector<PendingRequest> pending;
  for (int i = 0; i < 20; ++i) pending.push_back(Req(absl::ZeroDuration(), absl::InfiniteDuration(), 2));
  pending.push_back(Req(kMs, 30 * kMs, 1));
  std::sort(pending.begin(), pending.end(), ComesBefore);
  EXPECT_EQ(pending.front().priority, 1);
  BatchDecision d = Policy(4)->Decide(kT0 + kMs, pending, 1, kLatency, kServe);
  ASSERT_FALSE(d.batch.empty());
  EXPECT_EQ(d.batch.front(), 0);
  EXPECT_EQ(d.batch.size(), 4u);
}

TEST(DeadlinePolicyTest, OrderIsPriorityThenDeadlineThenArrival) {
  PendingRequest early_loose = Req(absl::ZeroDuration(), 9 * kMs);
  PendingRequest late_tight = Req(kMs, 5 * kMs);
  PendingRequest low_urgent = Req(absl::ZeroDuration(), 2 * kMs, 2);
  EXPECT_TRUE(ComesBefore(late_tight, early_loose));
  EXPECT_TRUE(ComesBefore(early_loose, low_urgent));
  // Same priority and deadline: arrival breaks the tie.
  EXPECT_TRUE(ComesBefore(Req(absl::ZeroDuration(), 5 * kMs), Req(kMs, 5 * kMs)));
  EXPECT_FALSE(ComesBefore(Req(kMs, 5 * kMs), Req(kMs, 5 * kMs)));
}

TEST(DeadlinePolicyTest, WithDelayConfiguredWaitsUntilOldestHasWaitedTheDelay) {
  auto policy = Policy(8, 5 * kMs);
  std::vector<PendingRequest> pending = {Req(absl::ZeroDuration()), Req(kMs)};
  BatchDecision d = policy->Decide(kT0 + 2 * kMs, pending, 1, kLatency, kServe);
  EXPECT_TRUE(d.batch.empty());
  EXPECT_EQ(d.wake_at, kT0 + 5 * kMs);
  EXPECT_EQ(policy->Decide(kT0 + 5 * kMs, pending, 1, kLatency, kServe).batch, Indices({0, 1}));
}

TEST(DeadlinePolicyTest, WaitingNeverMakesADeadlineThatAnEarlierStartWouldHaveMet) {
  auto policy = Policy(8, 50 * kMs);
  // Deadline 10 ms; L(2) = 3 ms: the batch must start by 7 ms, well before the 50 ms delay.
  std::vector<PendingRequest> pending = {Req(absl::ZeroDuration(), 10 * kMs), Req(absl::ZeroDuration())};
  BatchDecision wait = policy->Decide(kT0 + kMs, pending, 1, kLatency, kServe);
  EXPECT_TRUE(wait.batch.empty());
  EXPECT_EQ(wait.wake_at, kT0 + 7 * kMs);
  EXPECT_EQ(policy->Decide(kT0 + 7 * kMs, pending, 1, kLatency, kServe).batch, Indices({0, 1}));
}

TEST(DeadlinePolicyTest, ClosesAtTheLargestPreferredSizeReached) {
  auto policy = Policy(16, 50 * kMs, {4, 8});
  std::vector<PendingRequest> pending(5, Req(absl::ZeroDuration()));
  EXPECT_EQ(policy->Decide(kT0, pending, 1, kLatency, kServe).batch, Indices({0, 1, 2, 3}));
  pending.resize(3);
  EXPECT_TRUE(policy->Decide(kT0, pending, 1, kLatency, kServe).batch.empty());
}

TEST(DeadlinePolicyTest, FullBatchGoesAtOnceEvenWithDelayConfigured) {
  auto policy = Policy(2, 50 * kMs);
  std::vector<PendingRequest> pending(3, Req(absl::ZeroDuration()));
  EXPECT_EQ(policy->Decide(kT0, pending, 1, kLatency, kServe).batch, Indices({0, 1}));
}

TEST(DeadlinePolicyTest, NeverSplitsAMultiRowRequest) {
  auto policy = Policy(4);
  std::vector<PendingRequest> pending = {Req(absl::ZeroDuration(), absl::InfiniteDuration(), 1, 3),
                                         Req(absl::ZeroDuration(), absl::InfiniteDuration(), 1, 3)};
  EXPECT_EQ(policy->Decide(kT0, pending, 1, kLatency, kServe).batch, Indices({0}));
}

TEST(DeadlinePolicyTest, ClockJumpForwardShedsWhatBecameHopeless) {
  auto policy = Policy(8);
  std::vector<PendingRequest> pending = {Req(absl::ZeroDuration(), 10 * kMs), Req(absl::ZeroDuration(), 100 * kMs)};
  // The clock jumps 9 ms (a stalled thread): the first request now needs 2 ms with 1 ms left.
  BatchDecision d = policy->Decide(kT0 + 9 * kMs, pending, 1, kLatency, kServe);
  EXPECT_EQ(d.shed, Indices({0}));
  EXPECT_EQ(d.batch, Indices({1}));
}

TEST(DeadlinePolicyTest, ClockBehindArrivalsDoesNotHoldRequestsForever) {
  // Arrivals stamped after `now` (read on another core a hair later) with a delay configured:
  // the wait ends at arrival + delay, not never.
  auto policy = Policy(8, 2 * kMs);
  std::vector<PendingRequest> pending = {Req(3 * kMs)};
  BatchDecision d = policy->Decide(kT0, pending, 1, kLatency, kServe);
  EXPECT_TRUE(d.batch.empty());
  EXPECT_EQ(d.wake_at, kT0 + 5 * kMs);
}

TEST(DeadlinePolicyTest, FullCountsOnlyRequestsOfTheBatchsShape) {
  // Four rows are pending but only two share the first request's shape: that batch is not full
  // and waits for the delay, rather than closing "full" with half its rows.
  auto policy = Policy(4, 5 * kMs);
  std::vector<PendingRequest> pending;
  for (int64_t shape : {1, 2, 1, 2}) pending.push_back(Shaped(Req(absl::ZeroDuration()), shape));
  BatchDecision d = policy->Decide(kT0, pending, 1, kLatency, kServe);
  EXPECT_TRUE(d.batch.empty());
  EXPECT_EQ(d.wake_at, kT0 + 5 * kMs);

  pending.push_back(Shaped(Req(absl::ZeroDuration()), 1));
  pending.push_back(Shaped(Req(absl::ZeroDuration()), 1));
  EXPECT_EQ(policy->Decide(kT0, pending, 1, kLatency, kServe).batch, Indices({0, 2, 4, 5}));
}

TEST(DeadlinePolicyTest, OverloadGuardWeighsOnlyRequestsOfTheBatchsShape) {
  // An urgent request of shape 1 limits its batch to itself (L(2) = 3 ms > 2 ms). One safe
  // request of each shape: counted together they would be twice the urgent batch and replace
  // it, though only one of them could share a batch. The urgent request is served.
  auto policy = Policy(8);
  std::vector<PendingRequest> pending = {Shaped(Req(absl::ZeroDuration(), 2 * kMs), 1),
                                         Shaped(Req(absl::ZeroDuration(), 20 * kMs), 2),
                                         Shaped(Req(absl::ZeroDuration(), 20 * kMs), 1)};
  EXPECT_EQ(policy->Decide(kT0, pending, 1, kLatency, kServe).batch, Indices({0}));

  // Two safe requests of shape 1 do outweigh it; the batch that replaces it holds only them.
  pending.push_back(Shaped(Req(absl::ZeroDuration(), 20 * kMs), 1));
  EXPECT_EQ(policy->Decide(kT0, pending, 1, kLatency, kServe).batch, Indices({2, 3}));
}

TEST(DeadlinePolicyTest, BatchTakesTheShapeOfTheFirstRequestNotShed) {
  auto policy = Policy(8);
  std::vector<PendingRequest> pending = {Shaped(Req(absl::ZeroDuration(), kMs), 2),
                                         Shaped(Req(absl::ZeroDuration(), 10 * kMs), 1),
                                         Shaped(Req(absl::ZeroDuration(), 10 * kMs), 2),
                                         Shaped(Req(absl::ZeroDuration(), 10 * kMs), 1)};
  BatchDecision d = policy->Decide(kT0, pending, 1, kLatency, kServe);
  EXPECT_EQ(d.shed, Indices({0}));
  EXPECT_EQ(d.batch, Indices({1, 3}));
}

TEST(DeadlinePolicyTest, FlushClosesTheBatchWithoutWaiting) {
  auto policy = Policy(8, absl::Seconds(10), {4});
  std::vector<PendingRequest> pending = {Shaped(Req(absl::ZeroDuration()), 1),
                                         Shaped(Req(absl::ZeroDuration()), 2),
                                         Shaped(Req(absl::ZeroDuration()), 1)};
  EXPECT_TRUE(policy->Decide(kT0, pending, 1, kLatency, kServe).batch.empty());
  EXPECT_EQ(policy->Decide(kT0, pending, 1, kLatency, DecideMode::kFlush).batch,
            Indices({0, 2}));
  // A flush still waits for a worker.
  EXPECT_TRUE(policy->Decide(kT0, pending, 0, kLatency, DecideMode::kFlush).batch.empty());
}

TEST(DeadlinePolicyTest, CreateRejectsBadOptions) {
  DeadlinePolicy::Options options;
  options.max_batch_size = 0;
  EXPECT_EQ(DeadlinePolicy::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.max_batch_size = 8;
  options.preferred_batch_sizes = {16};
  absl::Status s = DeadlinePolicy::Create(options).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("16"), std::string::npos) << s;
  options.preferred_batch_sizes = {};
  options.max_queue_delay = -kMs;
  EXPECT_EQ(DeadlinePolicy::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace coalesce
