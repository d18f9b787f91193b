#ifndef COALESCE_ENGINE_ENGINE_OBSERVER_H_
#define COALESCE_ENGINE_ENGINE_OBSERVER_H_

namespace coalesce {

// What the batching engine reports about one model version as it runs: requests it answers
// without running them. The engine calls it and never reads anything back, so that it needs no
// metrics library; the serving layer implements it (ModelMetrics: Prometheus series), and a test
// may implement it to count what happened.
//
// Implementations must be thread-safe: the batcher and the executor's workers call at once.
class EngineObserver {
 public:
  virtual ~EngineObserver() = default;

  // A request answered DEADLINE_EXCEEDED before it cost compute, because the policy (or
  // admission control) found that it cannot meet its deadline.
  virtual void RecordShed() = 0;
  // A request dropped while it waited because its caller cancelled it.
  virtual void RecordCancelled() = 0;
  // A request answered DEADLINE_EXCEEDED while it waited because its deadline passed.
  virtual void RecordExpired() = 0;
};

}  // namespace coalesce

#endif  // COALESCE_ENGINE_ENGINE_OBSERVER_H_
