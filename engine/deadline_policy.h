#ifndef COALESCE_ENGINE_DEADLINE_POLICY_H_
#define COALESCE_ENGINE_DEADLINE_POLICY_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/batch_policy.h"

namespace coalesce {

// coalesce's default batching: sizes each batch from a latency model so that every request in
// it meets its deadline, starts work the moment a worker is free, and sheds what cannot be met
// before it costs compute.
//
// The algorithm, for the pending requests in ComesBefore() order (priority, then earliest
// deadline, then arrival), with L(n) the predicted time of a batch of n rows:
//
//  1. Shed. A request whose deadline is before now + L(its rows) cannot be met even alone and
//     started now; it is answered DEADLINE_EXCEEDED at once. Work spent on it would be wasted
//     and would push other requests past their deadlines.
//  2. No idle worker: dispatch nothing and wait for one. Requests keep accumulating, which is
//     how batches grow under load: the batch size follows arrival rate x batch time by itself,
//     with no tuning.
//  3. Form the batch: a batch holds one shape, that of the first live request (the most urgent);
//     the requests of other shapes wait for a later batch. Of that shape, take the longest prefix
//     that fits in max_batch_size rows and whose predicted finish, now + L(rows), is no later
//     than the earliest deadline in it. Because the order is earliest-deadline-first, stopping
//     at the first request that would make the batch late keeps every member on time.
//     For a model that pads, the batch is one of the first live request's bucket, and when it
//     has room left (not full, not limited by a deadline) requests of smaller buckets join it,
//     padded up, in order, while they keep it on time and its padding within
//     max_padding_ratio (JoinSmallerBuckets()): they run now instead of waiting for a batch of
//     their own.
//  4. Overload guard. When step 3 stopped because of a deadline (not size), urgent requests are
//     shrinking the batch; at overload that cascades (smaller batches, lower throughput, more
//     misses). So also consider the batch of requests of the same shape that are safe in any
//     batch, deadline >= now + L(max_batch_size), taken in order up to max_batch_size rows. It
//     replaces the step-3 batch only when that one was squeezed below half of max_batch_size
//     and the safe batch holds at least twice its rows: a mild squeeze still serves the urgent
//     requests.
//     Skipped requests stay pending and are shed in step 1 once hopeless.
//  5. Close or wait. A batch that is full, or limited by a deadline, goes now. Otherwise, with no
//     max_queue_delay configured, it goes now too: a lone request is never held for a fixed
//     delay. With max_queue_delay configured (Triton's dynamic_batching setting), the batch waits
//     for more requests until it reaches a preferred batch size, or its oldest request has
//     waited max_queue_delay, or the latest start that still meets its earliest deadline,
//     min deadline - L(rows), whichever comes first: waiting never makes a deadline that an
//     earlier start would have met. When flushing (DecideMode::kFlush) the batch goes now.
//
// Requests without a deadline (InfiniteFuture) only ever close batches by size or delay.
// Priorities are strict: a lower level rides along only in space the higher levels leave, so a
// flood of low-priority requests never delays a high-priority one.
class DeadlinePolicy : public BatchPolicy {
 public:
  struct Options {
    // Rows in the largest batch. Must be >= 1.
    int64_t max_batch_size = 32;
    // Zero: dispatch as soon as a worker is free. Positive: wait up to this long for a batch to
    // fill (see step 5). Must be >= 0.
    absl::Duration max_queue_delay = absl::ZeroDuration();
    // Batch sizes (rows) worth closing early at while waiting; each in 1..max_batch_size.
    std::vector<int64_t> preferred_batch_sizes;
    // For a model that pads (PaddingSpec::max_padding_ratio): the largest share of padding that
    // requests of smaller buckets may bring into a batch they join. 0: they never join. Must be
    // in [0, 1).
    double max_padding_ratio = 0;
  };

  static absl::StatusOr<std::unique_ptr<DeadlinePolicy>> Create(const Options& options);

  BatchDecision Decide(absl::Time now, absl::Span<const PendingRequest> pending,
                       int idle_workers, const LatencyModel& latency,
                       DecideMode mode) const override;

 private:
  explicit DeadlinePolicy(Options options) : options_(std::move(options)) {}

  const Options options_;
};

}  // namespace coalesce

#endif  // COALESCE_ENGINE_DEADLINE_POLICY_H_
