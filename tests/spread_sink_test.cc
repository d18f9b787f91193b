#include "engine/spread_sink.h"

#include <vector>

#include "gtest/gtest.h"

namespace coalesce {
namespace {

// A sink with `idle` free workers that counts the batches it took (each taking a worker).
class CountingSink : public BatchSink {
 public:
  explicit CountingSink(int idle) : idle_(idle) {}
  int idle_workers() const override { return idle_; }
  void Dispatch(Batch batch) override {
    ASSERT_GT(idle_, 0) << "dispatched to a sink with no idle worker";
    --idle_;
    ++batches_;
  }
  void Free() { ++idle_; }
  int batches() const { return batches_; }

 private:
  int idle_;
  int batches_ = 0;
};

TEST(SpreadSinkTest, IdleWorkersAddUp) {
  CountingSink a(2), b(3);
  SpreadSink spread({&a, &b});
  EXPECT_EQ(spread.idle_workers(), 5);
}

TEST(SpreadSinkTest, SendsEachBatchToTheSinkWithTheMostIdleWorkers) {
  CountingSink a(1), b(3);
  SpreadSink spread({&a, &b});
  spread.Dispatch(Batch());
  spread.Dispatch(Batch());
  EXPECT_EQ(a.batches(), 0);
  EXPECT_EQ(b.batches(), 2);
  spread.Dispatch(Batch());  // 1 and 1 idle now: a tie.
  spread.Dispatch(Batch());
  EXPECT_EQ(a.batches(), 1);
  EXPECT_EQ(b.batches(), 3);
  EXPECT_EQ(spread.idle_workers(), 0);
}

TEST(SpreadSinkTest, TakesTurnsWhenEverySinkIsEquallyIdle) {
  CountingSink a(1), b(1), c(1);
  SpreadSink spread({&a, &b, &c});
  std::vector<CountingSink*> order = {&a, &b, &c};
  for (int round = 0; round < 6; ++round) {
    spread.Dispatch(Batch());
    // Whichever took it finishes at once, so all stay equally idle.
    for (CountingSink* sink : order) {
      if (sink->idle_workers() == 0) sink->Free();
    }
  }
  EXPECT_EQ(a.batches(), 2);
  EXPECT_EQ(b.batches(), 2);
  EXPECT_EQ(c.batches(), 2);
}

}  // namespace
}  // namespace coalesce
