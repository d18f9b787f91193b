#ifndef COALESCE_ENGINE_CLOCK_H_
#define COALESCE_ENGINE_CLOCK_H_

#include "absl/time/time.h"

namespace coalesce {

// Source of time for everything that batches or measures. Batching code never reads a clock
// directly, so tests can drive time with a fake (tests/fake_clock.h) instead of sleeping.
//
// Times are monotonic: `Now()` never goes backwards, and its epoch is arbitrary (not the Unix
// epoch), so compare and subtract them but never print them as dates. Thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;

  // The process-wide monotonic clock (std::chrono::steady_clock). Never null, never freed.
  static Clock* Real();
};

}  // namespace coalesce

#endif  // COALESCE_ENGINE_CLOCK_H_
