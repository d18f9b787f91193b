#include "engine/size_or_delay_policy.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/padding.h"

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
  if (absl::Status s = CheckMaxPaddingRatio(options.max_padding_ratio); !s.ok()) return s;
  return std::unique_ptr<SizeOrDelayPolicy>(new SizeOrDelayPolicy(options));
}

BatchDecision SizeOrDelayPolicy::Decide(absl::Time now, absl::Span<const PendingRequest> pending,
                                        int idle_workers, const LatencyModel& latency,
                                        DecideMode mode) const {
  if (pending.empty() || idle_workers <= 0) return BatchDecision::WaitUntil(absl::InfiniteFuture());

  // The batch of the first request's shape: its requests in order while they fit, and whether
  // the queue holds a full batch of them.
  BatchDecision decision;
  const int64_t shape = pending.front().shape;
  int64_t rows = 0;
  bool full = false;
  absl::Time oldest = absl::InfiniteFuture();
  for (int64_t i = 0; i < static_cast<int64_t>(pending.size()); ++i) {
    const PendingRequest& request = pending[i];
    if (request.shape != shape) continue;
    if (rows + request.rows > options_.max_batch_size) {
      full = true;
      break;
    }
    decision.batch.push_back(i);
    rows += request.rows;
    oldest = std::min(oldest, request.arrival);
  }
  // A single request larger than the batch limit would never fit; validation refuses those, so
  // dispatching it alone is only a safeguard against waiting forever.
  if (decision.batch.empty()) return BatchDecision::Prefix(1);
  if (!full && options_.max_padding_ratio > 0 && pending.front().bucket > 0) {
    std::vector<int64_t> all(pending.size());
    std::iota(all.begin(), all.end(), int64_t{0});
    rows = JoinSmallerBuckets(pending, all, options_.max_batch_size, options_.max_padding_ratio,
                              decision.batch, [&](int64_t i, int64_t) {
                                oldest = std::min(oldest, pending[i].arrival);
                                return true;
                              });
  }
  full = full || rows == options_.max_batch_size;
  if (full || mode == DecideMode::kFlush) return decision;

  const absl::Time close_at = oldest + options_.max_queue_delay;
  if (now >= close_at) return decision;
  return BatchDecision::WaitUntil(close_at);
}

}  // namespace coalesce
