#ifndef COALESCE_EXECUTION_DEVICE_BUSY_H_
#define COALESCE_EXECUTION_DEVICE_BUSY_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/clock.h"

namespace coalesce {

// How long one device has had a batch on it: the union of the intervals from the start to the
// end of every backend call on the device, whichever model, worker or thread made it. Two calls
// that overlap count once (two workers with two batches each keep the device no busier than
// one call does), and time with no call at all counts nothing.
//
// The figure is coalesce's own and the same on every backend: a call is "on the device" from the
// moment the executor enters the backend until the backend returns, its host-to-device copies,
// conversion and synchronisation included. It says how much of the time the device had work
// queued, not how hard the work kept it (see docs/metrics.md).
//
// Thread-safe. Times come from `clock`, read under the lock, so that concurrent calls are
// ordered by when they reached it.
class DeviceBusy {
 public:
  // `clock` must outlive this object.
  explicit DeviceBusy(Clock* clock);

  DeviceBusy(const DeviceBusy&) = delete;
  DeviceBusy& operator=(const DeviceBusy&) = delete;

  // A backend call on the device starts (ends). Every Begin() is followed by exactly one End().
  void Begin();
  void End();

  // Busy time since construction, a call still running counted up to now. Never decreases.
  absl::Duration BusyTime() const;

  Clock* clock() const { return clock_; }

  // Begin() on construction, End() on destruction; `busy` may be null (no tracking).
  class Scope {
   public:
    explicit Scope(DeviceBusy* busy) : busy_(busy) {
      if (busy_ != nullptr) busy_->Begin();
    }
    ~Scope() {
      if (busy_ != nullptr) busy_->End();
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    DeviceBusy* const busy_;
  };

 private:
  Clock* const clock_;

  mutable absl::Mutex mu_;
  // Calls on the device now.
  int active_ ABSL_GUARDED_BY(mu_) = 0;
  // When active_ last went from 0 to 1.
  absl::Time busy_since_ ABSL_GUARDED_BY(mu_);
  // Busy time of the periods already ended (active_ back to 0).
  absl::Duration busy_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
};

}  // namespace coalesce

#endif  // COALESCE_EXECUTION_DEVICE_BUSY_H_
