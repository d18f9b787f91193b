#include "execution/device_busy.h"

namespace coalesce {

DeviceBusy::DeviceBusy(Clock* clock) : clock_(clock) {}

void DeviceBusy::Begin() {
  absl::MutexLock lock(&mu_);
  if (active_++ == 0) busy_since_ = clock_->Now();
}

void DeviceBusy::End() {
  absl::MutexLock lock(&mu_);
  if (--active_ == 0) busy_ += clock_->Now() - busy_since_;
}

absl::Duration DeviceBusy::BusyTime() const {
  absl::MutexLock lock(&mu_);
  if (active_ == 0) return busy_;
  return busy_ + (clock_->Now() - busy_since_);
}

}  // namespace coalesce
