#include "engine/spread_sink.h"

#include <utility>

namespace coalesce {

int SpreadSink::idle_workers() const {
  int idle = 0;
  for (const BatchSink* sink : sinks_) idle += sink->idle_workers();
  return idle;
}

void SpreadSink::Dispatch(Batch batch) {
  size_t chosen = last_;
  int most = -1;
  for (size_t step = 1; step <= sinks_.size(); ++step) {
    const size_t i = (last_ + step) % sinks_.size();
    const int idle = sinks_[i]->idle_workers();
    if (idle > most) {
      most = idle;
      chosen = i;
    }
  }
  last_ = chosen;
  sinks_[chosen]->Dispatch(std::move(batch));
}

}  // namespace coalesce
