#include "engine/deadline_policy.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "engine/padding.h"

namespace coalesce {

absl::StatusOr<std::unique_ptr<DeadlinePolicy>> DeadlinePolicy::Create(const Options& options) {
  if (options.max_batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_batch_size must be at least 1, got ", options.max_batch_size));
  }
  if (options.max_queue_delay < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("max_queue_delay must not be negative, got ",
                                                   absl::FormatDuration(options.max_queue_delay)));
  }
  for (int64_t size : options.preferred_batch_sizes) {
    if (size < 1 || size > options.max_batch_size) {
      return absl::InvalidArgumentError(absl::StrCat("preferred batch size ", size,
                                                     " is outside 1..", options.max_batch_size,
                                                     " (max_batch_size)"));
    }
  }
  if (absl::Status s = CheckMaxPaddingRatio(options.max_padding_ratio); !s.ok()) return s;
  Options sorted = options;
  std::sort(sorted.preferred_batch_sizes.begin(), sorted.preferred_batch_sizes.end());
  return std::unique_ptr<DeadlinePolicy>(new DeadlinePolicy(std::move(sorted)));
}

BatchDecision DeadlinePolicy::Decide(absl::Time now, absl::Span<const PendingRequest> pending,
                                     int idle_workers, const LatencyModel& latency,
                                     DecideMode mode) const {
  BatchDecision decision;
  const int64_t max_rows = options_.max_batch_size;
  // Predictions by row count, each asked of the model once per decision: a round with a long
  // queue must not cost one model lookup per request.
  std::vector<absl::Duration> predicted(max_rows + 1, -absl::InfiniteDuration());
  auto predict = [&](int64_t rows) {
    if (rows > max_rows) return latency.Predict(rows);
    if (predicted[rows] < absl::ZeroDuration()) predicted[rows] = latency.Predict(rows);
    return predicted[rows];
  };

  // 1. Shed what cannot be met even alone, started now. Within a priority level the list is in
  // deadline order, so once a request is safe in a full batch, so is the rest of its level.
  std::vector<int64_t> live;
  live.reserve(pending.size());
  const absl::Time safe_in_any_batch = now + predict(max_rows);
  for (int64_t i = 0; i < static_cast<int64_t>(pending.size()); ++i) {
    const PendingRequest& r = pending[i];
    bool level_safe = i > 0 && pending[i - 1].priority == r.priority &&
                      pending[i - 1].deadline >= safe_in_any_batch;
    if (!level_safe && r.deadline != absl::InfiniteFuture() && now + predict(r.rows) > r.deadline) {
      decision.shed.push_back(i);
    } else {
      live.push_back(i);
    }
  }
  // 2. Nothing to run, or nobody to run it.
  if (live.empty() || idle_workers <= 0) return decision;

  // 3. The longest on-time prefix of the first live request's shape that fits.
  const int64_t shape = pending[live.front()].shape;
  int64_t rows = 0;
  absl::Time earliest = absl::InfiniteFuture();
  absl::Time oldest = absl::InfiniteFuture();
  bool full = false;
  bool deadline_limited = false;
  for (int64_t i : live) {
    const PendingRequest& r = pending[i];
    if (r.shape != shape) continue;
    if (rows + r.rows > max_rows) {
      full = true;
      break;
    }
    absl::Time batch_earliest = std::min(earliest, r.deadline);
    if (batch_earliest != absl::InfiniteFuture() && now + predict(rows + r.rows) > batch_earliest) {
      deadline_limited = true;
      break;
    }
    decision.batch.push_back(i);
    rows += r.rows;
    earliest = batch_earliest;
    oldest = std::min(oldest, r.arrival);
  }
  if (!full && !deadline_limited && options_.max_padding_ratio > 0 && !decision.batch.empty()) {
    rows = JoinSmallerBuckets(pending, live, max_rows, options_.max_padding_ratio, decision.batch,
                              [&](int64_t i, int64_t rows_with) {
                                const PendingRequest& r = pending[i];
                                const absl::Time with_earliest = std::min(earliest, r.deadline);
                                if (with_earliest != absl::InfiniteFuture() &&
                                    now + predict(rows_with) > with_earliest) {
                                  return false;
                                }
                                earliest = with_earliest;
                                oldest = std::min(oldest, r.arrival);
                                return true;
                              });
  }
  if (decision.batch.empty()) {
    // Only a request larger than max_batch_size gets here (validation refuses those); run it
    // alone rather than hold it forever.
    decision.batch.push_back(live.front());
    return decision;
  }
  full = full || rows == max_rows;

  // 4. Overload guard: the requests that are safe in any batch, if they make a larger one.
  if (deadline_limited) {
    const absl::Time safe_after = safe_in_any_batch;
    std::vector<int64_t> safe;
    int64_t safe_rows = 0;
    for (int64_t i : live) {
      const PendingRequest& r = pending[i];
      if (r.shape != shape || r.deadline < safe_after) continue;
      if (safe_rows + r.rows > max_rows) break;
      safe.push_back(i);
      safe_rows += r.rows;
    }
    // Only a batch that urgency shrank below half its size is worth giving up for one at least
    // twice as large: a mild squeeze serves the urgent requests, as EDF should.
    if (rows < max_rows / 2.0 && safe_rows >= 2 * rows) decision.batch = std::move(safe);
    return decision;
  }

  // 5. Close now, or wait for the batch to fill.
  if (full || mode == DecideMode::kFlush || options_.max_queue_delay == absl::ZeroDuration()) {
    return decision;
  }
  for (auto it = options_.preferred_batch_sizes.rbegin(); it != options_.preferred_batch_sizes.rend();
       ++it) {
    if (rows < *it) continue;
    // Close at the largest preferred size reached: the longest prefix within it.
    int64_t kept_rows = 0;
    size_t kept = 0;
    while (kept < decision.batch.size() &&
           kept_rows + pending[decision.batch[kept]].rows <= *it) {
      kept_rows += pending[decision.batch[kept]].rows;
      ++kept;
    }
    decision.batch.resize(std::max<size_t>(kept, 1));
    return decision;
  }
  absl::Time close_at = oldest + options_.max_queue_delay;
  if (earliest != absl::InfiniteFuture()) {
    close_at = std::min(close_at, earliest - predict(rows));
  }
  if (now >= close_at) return decision;
  decision.batch.clear();
  decision.wake_at = close_at;
  return decision;
}

}  // namespace coalesce
