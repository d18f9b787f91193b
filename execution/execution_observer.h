#ifndef COALESCE_EXECUTION_EXECUTION_OBSERVER_H_
#define COALESCE_EXECUTION_EXECUTION_OBSERVER_H_

#include <cstdint>

#include "absl/time/time.h"
#include "engine/engine_observer.h"
#include "execution/backend.h"

namespace coalesce {

// What the executor reports about the batches it runs for one model version, beside what every
// part of the engine reports (EngineObserver). Implemented by the serving layer (ModelMetrics);
// the executor only calls it.
//
// Implementations must be thread-safe: every executor thread calls at once.
class ExecutionObserver : public EngineObserver {
 public:
  // Time a request waited from arrival until its batch started.
  virtual void RecordQueued(absl::Duration waited) = 0;
  // One executed batch: its rows, the backend's time on it, and what the latency model had
  // predicted for it.
  virtual void RecordBatch(int64_t rows, absl::Duration compute, absl::Duration predicted) = 0;
  // The executor's own time around a batch: gathering inputs before it, scattering outputs
  // (and answering) after it.
  virtual void RecordStages(absl::Duration gather, absl::Duration scatter) = 0;
  // How long a gathered batch waited for another batch's backend call: its worker's
  // (Executor::Options::batches_per_worker) or any (Executor::Options::exclusive_backend).
  virtual void RecordBackendWait(absl::Duration wait) = 0;
  // A batch's stages on the device, where the backend timed them (Backend::TakeDeviceStages()).
  virtual void RecordDeviceStages(const Backend::DeviceStages& stages) = 0;
  // A failed batch split to find the requests that fail alone, and each backend call spent on
  // its parts (Executor: split and retry).
  virtual void RecordSplitBatch() = 0;
  virtual void RecordRetryExecution() = 0;
  // One request for staging memory by an executor thread: a hit reused its buffer, a miss had to
  // allocate.
  virtual void RecordStaging(bool hit) = 0;
  // One batch of a model that pads (ModelMetadata::padding): the elements of its padded inputs
  // staged for the backend, and how many of them are padding (0 for a batch that runs as sent).
  virtual void RecordPadding(int64_t pad_elements, int64_t staged_elements) = 0;
  // The latency model's current estimate for batches of `rows` rows.
  virtual void SetPredictedBatchDuration(int64_t rows, absl::Duration predicted) = 0;
};

}  // namespace coalesce

#endif  // COALESCE_EXECUTION_EXECUTION_OBSERVER_H_
