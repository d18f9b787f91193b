// MallocTrimmer against glibc itself: memory freed below live chunks stays resident until a trim
// gives its pages back. Built only without sanitizers, whose allocators replace glibc's.
#include "server/malloc_trimmer.h"

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace coalesce {
namespace {

// Anonymous resident memory of this process (RssAnon), in KiB; -1 if unreadable.
long ResidentAnonymousKib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (absl::StartsWith(line, "RssAnon:")) return std::strtol(line.c_str() + 8, nullptr, 10);
  }
  return -1;
}

// A trimmer every 10 ms once it has trimmed; null if it did not start or trim within 10 s.
std::unique_ptr<MallocTrimmer> StartAndAwaitATrim() {
  MallocTrimmer::Options options;
  options.interval = absl::Milliseconds(10);
  absl::StatusOr<std::unique_ptr<MallocTrimmer>> trimmer = MallocTrimmer::Start(options);
  if (!trimmer.ok()) return nullptr;
  // Polls: the trimmer offers nothing to wait on, and a trim is the event under test.
  for (absl::Time deadline = absl::Now() + absl::Seconds(10);
       (*trimmer)->trims() < 1 && absl::Now() < deadline; absl::SleepFor(absl::Milliseconds(5))) {
  }
  if ((*trimmer)->trims() < 1) return nullptr;
  return *std::move(trimmer);
}

TEST(MallocTrimmerTest, GivesBackThePagesOfMemoryFreedBelowLiveChunks) {
  // 64 MiB in blocks under glibc's mmap threshold, all touched; one in 16 stays live, the last
  // one too, so the heap cannot shrink from its top: what free() leaves resident is in the
  // middle, as after hours of serving.
  constexpr size_t kBlock = 16 << 10, kBlocks = 4096;
  const long before = ResidentAnonymousKib();
  ASSERT_GT(before, 0);
  std::vector<char*> blocks;
  for (size_t i = 0; i < kBlocks; ++i) {
    blocks.push_back(static_cast<char*>(std::malloc(kBlock)));
    std::memset(blocks.back(), 1, kBlock);
  }
  std::vector<char*> live;
  for (size_t i = 0; i < kBlocks; ++i) {
    if (i % 16 == 0 || i + 1 == kBlocks) {
      live.push_back(blocks[i]);
    } else {
      std::free(blocks[i]);
    }
  }
  const long freed = ResidentAnonymousKib();
  // The control: free() alone gave nothing back.
  EXPECT_GT(freed - before, 56 << 10) << "before " << before << " KiB, after free " << freed;

  std::unique_ptr<MallocTrimmer> trimmer = StartAndAwaitATrim();
  ASSERT_NE(trimmer, nullptr);
  const long trimmed = ResidentAnonymousKib();
  // 60 MiB were freed in runs of 15 blocks (240 KiB); all but a page or two of each goes back.
  EXPECT_LT(trimmed - before, 12 << 10)
      << "before " << before << " KiB, after free " << freed << ", after trim " << trimmed;
  EXPECT_GT(trimmer->longest(), absl::ZeroDuration());
  for (char* block : live) std::free(block);
}

TEST(MallocTrimmerTest, RefusesAnIntervalThatIsNotPositive) {
  for (absl::Duration interval : {absl::ZeroDuration(), absl::Seconds(-1),
                                  absl::InfiniteDuration()}) {
    MallocTrimmer::Options options;
    options.interval = interval;
    absl::StatusOr<std::unique_ptr<MallocTrimmer>> trimmer = MallocTrimmer::Start(options);
    EXPECT_EQ(trimmer.status().code(), absl::StatusCode::kInvalidArgument)
        << absl::FormatDuration(interval);
  }
}

}  // namespace
}  // namespace coalesce
