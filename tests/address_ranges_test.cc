#include "execution/address_ranges.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace coalesce {
namespace {

TEST(AddressRangesTest, ContainsOnlyWhatLiesInsideOneLiveRange) {
  std::vector<char> a(100), b(100);
  AddressRanges ranges;
  EXPECT_FALSE(ranges.Contains(a.data(), 1));
  ranges.Add(a.data(), 100);
  EXPECT_TRUE(ranges.Contains(a.data(), 100));
  EXPECT_TRUE(ranges.Contains(a.data() + 40, 60));
  EXPECT_TRUE(ranges.Contains(a.data() + 100, 0));
  EXPECT_FALSE(ranges.Contains(a.data(), 101));
  EXPECT_FALSE(ranges.Contains(a.data() + 40, 61));
  EXPECT_FALSE(ranges.Contains(a.data() + 101, 0));
  EXPECT_FALSE(ranges.Contains(a.data() - 1, 2));
  EXPECT_FALSE(ranges.Contains(a.data(), -1));
  EXPECT_FALSE(ranges.Contains(b.data(), 1));
}

TEST(AddressRangesTest, TwoAdjacentRangesDoNotMakeOne) {
  std::vector<char> memory(200);
  AddressRanges ranges;
  ranges.Add(memory.data(), 100);
  ranges.Add(memory.data() + 100, 100);
  EXPECT_TRUE(ranges.Contains(memory.data() + 50, 50));
  EXPECT_TRUE(ranges.Contains(memory.data() + 100, 100));
  // A buffer must lie in one allocation: spanning two is not page-locked memory of one graph.
  EXPECT_FALSE(ranges.Contains(memory.data() + 50, 100));
}

TEST(AddressRangesTest, RemovedRangeIsGoneAndOthersStay) {
  std::vector<char> a(64), b(64);
  AddressRanges ranges;
  ranges.Add(a.data(), 64);
  ranges.Add(b.data(), 64);
  ranges.Remove(a.data());
  EXPECT_FALSE(ranges.Contains(a.data(), 1));
  EXPECT_TRUE(ranges.Contains(b.data(), 64));
  ranges.Remove(a.data());  // Removing again changes nothing.
  EXPECT_TRUE(ranges.Contains(b.data(), 64));
  ranges.Add(a.data(), 32);  // The allocator handed the start out again, smaller.
  EXPECT_TRUE(ranges.Contains(a.data(), 32));
  EXPECT_FALSE(ranges.Contains(a.data(), 33));
}

TEST(AddressRangesTest, ConcurrentAddRemoveAndLookups) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 2000;
  std::vector<std::vector<char>> memory(kThreads, std::vector<char>(16));
  AddressRanges ranges;
  std::vector<std::thread> threads;
  std::vector<int> wrong(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) {
        ranges.Add(memory[t].data(), 16);
        if (!ranges.Contains(memory[t].data(), 16)) ++wrong[t];
        ranges.Remove(memory[t].data());
        if (ranges.Contains(memory[t].data(), 16)) ++wrong[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(wrong[t], 0) << "thread " << t;
}

}  // namespace
}  // namespace coalesce
