#include "server/malloc_trimmer.h"

#include <algorithm>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace coalesce {

absl::StatusOr<std::unique_ptr<MallocTrimmer>> MallocTrimmer::Start(const Options& options) {
  if (options.interval <= absl::ZeroDuration() || options.interval == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "malloc trim interval must be a positive finite duration, got ",
        absl::FormatDuration(options.interval)));
  }
#if defined(__GLIBC__)
  return std::unique_ptr<MallocTrimmer>(new MallocTrimmer(options));
#else
  return absl::UnimplementedError("malloc trim: not glibc; the system allocator returns memory "
                                  "by its own policy");
#endif
}

MallocTrimmer::MallocTrimmer(const Options& options)
    : interval_(options.interval), thread_([this] { Run(); }) {}

MallocTrimmer::~MallocTrimmer() {
  stop_.Notify();
  thread_.join();
}

int64_t MallocTrimmer::trims() const {
  absl::MutexLock lock(&mu_);
  return trims_;
}

absl::Duration MallocTrimmer::longest() const {
  absl::MutexLock lock(&mu_);
  return longest_;
}

void MallocTrimmer::Run() {
#if defined(__GLIBC__)
  while (!stop_.WaitForNotificationWithTimeout(interval_)) {
    const absl::Time start = absl::Now();
    // 0: keep no slack at the top of the main heap either.
    malloc_trim(0);
    const absl::Duration took = absl::Now() - start;
    absl::MutexLock lock(&mu_);
    ++trims_;
    longest_ = std::max(longest_, took);
  }
#endif
}

std::string HoldFreedHeapUntilTrim() {
#if defined(__GLIBC__)
  for (const char* env : {"MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_"}) {
    if (const char* value = std::getenv(env); value != nullptr && *value != '\0') {
      return absl::StrCat("malloc free: glibc's thresholds from the environment (", env, ")");
    }
  }
  if (const char* tunables = std::getenv("GLIBC_TUNABLES");
      tunables != nullptr && (absl::StrContains(tunables, "glibc.malloc.trim_threshold") ||
                              absl::StrContains(tunables, "glibc.malloc.mmap_threshold"))) {
    return "malloc free: glibc's thresholds from the environment (GLIBC_TUNABLES)";
  }
  // The mmap threshold first: glibc's largest (HEAP_MAX_SIZE / 2 on 64-bit), which fits a chunk
  // into a thread arena's 64 MiB heap.
  constexpr int kMmapThreshold = 32 << 20;
  constexpr int kTrimThreshold = 256 << 20;
  if (mallopt(M_MMAP_THRESHOLD, kMmapThreshold) != 1 ||
      mallopt(M_TRIM_THRESHOLD, kTrimThreshold) != 1) {
    return "malloc free: glibc refused the thresholds; it gives memory back on free()";
  }
  return "malloc free: memory kept for reuse until the next trim (trim threshold 256 MiB, "
         "mmap threshold 32 MiB)";
#else
  return "malloc free: not glibc; the system allocator's own policy";
#endif
}

}  // namespace coalesce
