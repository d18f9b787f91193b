#ifndef COALESCE_EXECUTION_MODEL_STATISTICS_H_
#define COALESCE_EXECUTION_MODEL_STATISTICS_H_

#include <atomic>
#include <cstdint>
#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace coalesce {

// The cumulative counts and durations that Triton's ModelStatistics RPC reports for one model
// version: requests by outcome, time queued, and per batch size the time spent gathering inputs,
// computing and scattering outputs. Unlike the Prometheus series (histograms, for rates and
// quantiles), these are exact running totals that a client can difference between two calls.
//
// Thread-safe: recorded from RPC threads and executor workers at once. Per-request counters are
// atomics; per-batch figures take a mutex once per batch.
class ModelStatistics {
 public:
  // A count and the total of its durations.
  struct Duration {
    uint64_t count = 0;
    uint64_t ns = 0;
  };
  struct BatchStages {
    Duration compute_input;
    Duration compute_infer;
    Duration compute_output;
  };
  struct Snapshot {
    // Wall-clock time of the last successful answer; absl::UnixEpoch() if none yet.
    absl::Time last_inference = absl::UnixEpoch();
    // Samples (rows) answered successfully.
    uint64_t inference_count = 0;
    // Batches executed successfully.
    uint64_t execution_count = 0;
    Duration success;
    Duration fail;
    Duration queue;
    // Totals over every batch size.
    BatchStages stages;
    // Keyed by batch size (rows).
    std::map<int64_t, BatchStages> batches;
  };

  // One answered request of `rows` rows, `latency` from arrival to answer. `now` is wall-clock.
  void RecordRequest(bool ok, int64_t rows, absl::Duration latency, absl::Time now);
  // Time a request waited between arrival and the start of its batch.
  void RecordQueued(absl::Duration waited);
  // One batch that ran successfully, and the time of each of its stages.
  void RecordBatch(int64_t rows, absl::Duration gather, absl::Duration compute,
                   absl::Duration scatter);

  Snapshot Get() const;

 private:
  struct AtomicDuration {
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> ns{0};
    void Add(absl::Duration d);
    Duration Load() const;
  };

  AtomicDuration success_;
  AtomicDuration fail_;
  AtomicDuration queue_;
  std::atomic<uint64_t> inference_count_{0};
  std::atomic<int64_t> last_inference_unix_ns_{0};

  mutable absl::Mutex mu_;
  uint64_t execution_count_ ABSL_GUARDED_BY(mu_) = 0;
  BatchStages stages_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, BatchStages> batches_ ABSL_GUARDED_BY(mu_);
};

}  // namespace coalesce

#endif  // COALESCE_EXECUTION_MODEL_STATISTICS_H_
