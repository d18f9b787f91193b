#include "execution/model_statistics.h"

#include <algorithm>

namespace coalesce {
namespace {

uint64_t Nanos(absl::Duration d) {
  return static_cast<uint64_t>(std::max<int64_t>(0, absl::ToInt64Nanoseconds(d)));
}

void Add(ModelStatistics::Duration& total, absl::Duration d) {
  ++total.count;
  total.ns += Nanos(d);
}

}  // namespace

void ModelStatistics::AtomicDuration::Add(absl::Duration d) {
  count.fetch_add(1, std::memory_order_relaxed);
  ns.fetch_add(Nanos(d), std::memory_order_relaxed);
}

ModelStatistics::Duration ModelStatistics::AtomicDuration::Load() const {
  return {count.load(std::memory_order_relaxed), ns.load(std::memory_order_relaxed)};
}

void ModelStatistics::RecordRequest(bool ok, int64_t rows, absl::Duration latency,
                                    absl::Time now) {
  if (!ok) {
    fail_.Add(latency);
    return;
  }
  success_.Add(latency);
  inference_count_.fetch_add(static_cast<uint64_t>(rows), std::memory_order_relaxed);
  last_inference_unix_ns_.store(absl::ToUnixNanos(now), std::memory_order_relaxed);
}

void ModelStatistics::RecordQueued(absl::Duration waited) { queue_.Add(waited); }

void ModelStatistics::RecordBatch(int64_t rows, absl::Duration gather, absl::Duration compute,
                                  absl::Duration scatter) {
  absl::MutexLock lock(&mu_);
  ++execution_count_;
  for (BatchStages* stages : {&stages_, &batches_[rows]}) {
    Add(stages->compute_input, gather);
    Add(stages->compute_infer, compute);
    Add(stages->compute_output, scatter);
  }
}

ModelStatistics::Snapshot ModelStatistics::Get() const {
  Snapshot s;
  s.success = success_.Load();
  s.fail = fail_.Load();
  s.queue = queue_.Load();
  s.inference_count = inference_count_.load(std::memory_order_relaxed);
  int64_t last = last_inference_unix_ns_.load(std::memory_order_relaxed);
  if (last != 0) s.last_inference = absl::FromUnixNanos(last);
  absl::MutexLock lock(&mu_);
  s.execution_count = execution_count_;
  s.stages = stages_;
  s.batches = batches_;
  return s;
}

}  // namespace coalesce
