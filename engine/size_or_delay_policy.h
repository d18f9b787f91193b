#ifndef COALESCE_ENGINE_SIZE_OR_DELAY_POLICY_H_
#define COALESCE_ENGINE_SIZE_OR_DELAY_POLICY_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "engine/batch_policy.h"

namespace coalesce {

// The classic dynamic-batching rule (Triton's, TF Serving's): a batch closes when it is full or
// when its oldest request has waited `max_queue_delay`, whichever comes first.
//
//  - The batch: the requests of the first pending request's shape, in order, while they fit in
//    `max_batch_size` rows (a request is never split). Requests of other shapes wait for a later
//    batch.
//    For a model that pads, the batch is one of the first request's bucket, and when its
//    requests leave room, requests of smaller buckets join it, padded up, in order, while its
//    padding stays within `max_padding_ratio` (JoinSmallerBuckets()).
//  - Full: the requests of that shape (and those that joined) hold at least `max_batch_size`
//    rows.
//  - Old: the batch's oldest request arrived `max_queue_delay` ago or earlier.
//  - Deadlines and the latency model are ignored: this is the baseline that the deadline-aware
//    policy (deadline_policy.h) is measured against. (The batcher still drops requests whose
//    deadline has passed.)
//  - No idle worker: nothing is dispatched; requests keep accumulating (up to a full batch) and
//    the batcher asks again when a worker frees up. Under load this grows batches to
//    `max_batch_size` by itself, without adding delay when the server is quiet.
//  - Flush (DecideMode::kFlush): the batch closes at once, full or not.
//
// A request is dispatched exactly once, by whichever rule fires first for its batch.
class SizeOrDelayPolicy : public BatchPolicy {
 public:
  struct Options {
    // Rows in the largest batch. Must be >= 1.
    int64_t max_batch_size = 32;
    // Longest a request waits for others to join its batch. Zero dispatches as soon as a
    // worker is free. Must be >= 0.
    absl::Duration max_queue_delay = absl::Microseconds(500);
    // For a model that pads (PaddingSpec::max_padding_ratio): the largest share of padding that
    // requests of smaller buckets may bring into a batch they join. 0: they never join. Must be
    // in [0, 1).
    double max_padding_ratio = 0;
  };

  static absl::StatusOr<std::unique_ptr<SizeOrDelayPolicy>> Create(const Options& options);

  BatchDecision Decide(absl::Time now, absl::Span<const PendingRequest> pending,
                       int idle_workers, const LatencyModel& latency,
                       DecideMode mode) const override;

 private:
  explicit SizeOrDelayPolicy(const Options& options) : options_(options) {}

  const Options options_;
};

}  // namespace coalesce

#endif  // COALESCE_ENGINE_SIZE_OR_DELAY_POLICY_H_
