#ifndef COALESCE_EXECUTION_TORCH_TORCH_CEILINGS_H_
#define COALESCE_EXECUTION_TORCH_TORCH_CEILINGS_H_

// BENCHMARKS ONLY (bench/engine_bench.cc and its tests): a TorchBackend's ceilings, built into
// the coalesce_torch_bench target, never into the server. Like torch_backend.h, this header
// includes no Torch header.

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "execution/torch/torch_backend.h"

namespace coalesce {

// The model's ceiling. Puts random inputs for `rows` rows on the device once, already in the
// compute precision, then runs worker `worker`'s module `iterations` times, copying each result
// to host memory in its staging type (the synchronisation point, as in Execute()). Returns the
// time of those runs by the backend's clock (TorchBackend::Options::clock), the input set-up
// excluded. Never falls back.
absl::StatusOr<absl::Duration> TimeResidentBatches(TorchBackend& backend, int worker,
                                                   int64_t rows, int iterations);

// What a server that receives its inputs as bytes pays per batch, one batch at a time. Puts
// random inputs for `rows` rows, in their wire type, into staging memory (pinned on CUDA) once,
// then runs worker `worker`'s batch path `iterations` times from there into host staging
// memory, exactly as Execute() does on the device (from a CUDA graph, with
// TorchBackend::Options::cuda_graphs): host->device copy, conversion to the compute precision,
// forward, conversion to the wire type, device->host copy. No gather, scatter or answers.
// Returns the time of those runs by the backend's clock, the set-up and one untimed first run
// excluded. Never falls back.
absl::StatusOr<absl::Duration> TimeHostBatches(TorchBackend& backend, int worker, int64_t rows,
                                               int iterations);

}  // namespace coalesce

#endif  // COALESCE_EXECUTION_TORCH_TORCH_CEILINGS_H_
