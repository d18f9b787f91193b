#include "engine/clock.h"

#include <chrono>

namespace coalesce {
namespace {

class SteadyClock : public Clock {
 public:
  absl::Time Now() const override {
    auto since_epoch = std::chrono::steady_clock::now().time_since_epoch();
    return absl::UnixEpoch() + absl::FromChrono(
        std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch));
  }
};

}  // namespace

Clock* Clock::Real() {
  static auto* clock = new SteadyClock();
  return clock;
}

}  // namespace coalesce
