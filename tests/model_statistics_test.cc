#include "execution/model_statistics.h"

#include <gtest/gtest.h>

namespace coalesce {
namespace {

TEST(ModelStatisticsTest, CountsRequestsByOutcomeAndRowsOfSuccessfulOnes) {
  ModelStatistics stats;
  const absl::Time now = absl::FromUnixMillis(1'700'000'000'123);
  stats.RecordRequest(true, 3, absl::Microseconds(10), now);
  stats.RecordRequest(true, 1, absl::Microseconds(30), now + absl::Milliseconds(1));
  stats.RecordRequest(false, 5, absl::Microseconds(7), now + absl::Milliseconds(2));
  ModelStatistics::Snapshot s = stats.Get();
  EXPECT_EQ(s.inference_count, 4u);
  EXPECT_EQ(s.success.count, 2u);
  EXPECT_EQ(s.success.ns, 40'000u);
  EXPECT_EQ(s.fail.count, 1u);
  EXPECT_EQ(s.fail.ns, 7'000u);
  // The last successful answer, not the failure.
  EXPECT_EQ(s.last_inference, now + absl::Milliseconds(1));
}

TEST(ModelStatisticsTest, BatchStagesAddUpPerBatchSizeAndOverall) {
  ModelStatistics stats;
  stats.RecordBatch(8, absl::Microseconds(1), absl::Microseconds(100), absl::Microseconds(2));
  stats.RecordBatch(8, absl::Microseconds(3), absl::Microseconds(120), absl::Microseconds(4));
  stats.RecordBatch(1, absl::Microseconds(5), absl::Microseconds(20), absl::Microseconds(6));
  stats.RecordQueued(absl::Microseconds(50));
  ModelStatistics::Snapshot s = stats.Get();
  EXPECT_EQ(s.execution_count, 3u);
  EXPECT_EQ(s.queue.count, 1u);
  EXPECT_EQ(s.stages.compute_infer.count, 3u);
  EXPECT_EQ(s.stages.compute_infer.ns, 240'000u);
  ASSERT_EQ(s.batches.size(), 2u);
  EXPECT_EQ(s.batches.at(8).compute_input.ns, 4'000u);
  EXPECT_EQ(s.batches.at(8).compute_output.count, 2u);
  EXPECT_EQ(s.batches.at(1).compute_infer.ns, 20'000u);
  // A negative duration (a clock that stepped back) counts as zero, never wraps around.
  stats.RecordBatch(1, -absl::Microseconds(5), absl::ZeroDuration(), absl::ZeroDuration());
  EXPECT_EQ(stats.Get().batches.at(1).compute_input.ns, 5'000u);
}

}  // namespace
}  // namespace coalesce
