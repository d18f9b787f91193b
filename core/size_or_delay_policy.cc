#include "core/size_or_delay_policy.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace coalesce {

absl::StatusOr<std::unique_ptr<SizeOrDelayPolicy>> SizeOrDelayPolicy::Create(
    const Options& options) {
  if (options.max_batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_batch_size must be at least 1, got ", options.max_batch_size));
  }
  if (options.max_queue_delay < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("max_queue_delay must not be negative, got ",
                                                   absl::FormatDuration(options.max_queue_delay)));
  }
  return std::unique_ptr<SizeOrDelayPolicy>(new SizeOrDelayPolicy(options));
}

BatchDecision SizeOrDelayPolicy::Decide(absl::Time now, absl::Span<const PendingRequest> pending,
                                        int idle_workers, const LatencyModel& latency) const {
  if (pending.empty() || idle_workers <= 0) return BatchDecision::WaitUntil(absl::InfiniteFuture());

  // The longest prefix that fits, and whether the queue holds a full batch.
  int64_t rows = 0;
  int64_t count = 0;
  bool full = false;
  for (const PendingRequest& request : pending) {
    if (rows + request.rows > options_.max_batch_size) {
      full = true;
      break;
    }
    rows += request.rows;
    ++count;
  }
  full = full || rows == options_.max_batch_size;
  // A single request larger than the batch limit would never fit; validation refuses those, so
  // dispatching it alone is only a safeguard against waiting forever.
  if (count == 0) return BatchDecision::Prefix(1);
  if (full) return BatchDecision::Prefix(count);

  absl::Time oldest = pending.front().arrival;
  for (const PendingRequest& request : pending) oldest = std::min(oldest, request.arrival);
  absl::Time close_at = oldest + options_.max_queue_delay;
  if (now >= close_at) return BatchDecision::Prefix(count);
  return BatchDecision::WaitUntil(close_at);
}

}  // namespace coalesce
