#ifndef COALESCE_TESTS_FAKE_DEVICE_BACKEND_H_
#define COALESCE_TESTS_FAKE_DEVICE_BACKEND_H_

// A backend that stands for a model on one of several fake GPUs, so that tests of instance
// placement run on a machine without any.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "execution/backend.h"

namespace coalesce {

// What several FakeDeviceBackends share: how many devices must have run a batch before any
// batch may finish, so that a test can see that batches went to every device.
struct FakeDevices {
  explicit FakeDevices(int devices) : waiting(devices) {}
  // A device's first batch counts it in; the last one opens the gate for all.
  void Arrive() {
    if (waiting.fetch_sub(1) == 1) all_used.Notify();
  }
  // Whether every device ran a batch within 10 s of the call (or before). After one wait
  // that times out, every call answers false at once, so that a test fails quickly.
  bool AllUsed() {
    if (!all_used.WaitForNotificationWithTimeout(absl::Seconds(10))) {
      gave_up = true;
      all_used.Notify();
    }
    return !gave_up;
  }
  std::atomic<int> waiting;
  std::atomic<bool> gave_up{false};
  absl::Notification all_used;
};

// Model `metadata` (one FP32 input, one FP32 output of the same dims) computing Y = 2 * X on
// fake device cuda:`gpu`. With `devices`, each batch waits until every device ran one
// (FakeDevices::AllUsed()), and fails if they do not: a batcher that sends every batch to one
// device fails the test instead of hanging it.
class FakeDeviceBackend : public Backend {
 public:
  FakeDeviceBackend(ModelMetadata metadata, int gpu, FakeDevices* devices)
      : metadata_(std::move(metadata)), gpu_(gpu), devices_(devices) {}

  const ModelMetadata& metadata() const override { return metadata_; }
  absl::Status Execute(int worker, int64_t rows, absl::Span<const char* const> inputs,
                       absl::Span<char* const> outputs) override {
    if (devices_ != nullptr) {
      if (!arrived_.exchange(true)) devices_->Arrive();
      if (!devices_->AllUsed()) {
        return absl::DeadlineExceededError(absl::StrCat(DeviceName(), ": the other devices "
                                                        "ran no batch"));
      }
    }
    const float* in = reinterpret_cast<const float*>(inputs[0]);
    float* out = reinterpret_cast<float*>(outputs[0]);
    const int64_t values = rows * metadata_.inputs[0].RowBytes() / int64_t{sizeof(float)};
    for (int64_t v = 0; v < values; ++v) out[v] = 2 * in[v];
    rows_ += rows;
    return absl::OkStatus();
  }
  std::string DeviceDescription() const override { return DeviceName() + " fp32"; }
  std::string DeviceName() const override { return absl::StrCat("cuda:", gpu_); }

  // Rows this device ran, profiling included.
  int64_t rows() const { return rows_.load(); }

 private:
  const ModelMetadata metadata_;
  const int gpu_;
  FakeDevices* const devices_;
  std::atomic<bool> arrived_{false};
  std::atomic<int64_t> rows_{0};
};

}  // namespace coalesce

#endif  // COALESCE_TESTS_FAKE_DEVICE_BACKEND_H_
