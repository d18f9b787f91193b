// CapMallocArenas against glibc itself: with the cap, many threads share at most that many
// arenas (malloc_info lists one <heap> per arena); MALLOC_ARENA_MAX in the environment wins.
// Built only without sanitizers, whose allocators replace glibc's.
#include "server/malloc_arenas.h"

#include <malloc.h>
#include <stdlib.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace coalesce {
namespace {

// Arenas glibc holds now: malloc_info writes one <heap nr="N"> element per arena.
int ArenaCount() {
  char* text = nullptr;
  size_t size = 0;
  std::FILE* out = open_memstream(&text, &size);
  malloc_info(0, out);
  std::fclose(out);
  int count = 0;
  for (const char* at = text; (at = std::strstr(at, "<heap nr=")) != nullptr; ++at) ++count;
  std::free(text);
  return count;
}

// Starts `n` threads at once, each allocating while all are alive, as a busy server's are.
void AllocateOnThreads(int n) {
  std::vector<std::thread> threads;
  std::atomic<int> started{0};
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&started, n] {
      std::vector<void*> blocks;
      for (int j = 0; j < 64; ++j) blocks.push_back(std::malloc(4096));
      started.fetch_add(1);
      while (started.load() < n) std::this_thread::yield();
      for (void* block : blocks) std::free(block);
    });
  }
  for (std::thread& thread : threads) thread.join();
}

// Each test runs in a process of its own (ctest), so arenas start from glibc's main arena.
TEST(MallocArenasTest, ThreadsShareAtMostTheCap) {
  unsetenv("MALLOC_ARENA_MAX");
  const std::string line = CapMallocArenas(2);
  EXPECT_EQ(line, "malloc arenas: at most 2 (--malloc_arena_max)");
  AllocateOnThreads(16);
  EXPECT_LE(ArenaCount(), 2);
}

TEST(MallocArenasTest, WithoutTheCapThreadsTakeArenasOfTheirOwn) {
  // The control for the test above: the same threads under glibc's default make more arenas,
  // so the bound above is the cap's doing.
  unsetenv("MALLOC_ARENA_MAX");
  EXPECT_EQ(CapMallocArenas(0), "malloc arenas: glibc's default (8 per core)");
  AllocateOnThreads(16);
  EXPECT_GT(ArenaCount(), 2);
}

TEST(MallocArenasTest, TheEnvironmentWins) {
  setenv("MALLOC_ARENA_MAX", "3", 1);
  EXPECT_EQ(CapMallocArenas(2), "malloc arenas: at most 3 (MALLOC_ARENA_MAX)");
  unsetenv("MALLOC_ARENA_MAX");
}

}  // namespace
}  // namespace coalesce
