#ifndef COALESCE_CORE_TORCH_TORCH_BACKEND_IMPL_H_
#define COALESCE_CORE_TORCH_TORCH_BACKEND_IMPL_H_

// TorchBackend's state, shared by torch_backend.cc (loading, the precision check) and
// torch_execution.cc (running batches, the device fallback). Included only by those two; no
// protobuf-generated header may be included next to it (a PyTorch wheel bundles its own
// google/protobuf headers).

#include <torch/script.h>
#include <torch/torch.h>
#if defined(COALESCE_WITH_CUDA)
#include <c10/cuda/CUDAStream.h>
#endif

#include <atomic>
#include <exception>
#include <functional>
#include <optional>
#include <stdexcept>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "core/device.h"
#include "core/torch/torch_backend.h"

namespace coalesce {

// What one executor worker runs with: its own copy of the module (no state shared between
// workers), and on CUDA its own stream, so two workers' copies and kernels overlap.
struct WorkerState {
  torch::jit::Module module;
#if defined(COALESCE_WITH_CUDA)
  std::optional<c10::cuda::CUDAStream> stream;
#endif
};

// Everything a TorchBackend holds. Members above `fell_back` are constant once Initialize()
// returns; the fallback state below is shared by all workers, through atomics and
// `fallback_mu`.
struct TorchBackend::Impl {
  // Constant after Initialize().
  ModelMetadata metadata;
  // The module as loaded (fp32, CPU): the precision check's reference and the fallback.
  torch::jit::Module cpu_module;
  std::vector<WorkerState> workers;
  DeviceKind device_kind = DeviceKind::kCpu;
  Precision precision = Precision::kFp32;
  torch::Device device{torch::kCPU};
  torch::ScalarType compute_type = torch::kFloat;
  double precision_error = 0;
  bool optimized = false;
  absl::Duration recheck_interval = absl::Seconds(30);
  Clock* clock = nullptr;

  // Read without the lock on every batch; written under fallback_mu.
  std::atomic<bool> fell_back{false};
  std::atomic<int64_t> fallbacks{0};
  std::atomic<int> injected_failures{0};

  absl::Mutex fallback_mu;
  // When a batch may next try the device while on the fallback.
  absl::Time next_recheck ABSL_GUARDED_BY(fallback_mu) = absl::InfinitePast();
  // A batch is trying the device for a recheck; others stay on the fallback meanwhile.
  bool probing ABSL_GUARDED_BY(fallback_mu) = false;

  // Where output `o` of `shape` (batch dimension first) goes: `bytes` bytes of host memory.
  using OutputSink =
      std::function<char*(int o, const std::vector<int64_t>& shape, int64_t bytes)>;

  absl::Status Run(int worker, int64_t rows, absl::Span<const char* const> inputs,
                   absl::Span<const std::vector<int64_t>> input_dims, const OutputSink& sink);
  // Runs worker `worker`'s module on the device, on its stream (CUDA) or under the submission
  // lock (MPS). Throws what the device throws.
  absl::Status RunOnDevice(int worker, int64_t rows, absl::Span<const char* const> inputs,
                           absl::Span<const std::vector<int64_t>> input_dims,
                           const OutputSink& sink);
  // Runs `module` on `device` in `compute`; the shared body of the device and CPU paths.
  // `input_dims` are each input's dims without the batch dimension.
  absl::Status RunOn(torch::jit::Module& module, torch::Device on, torch::ScalarType compute,
                     int64_t rows, absl::Span<const char* const> inputs,
                     absl::Span<const std::vector<int64_t>> input_dims, const OutputSink& sink);
  // Whether this batch should run on the device: always while healthy; on the fallback, one
  // batch per recheck interval, which sets `*probe`.
  bool ShouldTryDevice(bool* probe);
  // The device threw `e` on a batch (`probe`: a recheck's batch): counts it, moves the model
  // to the fallback and schedules the next recheck.
  void FellBack(const std::exception& e, bool probe);
  // A recheck's batch succeeded on the device: back to it.
  void Recovered();
  // Gives every worker its own copy of `served` (and stream), then runs WarmUpAndCheck().
  absl::Status InstallAndCheck(const torch::jit::Module& served, const Options& options);
  // Consumes one injected failure, if any is left.
  bool TakeInjectedFailure();
  // The spec dims of every input (a fixed-size model's input_dims).
  std::vector<std::vector<int64_t>> SpecInputDims() const;
  // A sink into `outputs`, for fixed-size outputs of exactly their spec's shape.
  OutputSink FixedSink(int64_t rows, absl::Span<char* const> outputs) const;
};

}  // namespace coalesce

#endif  // COALESCE_CORE_TORCH_TORCH_BACKEND_IMPL_H_
