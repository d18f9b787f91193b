#ifndef COALESCE_ENGINE_REQUEST_QUEUE_H_
#define COALESCE_ENGINE_REQUEST_QUEUE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/infer_request.h"

namespace coalesce {

// The hand-off from the RPC threads to a model's batcher: a bounded, lock-free,
// multi-producer single-consumer queue (moodycamel::ConcurrentQueue) plus a semaphore that wakes
// the consumer.
//
// Thread-safety: `Push()` may be called from any number of threads at once. `PopAll()` and
// `WaitFor()` belong to the single consumer (the batcher thread). `Wake()` may be called from any
// thread.
//
// Bound: at most `capacity` requests are waiting, counting both those still in the queue and
// those the consumer popped but has not released (the batcher's pending list): draining the
// queue into the batcher must not make room for more. The count is reserved before the enqueue,
// so the bound holds exactly under concurrent producers; a push past it fails at once, without
// blocking.
class RequestQueue {
 public:
  struct Options {
    // Requests the queue holds before Push() answers RESOURCE_EXHAUSTED. Must be >= 1.
    int64_t capacity = 4096;
  };

  static absl::StatusOr<std::unique_ptr<RequestQueue>> Create(const Options& options);
  ~RequestQueue();

  // Enqueues `request` and wakes the consumer. Ownership passes to the queue iff the call
  // returns OK; if the queue is full, returns RESOURCE_EXHAUSTED at once and the caller keeps
  // the request (and must answer it).
  absl::Status Push(std::unique_ptr<InferRequest>& request);

  // Moves every queued request into `out` (appending); returns how many. They still count
  // against the capacity until Release()d. Consumer only.
  int64_t PopAll(std::vector<std::unique_ptr<InferRequest>>& out);

  // The consumer is done with `count` popped requests (dispatched, answered or dropped): makes
  // room for as many new ones.
  void Release(int64_t count) { size_.fetch_sub(count, std::memory_order_acq_rel); }

  // Blocks the consumer until something was pushed, `Wake()` was called, or `timeout` passed.
  // May return early (spurious wakeups are allowed); callers re-check their state.
  void WaitFor(absl::Duration timeout);

  // Wakes the consumer without pushing (a worker became free, or shutdown).
  void Wake();

  // Requests waiting: queued, or popped and not yet released. Exact only when no push or
  // release is in progress.
  int64_t size() const { return size_.load(std::memory_order_relaxed); }
  int64_t capacity() const { return capacity_; }

 private:
  struct Impl;
  RequestQueue(int64_t capacity, std::unique_ptr<Impl> impl);

  const int64_t capacity_;
  const std::unique_ptr<Impl> impl_;
  std::atomic<int64_t> size_{0};
};

}  // namespace coalesce

#endif  // COALESCE_ENGINE_REQUEST_QUEUE_H_
