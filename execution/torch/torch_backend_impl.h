#ifndef COALESCE_EXECUTION_TORCH_TORCH_BACKEND_IMPL_H_
#define COALESCE_EXECUTION_TORCH_TORCH_BACKEND_IMPL_H_

// TorchBackend's state, shared by torch_backend.cc (loading, the precision check) and
// torch_execution.cc (running batches, the device fallback), and reached through
// TorchBackendInternals by the benchmark-only torch_ceilings.cc and the test-only
// torch_device_faults.cc. Included only by those; no protobuf-generated header may be included
// next to it (a PyTorch wheel bundles its own google/protobuf headers).

#include <torch/script.h>
#include <torch/torch.h>
#if defined(COALESCE_WITH_CUDA)
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/clock.h"
#include "execution/address_ranges.h"
#include "execution/device.h"
#include "execution/torch/torch_backend.h"

namespace coalesce {

// One worker's CUDA graphs (TorchBackend::Options::cuda_graphs): a batch path captured per
// batch size and host buffers, after kEagerRunsBeforeCapture ordinary runs of the same key
// (the first runs of a TorchScript module profile and optimise it, and cuBLAS sets up its
// workspace for the stream; neither may happen inside a capture). All graphs of a worker share
// one memory pool: they run one at a time on the worker's stream, and no tensor outlives a
// run (inputs come from host memory, outputs go to host memory).
struct WorkerGraphs {
  static constexpr int kEagerRunsBeforeCapture = 2;
  // Keys (graphs or counts of eager runs) kept per worker; past it, new keys run eagerly. Each
  // of a worker's threads has its own staging (Executor::Options::batches_per_worker), so a
  // worker of two threads serving every size up to 256 needs 512.
  static constexpr size_t kMaxKeys = 1024;
#if defined(COALESCE_WITH_CUDA)
  struct Entry {
    int eager_runs = 0;
    std::unique_ptr<at::cuda::CUDAGraph> graph;  // Null until captured.
  };
  // Rows, then each input's and each output's host address.
  std::map<std::vector<uintptr_t>, Entry> entries;
  std::optional<at::cuda::MempoolId_t> pool;
#endif
};

// A worker's timing events, which split a sampled batch's time on the device into stages
// (Backend::DeviceStages). CUDA only; elsewhere empty and never used.
struct StageEvents {
  // The points recorded on the worker's stream, in order.
  enum Mark { kStart, kCopiedIn, kForwardDone, kCopiedOut, kMarks };
  // One batch in this many of a worker is timed: recording and reading four events costs a
  // few microseconds, a tenth of a small batch.
  static constexpr int64_t kSampleEvery = 16;
  // With CUDA graphs a timed batch runs eagerly instead of from its graph (up to twice as slow
  // at small batches), so one in this many: about 0.4% of batches.
  static constexpr int64_t kSampleEveryWithGraphs = 256;
#if defined(COALESCE_WITH_CUDA)
  StageEvents();
  void Record(Mark mark);
  // Waits for kCopiedOut (not the whole device), then reads the stages.
  Backend::DeviceStages Wait();

  std::vector<at::cuda::CUDAEvent> events;  // kMarks events, with timing enabled.
#endif
};

// Records `mark` on the current stream when `timing` is not null (a timed batch).
void MarkStage(StageEvents* timing, StageEvents::Mark mark);

// What one executor worker runs with: its own copy of the module (no state shared between
// workers), and on CUDA its own stream, so two workers' copies and kernels overlap, its graphs
// and its timing.
struct WorkerState {
  torch::jit::Module module;
#if defined(COALESCE_WITH_CUDA)
  std::optional<c10::cuda::CUDAStream> stream;
#endif
  WorkerGraphs graphs;
  // Device batches run (graph replays included), for sampling; the events (made on first use);
  // the last timed batch's stages, until TakeDeviceStages() takes them.
  int64_t device_batches = 0;
  std::unique_ptr<StageEvents> timing;
  std::optional<Backend::DeviceStages> last_stages;
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
  // Options::cuda_graphs, on a CUDA device.
  bool cuda_graphs = false;
  // Each input's and output's type in staging (Backend::InputStaging()): FP16 for FP32
  // tensors with Options::stage_fp16 on CUDA in fp16, else the wire type.
  std::vector<DataType> input_staging;
  std::vector<DataType> output_staging;
  // The page-locked staging memory handed out by AllocateStaging() and not yet freed: CUDA
  // graphs run only on buffers inside it. Shared with the memory's deleters, which may run
  // after the backend is gone.
  std::shared_ptr<AddressRanges> pinned = std::make_shared<AddressRanges>();

  // Set when a capture failed: every worker runs eagerly from then on.
  std::atomic<bool> graphs_failed{false};
  std::atomic<int64_t> graph_captures{0};
  std::atomic<int64_t> graph_replays{0};

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

  // `fixed_outputs`: the output buffers of a fixed-size batch (what `sink` returns), which
  // makes the batch eligible for a CUDA graph; empty for variable sizes.
  absl::Status Run(int worker, int64_t rows, absl::Span<const char* const> inputs,
                   absl::Span<const std::vector<int64_t>> input_dims, const OutputSink& sink,
                   absl::Span<char* const> fixed_outputs);
  // Runs worker `worker`'s module on the device, on its stream (CUDA, from a graph where one
  // applies) or under the submission lock (MPS). Throws what the device throws.
  absl::Status RunOnDevice(int worker, int64_t rows, absl::Span<const char* const> inputs,
                           absl::Span<const std::vector<int64_t>> input_dims,
                           const OutputSink& sink, absl::Span<char* const> fixed_outputs);
  // Runs `module` on `device` in `compute`; the shared body of the device and CPU paths.
  // `input_dims` are each input's dims without the batch dimension, as the client sent them.
  // The model takes each input in ModelShape() and must return each output in its spec's
  // model_dims() (after `rows` for a batching model): for max_batch_size 0, `rows` must be 1
  // and the tensors have no batch dimension. FP32 inputs are converted to `compute`, other
  // types reach the model as declared (torch_support::ModelTypeOf()). `capturing`: inside a CUDA
  // graph capture, where the device->host copies must not wait (the caller synchronises after
  // replaying the graph). `timing` (CUDA, not capturing): record the stages' events and, on
  // success, put the stages in `*stages`.
  // `staged`: inputs and outputs are in their staging types (the batch path), not their wire
  // types (the load-time checks).
  absl::Status RunOn(torch::jit::Module& module, torch::Device on, torch::ScalarType compute,
                     int64_t rows, absl::Span<const char* const> inputs,
                     absl::Span<const std::vector<int64_t>> input_dims, const OutputSink& sink,
                     bool staged, bool capturing = false, StageEvents* timing = nullptr,
                     std::optional<Backend::DeviceStages>* stages = nullptr);
  // The tensors of a forward's result (a tensor, or a tuple of them), one per output of the
  // metadata; INTERNAL naming the model otherwise.
  absl::StatusOr<std::vector<torch::Tensor>> OutputTensors(const torch::jit::IValue& result) const;
  // The CUDA graph path of a fixed-size batch on `state`'s stream: replays the batch's graph,
  // or captures it once the key has run eagerly often enough, and waits for the outputs.
  // Nothing (the caller runs eagerly) when graphs are off or failed, the buffers are not
  // page-locked staging, the key has not run often enough, or the worker has too many keys.
  std::optional<absl::Status> RunGraph(WorkerState& state, int64_t rows,
                                       absl::Span<const char* const> inputs,
                                       absl::Span<char* const> outputs);
  // Whether this batch should run on the device: always while healthy; on the fallback, one
  // batch per recheck interval, which sets `*probe`.
  bool ShouldTryDevice(bool* probe);
  // The device threw `e` on a batch (`probe`: a recheck's batch): counts it, moves the model
  // to the fallback and schedules the next recheck.
  void FellBack(const std::exception& e, bool probe);
  // A recheck's batch succeeded on the device: back to it.
  void Recovered();
  // A recheck's batch (`probe`) told nothing about the device (the CPU failed it too): the next
  // batch rechecks instead.
  void EndProbe(bool probe);
  // Gives every worker its own copy of `served` (and stream), then runs WarmUpAndCheck().
  absl::Status InstallAndCheck(const torch::jit::Module& served, const Options& options);
  // Consumes one injected failure (torch_device_faults.h), if any is left.
  bool TakeInjectedFailure();
  // The spec dims of every input (a fixed-size model's input_dims).
  std::vector<std::vector<int64_t>> SpecInputDims() const;
  // The shape the model takes `spec` in for `rows` samples whose client-side dims are `dims`:
  // `rows` first for a batching model (nothing for max_batch_size 0), then the reshape (or
  // `dims`) of one sample.
  std::vector<int64_t> ModelShape(const TensorSpec& spec, int64_t rows,
                                  absl::Span<const int64_t> dims) const;
  // A sink into `outputs`, for fixed-size outputs of exactly their spec's shape.
  OutputSink FixedSink(int64_t rows, absl::Span<char* const> outputs) const;
};

// A TorchBackend's state, for the benchmark-only and test-only code built beside the backend
// (torch_ceilings.h, torch_device_faults.h). Production code has no use for it.
class TorchBackendInternals {
 public:
  using Impl = TorchBackend::Impl;
  static Impl& Of(TorchBackend& backend) { return *backend.impl_; }
};

}  // namespace coalesce

#endif  // COALESCE_EXECUTION_TORCH_TORCH_BACKEND_IMPL_H_
