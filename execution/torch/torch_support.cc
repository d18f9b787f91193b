#include "execution/torch/torch_support.h"

#if defined(COALESCE_WITH_MPS)
#include <torch/mps.h>
#endif
#if defined(COALESCE_WITH_CUDA)
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "execution/demo_model.h"

namespace coalesce {
namespace torch_support {
namespace {

torch::Tensor TensorFrom(const std::vector<float>& values, std::vector<int64_t> shape) {
  return torch::from_blob(const_cast<float*>(values.data()), shape, torch::kFloat).clone();
}

}  // namespace

torch::ScalarType ScalarTypeOf(DataType dtype) {
  switch (dtype) {
    case DataType::kBool:
      return torch::kBool;
    case DataType::kUint8:
      return torch::kUInt8;
    case DataType::kInt8:
      return torch::kInt8;
    case DataType::kInt16:
      return torch::kInt16;
    case DataType::kInt32:
      return torch::kInt32;
    case DataType::kInt64:
      return torch::kInt64;
    case DataType::kFp16:
      return torch::kHalf;
    case DataType::kBf16:
      return torch::kBFloat16;
    case DataType::kFp32:
      return torch::kFloat;
    case DataType::kFp64:
      return torch::kDouble;
    case DataType::kUint16:
    case DataType::kUint32:
    case DataType::kUint64:
      break;
  }
  return torch::kByte;  // Unsigned wider types: refused at load (see CheckSupported).
}

std::string TypeName(torch::ScalarType type) {
  for (DataType dtype : {DataType::kBool, DataType::kUint8, DataType::kInt8, DataType::kInt16,
                         DataType::kInt32, DataType::kInt64, DataType::kFp16, DataType::kBf16,
                         DataType::kFp32, DataType::kFp64}) {
    if (ScalarTypeOf(dtype) == type) return std::string(DataTypeName(dtype));
  }
  return c10::toString(type);
}

bool IsFloating(DataType dtype) {
  return dtype == DataType::kFp16 || dtype == DataType::kBf16 || dtype == DataType::kFp32 ||
         dtype == DataType::kFp64;
}

torch::ScalarType ComputeType(Precision precision) {
  switch (precision) {
    case Precision::kFp16:
      return torch::kHalf;
    case Precision::kBf16:
      return torch::kBFloat16;
    case Precision::kFp32:
      break;
  }
  return torch::kFloat;
}

torch::ScalarType ModelTypeOf(DataType declared, torch::ScalarType compute) {
  return declared == DataType::kFp32 ? compute : ScalarTypeOf(declared);
}

void MoveAndCastFp32(torch::jit::Module& module, torch::Device device,
                     torch::ScalarType compute) {
  module.to(device);
  if (compute == torch::kFloat) return;
  torch::NoGradGuard no_grad;
  // As Module::to() does it: the tensor object stays (the module's attributes refer to it),
  // its data is replaced.
  for (at::Tensor tensor : module.parameters()) {
    if (tensor.scalar_type() == torch::kFloat) tensor.set_data(tensor.to(compute));
  }
  for (at::Tensor tensor : module.buffers()) {
    if (tensor.scalar_type() == torch::kFloat) tensor.set_data(tensor.to(compute));
  }
}

absl::Status CheckSupported(const ModelMetadata& metadata) {
  for (const auto* specs : {&metadata.inputs, &metadata.outputs}) {
    for (const TensorSpec& spec : *specs) {
      if (spec.dtype == DataType::kUint16 || spec.dtype == DataType::kUint32 ||
          spec.dtype == DataType::kUint64) {
        return absl::InvalidArgumentError(absl::StrCat("model '", metadata.name, "': tensor '",
                                                       spec.name, "' is ",
                                                       DataTypeName(spec.dtype),
                                                       ", which LibTorch cannot hold"));
      }
    }
  }
  return absl::OkStatus();
}

std::mutex& MpsSubmissionMutex() {
  static auto* mu = new std::mutex();
  return *mu;
}

bool MpsAvailable() {
#if defined(COALESCE_WITH_MPS)
  return torch::mps::is_available();
#else
  return false;
#endif
}

std::string ErrorText(const std::exception& e) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) {
    return c10_error->what_without_backtrace();
  }
  return e.what();
}

torch::jit::Module BuildDemoModule() {
  DemoModel::Weights w = DemoModel::MakeWeights();
  torch::jit::Module module("coalesce_demo");
  module.register_parameter("w1", TensorFrom(w.w1, {DemoModel::kWidth, DemoModel::kHidden}),
                            false);
  module.register_parameter("b1", TensorFrom(w.b1, {DemoModel::kHidden}), false);
  module.register_parameter("w2", TensorFrom(w.w2, {DemoModel::kHidden, DemoModel::kWidth}),
                            false);
  module.register_parameter("b2", TensorFrom(w.b2, {DemoModel::kWidth}), false);
  module.define(R"(
    def forward(self, x):
        h = torch.relu(torch.matmul(x, self.w1) + self.b1)
        return torch.matmul(h, self.w2) + self.b2
  )");
  return module;
}

std::vector<char> RandomRows(const TensorSpec& spec, const std::vector<int64_t>& dims,
                             int64_t rows) {
  torch::Tensor values;
  std::vector<int64_t> shape = {rows};
  shape.insert(shape.end(), dims.begin(), dims.end());
  if (IsFloating(spec.dtype)) {
    values = (torch::rand(shape) * 2 - 1).to(ScalarTypeOf(spec.dtype));
  } else {
    values = torch::zeros(shape, ScalarTypeOf(spec.dtype));
  }
  std::vector<char> bytes(values.nbytes());
  std::memcpy(bytes.data(), values.data_ptr(), bytes.size());
  return bytes;
}

std::optional<torch::jit::Module> OptimizeForInference(const torch::jit::Module& frozen,
                                                       const std::string& model) {
  // optimize_for_inference rewrites an already frozen module's graph in place: work on a copy,
  // so that `frozen` stays servable if the result turns out wrong.
  try {
    torch::jit::Module copy = frozen.clone();
    return torch::jit::optimize_for_inference(copy);
  } catch (const std::exception& e) {
    std::fprintf(stderr,
                 "coalesce: model '%s': optimize_for_inference failed (%s); serving the frozen "
                 "module\n",
                 model.c_str(), ErrorText(e).c_str());
    return std::nullopt;
  }
}

std::optional<Backend::MemoryUsage> DeviceMemoryOf(DeviceKind kind, const torch::Device& device) {
#if defined(COALESCE_WITH_CUDA)
  if (kind == DeviceKind::kCuda) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    // Index 0 is StatType::AGGREGATE (small and large pools together) in LibTorch 1.13 and 2.x;
    // the enum moved namespaces between them, the index did not.
    Backend::MemoryUsage usage;
    usage.in_use_bytes = stats.allocated_bytes[0].current;
    usage.reserved_bytes = stats.reserved_bytes[0].current;
    return usage;
  }
#endif
  // MPS: LibTorch's public C++ API (torch/mps.h) has no memory query; the allocator's numbers
  // sit behind at::detail::getMPSHooks(), an internal interface, so none is exported. CPU:
  // tensors live in process memory, which coalesce_process_resident_memory_bytes covers.
  return std::nullopt;
}

}  // namespace torch_support
}  // namespace coalesce
