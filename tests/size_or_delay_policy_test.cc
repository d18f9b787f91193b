#include "core/size_or_delay_policy.h"

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
  BatchDecision d = policy->Decide(kT0 + absl::Milliseconds(1), pending, 2, kLatency);
  EXPECT_EQ(static_cast<int64_t>(d.batch.size()), 0);
  EXPECT_EQ(d.wake_at, kT0 + absl::Milliseconds(2));
}

TEST(SizeOrDelayPolicyTest, ClosesOnSizeBeforeTheDelay) {
  auto policy = Policy(3, absl::Seconds(10));
  auto pending = Arrivals({absl::ZeroDuration(), absl::ZeroDuration(), absl::ZeroDuration(),
                           absl::ZeroDuration()});
  BatchDecision d = policy->Decide(kT0, pending, 1, kLatency);
  EXPECT_EQ(static_cast<int64_t>(d.batch.size()), 3);
}

TEST(SizeOrDelayPolicyTest, ClosesOnDelayWithWhateverIsPending) {
  auto policy = Policy(8, absl::Milliseconds(2));
  auto pending = Arrivals({absl::ZeroDuration(), absl::Milliseconds(1)});
  EXPECT_EQ(policy->Decide(kT0 + absl::Milliseconds(2), pending, 1, kLatency).batch.size(), 2u);
}

TEST(SizeOrDelayPolicyTest, DelayIsMeasuredFromTheOldestRequest) {
  auto policy = Policy(8, absl::Milliseconds(2));
  auto pending = Arrivals({absl::Milliseconds(1), absl::Milliseconds(3)});
  EXPECT_EQ(policy->Decide(kT0 + absl::Microseconds(2999), pending, 1, kLatency).batch.size(), 0u);
  EXPECT_EQ(policy->Decide(kT0 + absl::Milliseconds(3), pending, 1, kLatency).batch.size(), 2u);
}

TEST(SizeOrDelayPolicyTest, ExactlyFullBatchClosesAtOnce) {
  auto policy = Policy(4, absl::Seconds(1));
  auto pending = Arrivals({absl::ZeroDuration(), absl::ZeroDuration()}, /*rows=*/2);
  EXPECT_EQ(policy->Decide(kT0, pending, 1, kLatency).batch.size(), 2u);
}

TEST(SizeOrDelayPolicyTest, NeverSplitsARequestAcrossBatches) {
  auto policy = Policy(4, absl::Seconds(1));
  // 3 + 3 rows: the second does not fit, so the first goes alone (the batch is "full").
  auto pending = Arrivals({absl::ZeroDuration(), absl::ZeroDuration()}, /*rows=*/3);
  EXPECT_EQ(policy->Decide(kT0, pending, 1, kLatency).batch.size(), 1u);
}

TEST(SizeOrDelayPolicyTest, DispatchesNothingWithoutAnIdleWorker) {
  auto policy = Policy(2, absl::ZeroDuration());
  auto pending = Arrivals({absl::ZeroDuration(), absl::ZeroDuration(), absl::ZeroDuration()});
  BatchDecision d = policy->Decide(kT0 + absl::Seconds(5), pending, 0, kLatency);
  EXPECT_EQ(static_cast<int64_t>(d.batch.size()), 0);
  EXPECT_EQ(d.wake_at, absl::InfiniteFuture());
}

TEST(SizeOrDelayPolicyTest, ZeroDelayDispatchesAsSoonAsAWorkerIsIdle) {
  auto policy = Policy(8, absl::ZeroDuration());
  EXPECT_EQ(policy->Decide(kT0, Arrivals({absl::ZeroDuration()}), 1, kLatency).batch.size(), 1u);
}

TEST(SizeOrDelayPolicyTest, EmptyQueueWaitsForever) {
  auto policy = Policy(8, absl::Milliseconds(1));
  BatchDecision d = policy->Decide(kT0, {}, 2, kLatency);
  EXPECT_EQ(static_cast<int64_t>(d.batch.size()), 0);
  EXPECT_EQ(d.wake_at, absl::InfiniteFuture());
}

TEST(SizeOrDelayPolicyTest, ClockBehindArrivalStillWaitsUntilTheDeadline) {
  // A request stamped "in the future" (clock read on another core a hair later) must not be
  // dispatched early or make the policy wait forever.
  auto policy = Policy(8, absl::Milliseconds(1));
  auto pending = Arrivals({absl::Milliseconds(5)});
  BatchDecision d = policy->Decide(kT0, pending, 1, kLatency);
  EXPECT_EQ(static_cast<int64_t>(d.batch.size()), 0);
  EXPECT_EQ(d.wake_at, kT0 + absl::Milliseconds(6));
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
