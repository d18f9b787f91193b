#ifndef COALESCE_ENGINE_SPREAD_SINK_H_
#define COALESCE_ENGINE_SPREAD_SINK_H_

#include <vector>

#include "engine/batch.h"

namespace coalesce {

// One BatchSink over several, so that one batcher feeds a model whose instances sit on several
// devices (an executor per device). Its idle workers are theirs added up; each batch goes to the
// sink with the most idle workers, ties broken by turns (the sink after the last one chosen), so
// that under light load the devices take batches in turn rather than one device taking all.
//
// Thread-safety: as BatchSink. Dispatch() is called from the batcher thread alone, and a sink's
// idle_workers() only grows behind its back (its workers coming free), so the sink chosen still
// has an idle worker when it is handed the batch.
class SpreadSink : public BatchSink {
 public:
  // `sinks` must be non-empty and outlive this.
  explicit SpreadSink(std::vector<BatchSink*> sinks) : sinks_(std::move(sinks)) {}

  int idle_workers() const override;
  void Dispatch(Batch batch) override;

 private:
  const std::vector<BatchSink*> sinks_;
  // The sink the last batch went to. Touched by the batcher thread alone.
  size_t last_ = 0;
};

}  // namespace coalesce

#endif  // COALESCE_ENGINE_SPREAD_SINK_H_
