#ifndef COALESCE_EXECUTION_TORCH_TORCH_DEVICE_FAULTS_H_
#define COALESCE_EXECUTION_TORCH_TORCH_DEVICE_FAULTS_H_

// TESTS ONLY (and the engine benchmark's fallback check): device failures on demand, built into
// the coalesce_torch_testing target, never into the server. Like torch_backend.h, this header
// includes no Torch header.

#include "execution/torch/torch_backend.h"

namespace coalesce {

// The next `n` batches of `backend` that would run on the device throw there instead, as a
// failing device does, so that tests exercise the fallback and the return to the device on any
// machine: on a CPU-only machine, the served (frozen, maybe bf16) module plays the device.
// Replaces any failures still pending. Thread-safe.
void InjectDeviceFailures(TorchBackend& backend, int n);

}  // namespace coalesce

#endif  // COALESCE_EXECUTION_TORCH_TORCH_DEVICE_FAULTS_H_
