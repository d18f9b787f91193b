#ifndef COALESCE_EXECUTION_TORCH_TORCH_BACKEND_H_
#define COALESCE_EXECUTION_TORCH_TORCH_BACKEND_H_

// This header includes no Torch header on purpose: only torch_backend.cc sees LibTorch, so the
// rest of the project compiles fast and never meets the PyTorch wheel's bundled fmt.

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/clock.h"
#include "execution/backend.h"
#include "execution/device.h"

namespace coalesce {

// Runs a TorchScript module with LibTorch on CPU, CUDA or MPS.
//
// The model sees what Triton's PyTorch backend would give it: each input in its declared type
// and in its `dims` (or the config's reshape), after a batch dimension only for a model with
// max_batch_size > 0; it must return each output likewise. The one difference is precision:
// FP32 inputs (and the module's FP32 parameters and buffers) are converted on the device to
// the compute precision (fp16 by default on CUDA and MPS), and FP32 outputs back while being
// copied to the host; every other type stays as declared end to end. That copy to the host is
// the synchronisation point: there is no device-wide synchronise. On MPS, where LibTorch has
// one process-wide command stream and concurrent submission from several threads crashes Metal,
// device work is serialised by a process-wide mutex; host-side gather and scatter of the other
// worker still overlap with it.
//
// Each worker has its own copy of the module, frozen and passed through optimize_for_inference
// (where that works), and on CUDA its own stream.
//
// Device failure: a batch whose device run throws (an error, out of memory) is answered by the
// fp32 CPU copy of the model, and the model stays on that fallback; every
// `device_recheck_interval` one batch tries the device again, and if it succeeds the model
// returns to the device. Both transitions are logged to stderr; Fallback() reports them for
// the metrics. On the CPU device a throwing model is an error of the model, not retried on the
// same CPU, except for failures injected by tests (InjectDeviceFailures(), test-only:
// torch_device_faults.h).
//
// Thread-safe: every method may be called from any thread; `Execute()` runs concurrently from
// the executor's workers, each with its own worker index.
class TorchBackend : public Backend {
 public:
  struct Options {
    // The device to run on; unset: MPS, then CUDA, then CPU, whichever is available first
    // (ResolveDevice()).
    std::optional<DeviceKind> device;
    // On CUDA, the device index (cuda:N) the model, its streams, staging and graphs use. Must be
    // below VisibleCudaDevices().
    int cuda_device = 0;
    // The precision to compute in; unset: fp16 on MPS/CUDA, fp32 on CPU (ResolvePrecision()).
    // Applies only to what the model declares FP32; a model with no FP32 input runs in fp32
    // terms, as written.
    std::optional<Precision> precision;
    // Executor workers that will call Execute(); on CPU they share the cores, so each gets
    // cores / num_workers intra-op threads. Must be >= 1.
    int num_workers = 2;
    // Largest accepted difference between the served model (device, precision) and its fp32
    // CPU reference on random inputs, as max |served - reference| / max |reference|. Above it,
    // loading fails rather than serve wrong answers. The roadmap measured fp16 within 1e-2.
    double max_precision_error = 1e-2;
    // Pass the frozen module through torch::jit::optimize_for_inference (operator folding and
    // fusion). If that throws, or the result fails the dry run or the precision check, the
    // plain frozen module is served instead (logged); see optimized().
    bool optimize_for_inference = true;
    // CUDA only: replay each worker's batch path (host->device copy, conversion, forward,
    // conversion, device->host copy) from a CUDA graph captured per batch size, one launch
    // instead of one per operation. A batch size is captured after it ran twice eagerly, and
    // only for the executor's page-locked staging buffers. A model that cannot be captured
    // (it reads device values on the host, e.g. data-dependent control flow) makes the first
    // capture fail: logged, and the model runs eagerly from then on. Ignored on CPU and MPS.
    bool cuda_graphs = true;
    // CUDA in fp16 only: stage FP32 inputs and outputs as FP16 (InputStaging()), so the
    // executor narrows them while gathering and widens them while scattering, on the host, and
    // half the bytes cross PCIe. Narrowing rounds to nearest even, as the device's conversion
    // did, so answers are the same; the CPU fallback's fp32 answers are then rounded to fp16.
    bool stage_fp16 = true;
    // After a device failure, how long the model serves from its CPU fallback before one batch
    // tries the device again. Zero retries with the next batch; absl::InfiniteDuration() never
    // returns (until RecheckDevice()). Must not be negative.
    absl::Duration device_recheck_interval = absl::Seconds(30);
    // The time the recheck interval is measured in; null means Clock::Real(). Not owned; must
    // outlive the backend.
    Clock* clock = nullptr;
  };

  // CUDA devices this process sees (0 without CUDA).
  static int VisibleCudaDevices();

  // The built-in demo model (execution/demo_model.h) with the given max_batch_size.
  static absl::StatusOr<std::unique_ptr<TorchBackend>> CreateDemo(const Options& options,
                                                                  int64_t max_batch_size);

  // A TorchScript file whose forward() takes the inputs of `metadata` in order and returns a
  // tensor or a tuple of tensors matching its outputs.
  static absl::StatusOr<std::unique_ptr<TorchBackend>> Load(const std::string& path,
                                                            ModelMetadata metadata,
                                                            const Options& options);

  ~TorchBackend() override;

  const ModelMetadata& metadata() const override;
  absl::Status Execute(int worker, int64_t rows, absl::Span<const char* const> inputs,
                       absl::Span<char* const> outputs) override;
  absl::Status ExecuteVariable(int worker, int64_t rows, absl::Span<const char* const> inputs,
                               const VariableBatch& batch) override;
  // 2 on CUDA (a worker's copies overlap its other batch's time on the device), 1 on CPU and
  // MPS (where the device's submissions are serialised anyway; not measured there).
  int DefaultBatchesPerWorker() const override;
  std::string DeviceDescription() const override;
  // "cuda:0" on CUDA, "cpu" or "mps" elsewhere. A model on its CPU fallback still names its
  // device.
  std::string DeviceName() const override;
  // Page-locked on CUDA, plain heap memory elsewhere.
  std::shared_ptr<char> AllocateStaging(int64_t bytes) override;
  // StagingLayout::Fp16() for FP32 tensors with Options::stage_fp16 on CUDA in fp16; as on the
  // wire otherwise.
  const StagingLayout& InputStaging(int i) const override;
  const StagingLayout& OutputStaging(int o) const override;

  // CUDA: the caching allocator's bytes on this model's device (shared with every model on
  // it). CPU and MPS: nothing (see torch_support.cc for why).
  std::optional<MemoryUsage> DeviceMemory() const override;
  FallbackState Fallback() const override;
  // CUDA: one batch in 16 of each worker (in 256 with CUDA graphs, run eagerly for it: a replay
  // cannot be split) is timed with events on the worker's stream.
  std::optional<DeviceStages> TakeDeviceStages(int worker) override;

  // The precision check's result at load (see Options::max_precision_error).
  double precision_error() const;
  // Whether the served module is the optimize_for_inference one (not just frozen).
  bool optimized() const;
  // Batches that failed on the device and were run on the CPU instead (Fallback().fallbacks).
  int64_t fallbacks() const;
  // Whether the model serves from its CPU fallback now.
  bool on_fallback() const;
  // What Options::cuda_graphs did so far, over all workers.
  struct GraphStats {
    int64_t captured = 0;  // Graphs captured.
    int64_t replays = 0;   // Batches run by replaying one.
    bool failed = false;   // A capture failed; graphs are off since.
  };
  GraphStats cuda_graphs() const;
  // On the fallback, lets the next batch try the device at once instead of after the recheck
  // interval. No effect on a model on its device.
  void RecheckDevice();

 private:
  struct Impl;
  // Reaches impl_ for code built only into benchmark and test programs (torch_ceilings.h,
  // torch_device_faults.h), so that their hooks stay out of this interface.
  friend class TorchBackendInternals;
  explicit TorchBackend(std::unique_ptr<Impl> impl);
  // Picks device and precision, moves the module there and runs a dry run.
  static absl::StatusOr<std::unique_ptr<TorchBackend>> Initialize(std::unique_ptr<Impl> impl,
                                                                  const Options& options);

  // Runs every worker's module once, then checks precision_error() against the tolerance.
  static absl::Status WarmUpAndCheck(Impl& impl, const Options& options);

  std::unique_ptr<Impl> impl_;
};

}  // namespace coalesce

#endif  // COALESCE_EXECUTION_TORCH_TORCH_BACKEND_H_
