#ifndef COALESCE_CORE_BATCHER_H_
#define COALESCE_CORE_BATCHER_H_

#include <atomic>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/batch.h"
#include "core/batch_policy.h"
#include "core/clock.h"
#include "core/request_queue.h"

namespace coalesce {

// Turns a model's stream of requests into batches: the single consumer of its RequestQueue.
//
// Each round drains the queue into a private pending list (kept in arrival order), asks the
// BatchPolicy what to do, and hands every batch the policy closes to the BatchSink. Batch
// forming lives in this one thread's private state, so the lock-free queue stays a plain queue.
//
// `RunOnce()` is the whole algorithm and takes its time from the injected Clock, so tests drive
// it step by step with a fake clock and no thread. `Start()` runs it on a thread that sleeps
// until the policy's wake-up time, a push, or a worker's `Wake()`.
//
// Thread-safety: `RunOnce()` must not be called while the thread runs. `Start()` and `Stop()` are
// called by the owner, once each.
class Batcher {
 public:
  // None of the pointers is owned; all must outlive the batcher.
  static absl::StatusOr<std::unique_ptr<Batcher>> Create(RequestQueue* queue,
                                                         const BatchPolicy* policy,
                                                         BatchSink* sink, Clock* clock);
  // Stops (see Stop()).
  ~Batcher();

  // One round: drain the queue, dispatch every batch the policy closes, and return when the
  // policy wants to be asked again (InfiniteFuture() to wait for the next event).
  absl::Time RunOnce();

  // Runs rounds on a thread until Stop().
  void Start();

  // Flushes: every request already queued or pending is dispatched as workers free up, whatever
  // the delay rule says, then the thread exits. Requests pushed after Stop() returns stay in the
  // queue (their owner answers them). Idempotent.
  void Stop();

  // Requests drained from the queue and not yet dispatched. For tests; call only when the
  // thread is not running.
  int64_t pending() const { return static_cast<int64_t>(pending_.size()); }

 private:
  Batcher(RequestQueue* queue, const BatchPolicy* policy, BatchSink* sink, Clock* clock);

  absl::Time RunRound(absl::Time now);
  void Loop();

  // Constant after construction.
  RequestQueue* const queue_;
  const BatchPolicy* const policy_;
  BatchSink* const sink_;
  Clock* const clock_;

  // Owned by the batching thread (or the test calling RunOnce()).
  std::deque<std::unique_ptr<InferRequest>> pending_;
  std::vector<std::unique_ptr<InferRequest>> drained_;
  std::vector<PendingRequest> view_;

  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace coalesce

#endif  // COALESCE_CORE_BATCHER_H_
