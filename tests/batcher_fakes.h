#ifndef COALESCE_TESTS_BATCHER_FAKES_H_
#define COALESCE_TESTS_BATCHER_FAKES_H_

// What batcher tests put around a Batcher: a sink that records batches, a latency model of one
// fixed time, and the dims of what was dispatched.

#include <cstdint>
#include <vector>

#include "absl/time/time.h"
#include "engine/batch.h"
#include "engine/latency_model.h"

namespace coalesce {

// Records batches instead of running them; its idle worker count is set by the test.
class FakeSink : public BatchSink {
 public:
  int idle_workers() const override { return idle; }
  void Dispatch(Batch batch) override {
    --idle;
    batches.push_back(std::move(batch));
  }

  int idle = 1;
  std::vector<Batch> batches;
};

// Every batch takes `per_batch`, whatever its size.
class FixedLatency : public LatencyModel {
 public:
  explicit FixedLatency(absl::Duration per_batch) : per_batch_(per_batch) {}
  absl::Duration Predict(int64_t rows) const override { return per_batch_; }

 private:
  absl::Duration per_batch_;
};

// The first dim of the first input of each request of each batch `sink` received.
inline std::vector<std::vector<int64_t>> DispatchedFirstDims(const FakeSink& sink) {
  std::vector<std::vector<int64_t>> dims;
  for (const Batch& batch : sink.batches) {
    std::vector<int64_t>& d = dims.emplace_back();
    for (const auto& request : batch.requests) d.push_back(request->input_dims()[0][0]);
  }
  return dims;
}

}  // namespace coalesce

#endif  // COALESCE_TESTS_BATCHER_FAKES_H_
