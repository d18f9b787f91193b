#ifndef COALESCE_ENGINE_BATCH_H_
#define COALESCE_ENGINE_BATCH_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/infer_request.h"

namespace coalesce {

// Requests the batcher closed into one execution, in the order their rows are laid out.
struct Batch {
  std::vector<std::unique_ptr<InferRequest>> requests;
  int64_t rows = 0;
};

// Where the batcher sends closed batches (the executor, or a fake in tests).
//
// Thread-safety: implementations are called from the batcher thread and must be thread-safe
// against their own workers.
class BatchSink {
 public:
  virtual ~BatchSink() = default;

  // Workers that could start a batch now, not counting batches already handed over.
  virtual int idle_workers() const = 0;

  // Takes ownership of `batch`; never blocks. The batcher calls it only when idle_workers() > 0.
  virtual void Dispatch(Batch batch) = 0;
};

}  // namespace coalesce

#endif  // COALESCE_ENGINE_BATCH_H_
