#include "execution/copy_pool.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/barrier.h"
#include "gtest/gtest.h"

namespace coalesce {
namespace {

std::unique_ptr<CopyPool> Pool(int threads) {
  CopyPool::Options options;
  options.threads = threads;
  return *CopyPool::Create(options);
}

TEST(CopyPoolTest, RunsEveryPieceExactlyOnce) {
  auto pool = Pool(3);
  std::vector<int> runs(1000, 0);  // Each piece writes only its own element.
  pool->ParallelFor(static_cast<int>(runs.size()), [&](int i) { ++runs[i]; });
  EXPECT_EQ(runs, std::vector<int>(1000, 1));
}

TEST(CopyPoolTest, RunsPiecesOnThePoolAndTheCallerAtOnce) {
  auto pool = Pool(2);
  // Every piece waits for all three to start: only three threads at once get past it.
  absl::Barrier started(3);
  std::vector<std::thread::id> ran_on(3);
  pool->ParallelFor(3, [&](int i) {
    ran_on[i] = std::this_thread::get_id();
    started.Block();
  });
  EXPECT_NE(ran_on[0], ran_on[1]);
  EXPECT_NE(ran_on[1], ran_on[2]);
  EXPECT_NE(ran_on[0], ran_on[2]);
}

TEST(CopyPoolTest, ServesSeveralCallersAtOnce) {
  auto pool = Pool(2);
  constexpr int kCallers = 4;
  constexpr int kPieces = 64;
  std::vector<std::vector<int>> runs(kCallers, std::vector<int>(kPieces, 0));
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      for (int round = 0; round < 50; ++round) {
        pool->ParallelFor(kPieces, [&](int i) { ++runs[c][i]; });
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  for (int c = 0; c < kCallers; ++c) EXPECT_EQ(runs[c], std::vector<int>(kPieces, 50));
}

TEST(CopyPoolTest, RunsNothingForNoPieces) {
  auto pool = Pool(1);
  int runs = 0;
  pool->ParallelFor(0, [&](int) { ++runs; });
  EXPECT_EQ(runs, 0);
}

TEST(CopyPoolTest, CreateRejectsZeroThreads) {
  CopyPool::Options options;
  options.threads = 0;
  absl::StatusOr<std::unique_ptr<CopyPool>> pool = CopyPool::Create(options);
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(pool.status().message().find("got 0"), std::string::npos) << pool.status();
}

}  // namespace
}  // namespace coalesce
