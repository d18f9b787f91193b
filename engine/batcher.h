#ifndef COALESCE_ENGINE_BATCHER_H_
#define COALESCE_ENGINE_BATCHER_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/batch.h"
#include "engine/batch_policy.h"
#include "engine/clock.h"
#include "engine/engine_observer.h"
#include "engine/latency_model.h"
#include "engine/model_metadata.h"
#include "engine/request_queue.h"

namespace coalesce {

// Turns a model's stream of requests into batches: the single consumer of its RequestQueue.
//
// Each round drains the queue into a private pending list kept in ComesBefore() order
// (priority, deadline, arrival), each request keyed by its input shape (or, for a model that
// pads, by its bucket: Options::padding); answers requests that
// were cancelled or whose deadline passed while they waited (FinishIfDead()); asks the
// BatchPolicy what to do; answers the requests it sheds (DEADLINE_EXCEEDED) and hands every
// batch it closes to the BatchSink exactly as the policy named it. The policy alone decides what
// a batch holds, at shutdown too (DecideMode::kFlush). Batch forming lives in this one thread's
// private state, so the lock-free queue stays a plain queue.
//
// `RunOnce()` is the whole algorithm and takes its time from the injected Clock, so tests drive
// it step by step with a fake clock and no thread. `Start()` runs it on a thread that sleeps
// until the policy's wake-up time, a push, or a worker's `Wake()`.
//
// Thread-safety: `RunOnce()` must not be called while the thread runs. `Start()` and `Stop()` are
// called by the owner, once each.
class Batcher {
 public:
  struct Options {
    // Not owned; all must outlive the batcher. `metrics` may be null.
    RequestQueue* queue = nullptr;
    const BatchPolicy* policy = nullptr;
    BatchSink* sink = nullptr;
    const LatencyModel* latency = nullptr;
    Clock* clock = nullptr;
    EngineObserver* metrics = nullptr;
    // The model's padding (ModelMetadata::padding), or null for none: requests are then keyed
    // by their dims padded to their bucket, and carry their length and bucket to the policy.
    // Not owned; must outlive the batcher.
    const PaddingSpec* padding = nullptr;
  };

  static absl::StatusOr<std::unique_ptr<Batcher>> Create(const Options& options);
  // Stops (see Stop()).
  ~Batcher();

  // One round: drain the queue, drop and shed, dispatch every batch the policy closes, and
  // return when the policy wants to be asked again (InfiniteFuture() to wait for an event).
  absl::Time RunOnce();

  // Runs rounds on a thread until Stop().
  void Start();

  // Flushes: every request already queued or pending is dispatched as workers free up, in the
  // batches the policy forms in DecideMode::kFlush, then the thread exits. Requests pushed after
  // Stop() returns stay in the queue (their owner answers them). Idempotent.
  void Stop();

  // Requests drained from the queue and not yet dispatched or answered. For tests; call only
  // when the thread is not running.
  int64_t pending() const { return static_cast<int64_t>(pending_.size()); }

 private:
  // A pending request and the view of it the policy sees.
  struct Entry {
    PendingRequest view;
    std::unique_ptr<InferRequest> request;
  };

  explicit Batcher(const Options& options) : options_(options) {}

  absl::Time RunRound(absl::Time now, DecideMode mode);
  // Moves newly queued requests into pending_, keeping its order.
  void Drain();
  // What the policy sees of `request`.
  PendingRequest ViewOf(const InferRequest& request);
  // The key of `request`'s input shape among the pending requests (PendingRequest::shape): of
  // its dims, or for a padded request, of its dims padded to `bucket`.
  int64_t ShapeKey(const InferRequest& request, int64_t bucket);
  // Answers cancelled and expired requests and removes them.
  void DropDead(absl::Time now);
  // Removes the entries whose request was answered or dispatched (null), keeping the order of
  // the rest, and gives their places in the queue back.
  void RemoveTaken();
  void Loop();

  const Options options_;

  // Owned by the batching thread (or the test calling RunOnce()).
  std::vector<Entry> pending_;
  std::vector<std::unique_ptr<InferRequest>> drained_;
  std::vector<PendingRequest> view_;
  // Input dims to shape key, for models with variable dims (a fixed-dims model's requests carry
  // no dims and all have key 0).
  std::map<std::vector<std::vector<int64_t>>, int64_t> shape_keys_;

  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace coalesce

#endif  // COALESCE_ENGINE_BATCHER_H_
