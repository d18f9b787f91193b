#include "engine/latency_model.h"

#include "gtest/gtest.h"

namespace coalesce {
namespace {

std::unique_ptr<OnlineLatencyModel> Model(int64_t max_batch, double alpha = 0.1) {
  OnlineLatencyModel::Options options;
  options.max_batch_size = max_batch;
  options.alpha = alpha;
  auto model = OnlineLatencyModel::Create(options);
  EXPECT_TRUE(model.ok()) << model.status();
  return *std::move(model);
}

TEST(OnlineLatencyModelTest, TracksPowersOfTwoAndTheMaximum) {
  EXPECT_EQ(Model(12)->sizes(), (std::vector<int64_t>{1, 2, 4, 8, 12}));
  EXPECT_EQ(Model(1)->sizes(), (std::vector<int64_t>{1}));
}

TEST(OnlineLatencyModelTest, InterpolatesBetweenProfiledSizes) {
  auto model = Model(8);
  model->SetProfile(4, absl::Milliseconds(4));
  model->SetProfile(8, absl::Milliseconds(12));
  EXPECT_EQ(model->Predict(4), absl::Milliseconds(4));
  EXPECT_EQ(model->Predict(6), absl::Milliseconds(8));
  EXPECT_EQ(model->Predict(8), absl::Milliseconds(12));
  EXPECT_EQ(model->Predict(100), absl::Milliseconds(12));  // Clamped to the largest size.
}

TEST(OnlineLatencyModelTest, FollowsALastingChange) {
  auto model = Model(1);
  model->SetProfile(1, absl::Milliseconds(1));
  for (int i = 0; i < 60; ++i) model->Observe(1, absl::Milliseconds(3));
  EXPECT_NEAR(absl::ToDoubleMilliseconds(model->Predict(1)), 3.0, 0.05);
}

TEST(OnlineLatencyModelTest, OneOutlierMovesTheEstimateByAtMostAlpha) {
  auto model = Model(1, 0.1);
  model->SetProfile(1, absl::Milliseconds(10));
  model->Observe(1, absl::Seconds(5));  // A 500x stall.
  // Clamped to 2x (20 ms), then weighted 0.1: 10 + 0.1 * 10 = 11 ms.
  EXPECT_NEAR(absl::ToDoubleMilliseconds(model->Predict(1)), 11.0, 1e-9);
  model->Observe(1, absl::ZeroDuration());  // An impossible 0: clamped to 5.5 ms.
  EXPECT_NEAR(absl::ToDoubleMilliseconds(model->Predict(1)), 11.0 - 0.1 * 5.5, 1e-9);
}

TEST(OnlineLatencyModelTest, SizeForNamesTheBucketAnObservationUpdates) {
  auto model = Model(12);
  EXPECT_EQ(model->SizeFor(1), 1);
  EXPECT_EQ(model->SizeFor(3), 4);
  EXPECT_EQ(model->SizeFor(9), 12);
  EXPECT_EQ(model->SizeFor(50), 12);
}

TEST(OnlineLatencyModelTest, ObservationUpdatesTheSizeAtOrAboveIt) {
  auto model = Model(8, 1.0);
  for (int64_t s : model->sizes()) model->SetProfile(s, absl::Milliseconds(s));
  model->Observe(3, absl::Milliseconds(6));  // Lands on size 4 (estimate 4 ms -> 6 ms).
  EXPECT_EQ(model->Predict(4), absl::Milliseconds(6));
  EXPECT_EQ(model->Predict(2), absl::Milliseconds(2));
}

TEST(OnlineLatencyModelTest, ZeroProfileDoesNotFreezeTheEstimate) {
  auto model = Model(1, 1.0);
  model->SetProfile(1, absl::ZeroDuration());
  model->Observe(1, absl::Milliseconds(1));
  EXPECT_GT(model->Predict(1), absl::ZeroDuration());
}

TEST(OnlineLatencyModelTest, CreateRejectsBadOptions) {
  OnlineLatencyModel::Options options;
  options.max_batch_size = 0;
  EXPECT_EQ(OnlineLatencyModel::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.max_batch_size = 4;
  options.alpha = 0;
  EXPECT_EQ(OnlineLatencyModel::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace coalesce
