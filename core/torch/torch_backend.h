#ifndef COALESCE_CORE_TORCH_TORCH_BACKEND_H_
#define COALESCE_CORE_TORCH_TORCH_BACKEND_H_

// This header includes no Torch header on purpose: only torch_backend.cc sees LibTorch, so the
// rest of the project compiles fast and never meets the PyTorch wheel's bundled fmt.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/backend.h"

namespace coalesce {

// Runs a TorchScript module with LibTorch on CPU, CUDA or MPS.
//
// Inputs arrive in their wire datatype (FP32 for the demo) and are converted on the device to
// the compute precision (fp16 by default on CUDA and MPS); outputs are converted back while
// being copied to the host, and that copy is the synchronisation point: there is no device-wide
// synchronise. On MPS, where LibTorch has one process-wide command stream and concurrent
// submission from several threads crashes Metal, device work is serialised by a process-wide
// mutex; host-side gather and scatter of the other worker still overlap with it.
//
// Each worker has its own copy of the (frozen) module and, on CUDA, its own stream. If the device
// fails, the model falls back to its fp32 CPU copy, so requests keep being answered.
//
// Thread-safe: `Execute()` runs concurrently from the executor's workers.
class TorchBackend : public Backend {
 public:
  struct Options {
    // "auto" (MPS, then CUDA, then CPU), "mps", "cuda" or "cpu".
    std::string device = "auto";
    // "auto" (fp16 on MPS/CUDA, fp32 on CPU), "fp16", "bf16" or "fp32".
    std::string precision = "auto";
    // Executor workers that will call Execute(); on CPU they share the cores, so each gets
    // cores / num_workers intra-op threads. Must be >= 1.
    int num_workers = 2;
    // Largest accepted difference between the served model (device, precision) and its fp32
    // CPU reference on random inputs, as max |served - reference| / max |reference|. Above it,
    // loading fails rather than serve wrong answers. The roadmap measured fp16 within 1e-2.
    double max_precision_error = 1e-2;
  };

  // The built-in demo model (core/demo_model.h) with the given max_batch_size.
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
  std::string DeviceDescription() const override;
  // Page-locked on CUDA, plain heap memory elsewhere.
  std::shared_ptr<char> AllocateStaging(int64_t bytes) override;

  // The precision check's result at load (see Options::max_precision_error).
  double precision_error() const;
  // Batches that failed on the device and were run on the CPU instead. After the first, the
  // model stays on the CPU.
  int64_t fallbacks() const;

 private:
  struct Impl;
  explicit TorchBackend(std::unique_ptr<Impl> impl);
  // Picks device and precision, moves the module there and runs a dry run at batch 1.
  static absl::StatusOr<std::unique_ptr<TorchBackend>> Initialize(std::unique_ptr<Impl> impl,
                                                                  const Options& options);

  // Runs every worker's module once, then checks precision_error() against the tolerance.
  static absl::Status WarmUpAndCheck(Impl& impl, const Options& options);

  std::unique_ptr<Impl> impl_;
};

}  // namespace coalesce

#endif  // COALESCE_CORE_TORCH_TORCH_BACKEND_H_
