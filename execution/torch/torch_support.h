#ifndef COALESCE_EXECUTION_TORCH_TORCH_SUPPORT_H_
#define COALESCE_EXECUTION_TORCH_TORCH_SUPPORT_H_

// Helpers of the LibTorch backend that need Torch types. Included only by execution/torch/*.cc; no
// protobuf-generated header may be included next to it (a PyTorch wheel bundles its own
// google/protobuf headers).

#include <torch/script.h>
#include <torch/torch.h>

#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/model_metadata.h"
#include "execution/backend.h"
#include "execution/device.h"

namespace coalesce {
namespace torch_support {

// The tensor type holding `dtype` (torch::kByte for the unsigned wider types, which
// CheckSupported() refuses).
torch::ScalarType ScalarTypeOf(DataType dtype);
bool IsFloating(DataType dtype);
// `type` as the protocol names it where it has a protocol type (INT64, FP32), else as Torch
// does (ComplexFloat), for messages.
std::string TypeName(torch::ScalarType type);
torch::ScalarType ComputeType(Precision precision);
// The type a tensor declared `declared` reaches the model in when the model computes in
// `compute`: `compute` for FP32, the only type the server's precision applies to; the declared
// type for every other (FP64, FP16, BF16, BOOL, the integers), as Triton hands it.
torch::ScalarType ModelTypeOf(DataType declared, torch::ScalarType compute);

// Moves `module` to `device` and casts its FP32 parameters and buffers to `compute`, leaving
// every other type as it is (torch::jit::Module::to(device, dtype) would cast FP64 too).
void MoveAndCastFp32(torch::jit::Module& module, torch::Device device, torch::ScalarType compute);

// LibTorch 1.13 has no uint16/32/64 tensors: INVALID_ARGUMENT naming the tensor.
absl::Status CheckSupported(const ModelMetadata& metadata);

bool MpsAvailable();

// Serialises device submission on MPS, process-wide (see TorchBackend's class comment).
std::mutex& MpsSubmissionMutex();

// An exception's message, without LibTorch's C++ backtrace.
std::string ErrorText(const std::exception& e);

// The built-in demo model (execution/demo_model.h) as a TorchScript module, fp32, on the CPU.
torch::jit::Module BuildDemoModule();

// Random input bytes for `rows` rows of `spec` with `dims` (without the batch dimension):
// floating values uniform in [-1, 1), other types zero (a safe index, a false flag). Only the
// byte count depends on the shape.
std::vector<char> RandomRows(const TensorSpec& spec, const std::vector<int64_t>& dims,
                             int64_t rows);

// `frozen` (a frozen module) passed through torch::jit::optimize_for_inference, or nothing if
// that throws (the reason is logged to stderr). `frozen` itself is left as it was.
std::optional<torch::jit::Module> OptimizeForInference(const torch::jit::Module& frozen,
                                                       const std::string& model);

// The caching allocator's memory on `device` (CUDA builds); nothing for CPU and MPS.
std::optional<Backend::MemoryUsage> DeviceMemoryOf(DeviceKind kind, const torch::Device& device);

}  // namespace torch_support
}  // namespace coalesce

#endif  // COALESCE_EXECUTION_TORCH_TORCH_SUPPORT_H_
