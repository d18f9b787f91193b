#ifndef COALESCE_ENGINE_BATCH_POLICY_H_
#define COALESCE_ENGINE_BATCH_POLICY_H_

#include <cstdint>
#include <vector>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "engine/latency_model.h"

namespace coalesce {

// What the batcher knows of one waiting request when it asks its policy what to do.
struct PendingRequest {
  absl::Time arrival;
  absl::Time deadline = absl::InfiniteFuture();
  int64_t rows = 1;
  // 1 is the highest priority; larger numbers are lower.
  int priority = 1;
  // Requests with equal keys have equal input sizes and may share a batch; others may not.
  // Every request of a model whose dims are all fixed has the same key. For a model that pads
  // (ModelMetadata::padding), the key of its dims padded to its bucket.
  int64_t shape = 0;
  // For a model that pads: the request's length and the bucket it pads to (PaddedLength); a
  // request of a smaller bucket may join a batch of a larger one (JoinSmallerBuckets()). 0 for
  // a request that is not padded.
  int64_t length = 0;
  int64_t bucket = 0;
};

// Orders pending requests as every policy sees them: higher priority first, then earlier
// deadline, then earlier arrival. Within one priority level this is earliest-deadline-first,
// which meets every deadline that any order could meet on one server.
bool ComesBefore(const PendingRequest& a, const PendingRequest& b);

// A policy's answer for one moment. Indices refer to the pending list it was given.
//  - `shed` (ascending): requests that can no longer meet their deadline however they are
//    scheduled; the batcher answers them DEADLINE_EXCEEDED before they cost compute.
//  - `batch` (ascending, disjoint from `shed`): requests to run now as one batch, exactly as
//    the batcher dispatches it, so all of one shape, or for a model that pads, of one bucket
//    and smaller ones. Usually a prefix of the list; a policy skips requests (leaving them
//    pending) of another shape, or to keep a batch whole under overload.
//  - When `batch` is empty: ask again no later than `wake_at` (earlier if a request arrives or a
//    worker frees up).
struct BatchDecision {
  std::vector<int64_t> shed;
  std::vector<int64_t> batch;
  absl::Time wake_at = absl::InfiniteFuture();

  // Dispatch the first `count` requests.
  static BatchDecision Prefix(int64_t count);
  static BatchDecision WaitUntil(absl::Time t);
};

// Why the batcher asks its policy.
enum class DecideMode {
  // Serving: a batch may wait to fill.
  kServe,
  // Shutting down: nothing waits to fill; every pending request is dispatched as workers free
  // up, in batches formed as when serving.
  kFlush,
};

// Decides when a batch closes and what it holds. A pure function of its arguments and its own
// constant configuration: no clock, no threads, no hidden state, so it is tested by calling it.
//
// Thread-safety: `Decide()` is const and safe to call from any thread.
class BatchPolicy {
 public:
  virtual ~BatchPolicy() = default;

  // `pending` is sorted by ComesBefore() and may be empty. `idle_workers` is how many executor
  // workers could start a batch right now. `latency` predicts batch execution time. In kFlush
  // mode, with a live request and an idle worker, the decision dispatches a batch.
  virtual BatchDecision Decide(absl::Time now, absl::Span<const PendingRequest> pending,
                               int idle_workers, const LatencyModel& latency,
                               DecideMode mode) const = 0;
};

}  // namespace coalesce

#endif  // COALESCE_ENGINE_BATCH_POLICY_H_
