#include "engine/size_or_delay_policy.h"

#include <vector>

#include "gtest/gtest.h"

namespace coalesce {
namespace {

const absl::Time kT0 = absl::UnixEpoch() + absl::Hours(1);

// The fixed policy ignores the latency model; any will do.
class NoLatency : public LatencyModel {
 public:
  absl::Duration Predict(int64_t) const override { return absl::ZeroDuration(); }
};
const NoLatency kLatency;
const DecideMode kServe = DecideMode::kServe;

SizeOrDelayPolicy::Options Options(int64_t max_batch, absl::Duration delay) {
  SizeOrDelayPolicy::Options options;
  options.max_batch_size = max_batch;
  options.max_queue_delay = delay;
  return options;
}

std::unique_ptr<SizeOrDelayPolicy> Policy(int64_t max_batch, absl::Duration delay) {
  auto policy = SizeOrDelayPolicy::Create(Options(max_batch, delay));
  EXPECT_TRUE(policy.ok()) << policy.status();
  return *std::move(policy);
}

std::vector<PendingRequest> Arrivals(std::initializer_list<absl::Duration> offsets,
                                     int64_t rows = 1) {
  std::vector<PendingRequest> pending;
  for (absl::Duration d : offsets) pending.push_back({kT0 + d, absl::InfiniteFuture(), rows});
  return pending;
}

TEST(SizeOrDelayPolicyTest, WaitsForOldestRequestsDelayWhenBatchIsNotFull) {
  auto policy = Policy(4, absl::Milliseconds(2));
  auto pending = Arrivals({absl::ZeroDuration(), absl::Microseconds(500)});
  BatchDecision d = policy->Decide(kT0 + absl::Milliseconds(1), pending, 2, kLatency, kServe);
  EXPECT_EQ(static_cast<int64_t>(d.batch.size()), 0);
  EXPECT_EQ(d.wake_at, kT0 + absl::Milliseconds(2));
}

TEST(SizeOrDelayPolicyTest, ClosesOnSizeBeforeTheDelay) {
  auto policy = Policy(3, absl::Seconds(10));
  auto pending = Arrivals({absl::ZeroDuration(), absl::ZeroDuration(), absl::ZeroDuration(),
                           absl::ZeroDuration()});
  BatchDecision d = policy->Decide(kT0, pending, 1, kLatency, kServe);
  EXPECT_EQ(static_cast<int64_t>(d.batch.size()), 3);
}

TEST(SizeOrDelayPolicyTest, ClosesOnDelayWithWhateverIsPending) {
  auto policy = Policy(8, absl::Milliseconds(2));
  auto pending = Arrivals({absl::ZeroDuration(), absl::Milliseconds(1)});
  EXPECT_EQ(policy->Decide(kT0 + absl::Milliseconds(2), pending, 1, kLatency, kServe).batch.size(),
            2u);
}

TEST(SizeOrDelayPolicyTest, DelayIsMeasuredFromTheOldestRequest) {
  auto policy = Policy(8, absl::Milliseconds(2));
  auto pending = Arrivals({absl::Milliseconds(1), absl::Milliseconds(3)});
  EXPECT_TRUE(policy->Decide(kT0 + absl::Microseconds(2999), pending, 1, kLatency, kServe)
                  .batch.empty());
  EXPECT_EQ(policy->Decide(kT0 + absl::Milliseconds(3), pending, 1, kLatency, kServe).batch.size(),
            2u);
}

TEST(SizeOrDelayPolicyTest, ExactlyFullBatchClosesAtOnce) {
  auto policy = Policy(4, absl::Seconds(1));
  auto pending = Arrivals({absl::ZeroDuration(), absl::ZeroDuration()}, /*rows=*/2);
  EXPECT_EQ(policy->Decide(kT0, pending, 1, kLatency, kServe).batch.size(), 2u);
}

TEST(SizeOrDelayPolicyTest, NeverSplitsARequestAcrossBatches) {
  auto policy = Policy(4, absl::Seconds(1));
  // 3 + 3 rows: the second does not fit, so the first goes alone (the batch is "full").
  auto pending = Arrivals({absl::ZeroDuration(), absl::ZeroDuration()}, /*rows=*/3);
  EXPECT_EQ(policy->Decide(kT0, pending, 1, kLatency, kServe).batch.size(), 1u);
}

TEST(SizeOrDelayPolicyTest, DispatchesNothingWithoutAnIdleWorker) {
  auto policy = Policy(2, absl::ZeroDuration());
  auto pending = Arrivals({absl::ZeroDuration(), absl::ZeroDuration(), absl::ZeroDuration()});
  BatchDecision d = policy->Decide(kT0 + absl::Seconds(5), pending, 0, kLatency, kServe);
  EXPECT_EQ(static_cast<int64_t>(d.batch.size()), 0);
  EXPECT_EQ(d.wake_at, absl::InfiniteFuture());
}

TEST(SizeOrDelayPolicyTest, ZeroDelayDispatchesAsSoonAsAWorkerIsIdle) {
  auto policy = Policy(8, absl::ZeroDuration());
  auto pending = Arrivals({absl::ZeroDuration()});
  EXPECT_EQ(policy->Decide(kT0, pending, 1, kLatency, kServe).batch.size(), 1u);
}

TEST(SizeOrDelayPolicyTest, EmptyQueueWaitsForever) {
  auto policy = Policy(8, absl::Milliseconds(1));
  BatchDecision d = policy->Decide(kT0, {}, 2, kLatency, kServe);
  EXPECT_EQ(static_cast<int64_t>(d.batch.size()), 0);
  EXPECT_EQ(d.wake_at, absl::InfiniteFuture());
}

TEST(SizeOrDelayPolicyTest, ClockBehindArrivalStillWaitsUntilTheDeadline) {
  // A request stamped "in the future" (clock read on another core a hair later) must not be
  // dispatched early or make the policy wait forever.
  auto policy = Policy(8, absl::Milliseconds(1));
  auto pending = Arrivals({absl::Milliseconds(5)});
  BatchDecision d = policy->Decide(kT0, pending, 1, kLatency, kServe);
  EXPECT_EQ(static_cast<int64_t>(d.batch.size()), 0);
  EXPECT_EQ(d.wake_at, kT0 + absl::Milliseconds(6));
}

// Requests arriving at kT0 with input shape keys `shapes`, in order.
std::vector<PendingRequest> Shapes(std::initializer_list<int64_t> shapes) {
  std::vector<PendingRequest> pending;
  for (int64_t shape : shapes) pending.push_back({kT0, absl::InfiniteFuture(), 1, 1, shape});
  return pending;
}

TEST(SizeOrDelayPolicyTest, FullCountsOnlyRequestsOfTheFirstRequestsShape) {
  // Five rows fit the limit of four, but only three share the first request's shape: the batch
  // is not full, so it waits for the delay instead of closing with three rows as if full.
  auto policy = Policy(4, absl::Milliseconds(2));
  BatchDecision d = policy->Decide(kT0, Shapes({1, 2, 1, 2, 1}), 1, kLatency, kServe);
  EXPECT_TRUE(d.batch.empty());
  EXPECT_EQ(d.wake_at, kT0 + absl::Milliseconds(2));
  EXPECT_EQ(policy->Decide(kT0, Shapes({1, 2, 1, 2, 1, 1}), 1, kLatency, kServe).batch,
            (std::vector<int64_t>{0, 2, 4, 5}));
}

TEST(SizeOrDelayPolicyTest, DelayClosesTheBatchOfOneShape) {
  auto policy = Policy(4, absl::Milliseconds(2));
  EXPECT_EQ(policy->Decide(kT0 + absl::Milliseconds(2), Shapes({2, 1, 2}), 1, kLatency, kServe)
                .batch,
            (std::vector<int64_t>{0, 2}));
}

TEST(SizeOrDelayPolicyTest, FlushClosesTheBatchWithoutWaiting) {
  auto policy = Policy(4, absl::Seconds(10));
  EXPECT_TRUE(policy->Decide(kT0, Shapes({1, 2, 1}), 1, kLatency, kServe).batch.empty());
  EXPECT_EQ(policy->Decide(kT0, Shapes({1, 2, 1}), 1, kLatency, DecideMode::kFlush).batch,
            (std::vector<int64_t>{0, 2}));
  // A flush still waits for a worker.
  EXPECT_TRUE(
      policy->Decide(kT0, Shapes({1, 2, 1}), 0, kLatency, DecideMode::kFlush).batch.empty());
}

TEST(SizeOrDelayPolicyTest, CreateRejectsBadOptions) {
  auto zero = SizeOrDelayPolicy::Create(Options(0, absl::Milliseconds(1)));
  EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(zero.status().message().find("got 0"), std::string::npos);
  auto negative = SizeOrDelayPolicy::Create(Options(8, absl::Milliseconds(-1)));
  EXPECT_EQ(negative.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace coalesce
