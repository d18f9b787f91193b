#ifndef COALESCE_CORE_BATCH_POLICY_H_
#define COALESCE_CORE_BATCH_POLICY_H_

#include <cstdint>

#include "absl/types/span.h"
#include "absl/time/time.h"

namespace coalesce {

// What the batcher knows of one waiting request when it asks its policy what to do.
struct PendingRequest {
  absl::Time arrival;
  absl::Time deadline = absl::InfiniteFuture();
  int64_t rows = 1;
};

// A policy's answer: dispatch the first `count` pending requests (in the order given) as one
// batch now, or, when `count` is 0, ask again no later than `wake_at` (earlier if a request
// arrives or a worker frees up).
struct BatchDecision {
  int64_t count = 0;
  absl::Time wake_at = absl::InfiniteFuture();

  static BatchDecision Dispatch(int64_t count) { return {count, absl::InfinitePast()}; }
  static BatchDecision WaitUntil(absl::Time t) { return {0, t}; }
};

// Decides when a batch closes. A pure function of its arguments and its own constant
// configuration: no clock, no threads, no state, so it is tested by calling it.
//
// Thread-safety: `Decide()` is const and safe to call from any thread.
class BatchPolicy {
 public:
  virtual ~BatchPolicy() = default;

  // `pending` is in arrival order and may be empty. `idle_workers` is how many executor workers
  // could start a batch right now.
  virtual BatchDecision Decide(absl::Time now, absl::Span<const PendingRequest> pending,
                               int idle_workers) const = 0;
};

}  // namespace coalesce

#endif  // COALESCE_CORE_BATCH_POLICY_H_
