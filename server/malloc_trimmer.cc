#include "server/malloc_trimmer.h"

#include <algorithm>

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

}  // namespace coalesce
