#include "core/torch/torch_backend.h"

// No protobuf-generated header may be included here: a PyTorch wheel ships its own
// google/protobuf headers, which would shadow the system ones the protos were generated for.
#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/torch.h>
#if defined(__APPLE__)
#include <torch/mps.h>
#endif

#include <algorithm>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/demo_model.h"
#include "core/device.h"

namespace coalesce {
namespace {

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

// LibTorch 1.13 has no uint16/32/64 tensors.
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

bool MpsAvailable() {
#if defined(__APPLE__)
  return torch::mps::is_available();
#else
  return false;
#endif
}

// Serialises device submission on MPS (see the class comment).
std::mutex& MpsSubmissionMutex() {
  static auto* mu = new std::mutex();
  return *mu;
}

std::string ErrorText(const std::exception& e) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) {
    return c10_error->what_without_backtrace();
  }
  return e.what();
}

torch::Tensor TensorFrom(const std::vector<float>& values, std::vector<int64_t> shape) {
  return torch::from_blob(const_cast<float*>(values.data()), shape, torch::kFloat).clone();
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

}  // namespace

struct TorchBackend::Impl {
  ModelMetadata metadata;
  torch::jit::Module module;
  DeviceKind device_kind = DeviceKind::kCpu;
  Precision precision = Precision::kFp32;
  torch::Device device{torch::kCPU};
  torch::ScalarType compute_type = torch::kFloat;

  absl::Status Run(int64_t rows, absl::Span<const char* const> inputs,
                   absl::Span<char* const> outputs);
};

absl::Status TorchBackend::Impl::Run(int64_t rows, absl::Span<const char* const> inputs,
                                     absl::Span<char* const> outputs) {
  c10::InferenceMode inference_mode;
  std::vector<torch::jit::IValue> args;
  args.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const TensorSpec& spec = metadata.inputs[i];
    std::vector<int64_t> shape = {rows};
    shape.insert(shape.end(), spec.dims.begin(), spec.dims.end());
    torch::Tensor host = torch::from_blob(const_cast<char*>(inputs[i]), shape,
                                          ScalarTypeOf(spec.dtype));
    // Floating inputs take the compute precision, converted on the device; to() returns the
    // same tensor when nothing changes (fp32 on CPU: the model reads the gathered buffer).
    args.emplace_back(IsFloating(spec.dtype) ? host.to(device).to(compute_type)
                                             : host.to(device));
  }

  std::unique_lock<std::mutex> mps_lock;
  if (device_kind == DeviceKind::kMps) mps_lock = std::unique_lock(MpsSubmissionMutex());
  torch::jit::IValue result = module.forward(std::move(args));

  std::vector<torch::Tensor> tensors;
  if (result.isTensor()) {
    tensors.push_back(result.toTensor());
  } else if (result.isTuple()) {
    for (const auto& element : result.toTuple()->elements()) tensors.push_back(element.toTensor());
  } else {
    return absl::InternalError(absl::StrCat("model '", metadata.name,
                                            "' returned neither a tensor nor a tuple"));
  }
  if (tensors.size() != outputs.size()) {
    return absl::InternalError(absl::StrCat("model '", metadata.name, "' returned ",
                                            tensors.size(), " outputs, its config declares ",
                                            outputs.size()));
  }
  for (size_t o = 0; o < outputs.size(); ++o) {
    const TensorSpec& spec = metadata.outputs[o];
    std::vector<int64_t> shape = {rows};
    shape.insert(shape.end(), spec.dims.begin(), spec.dims.end());
    if (tensors[o].sizes() != torch::IntArrayRef(shape)) {
      return absl::InternalError(absl::StrCat(
          "model '", metadata.name, "' returned shape ",
          ShapeToString(std::vector<int64_t>(tensors[o].sizes().begin(), tensors[o].sizes().end())),
          " for output '", spec.name, "', expected ", ShapeToString(shape)));
    }
    // Converts dtype and copies device -> host in one step; the copy waits for the result.
    torch::from_blob(outputs[o], shape, ScalarTypeOf(spec.dtype)).copy_(tensors[o]);
  }
  return absl::OkStatus();
}

TorchBackend::TorchBackend(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TorchBackend::~TorchBackend() = default;

const ModelMetadata& TorchBackend::metadata() const { return impl_->metadata; }

std::string TorchBackend::DeviceDescription() const {
  return absl::StrCat(DeviceKindName(impl_->device_kind), " ", PrecisionName(impl_->precision));
}

absl::Status TorchBackend::Execute(int worker, int64_t rows, absl::Span<const char* const> inputs,
                                   absl::Span<char* const> outputs) {
  try {
    return impl_->Run(rows, inputs, outputs);
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("model '", impl_->metadata.name, "' failed: ", ErrorText(e)));
  }
}

absl::StatusOr<std::unique_ptr<TorchBackend>> TorchBackend::CreateDemo(const Options& options,
                                                                       int64_t max_batch_size) {
  if (max_batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("demo model max_batch_size must be at least 1, got ", max_batch_size));
  }
  torch::jit::Module module;
  try {
    module = BuildDemoModule();
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("building the demo model failed: ", ErrorText(e)));
  }
  auto impl = std::make_unique<Impl>();
  impl->metadata = DemoModel::Metadata(max_batch_size);
  impl->module = std::move(module);
  return Initialize(std::move(impl), options);
}

absl::StatusOr<std::unique_ptr<TorchBackend>> TorchBackend::Load(const std::string& path,
                                                                 ModelMetadata metadata,
                                                                 const Options& options) {
  auto impl = std::make_unique<Impl>();
  try {
    impl->module = torch::jit::load(path);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("model '", metadata.name, "': cannot load '",
                                                   path, "' as TorchScript: ", ErrorText(e)));
  }
  impl->metadata = std::move(metadata);
  return Initialize(std::move(impl), options);
}

absl::StatusOr<std::unique_ptr<TorchBackend>> TorchBackend::Initialize(std::unique_ptr<Impl> impl,
                                                                   const Options& options) {
  if (options.num_workers < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_workers must be at least 1, got ", options.num_workers));
  }
  if (absl::Status s = CheckSupported(impl->metadata); !s.ok()) return s;
  absl::StatusOr<DeviceKind> device =
      ResolveDevice(options.device, MpsAvailable(), torch::cuda::is_available());
  if (!device.ok()) return device.status();
  absl::StatusOr<Precision> precision = ResolvePrecision(options.precision, *device);
  if (!precision.ok()) return precision.status();
  impl->device_kind = *device;
  impl->precision = *precision;
  impl->compute_type = ComputeType(*precision);
  switch (*device) {
    case DeviceKind::kCpu:
      impl->device = torch::Device(torch::kCPU);
      break;
    case DeviceKind::kCuda:
      impl->device = torch::Device(torch::kCUDA, 0);
      break;
    case DeviceKind::kMps:
      impl->device = torch::Device(torch::kMPS);
      break;
  }
  if (*device == DeviceKind::kCpu) {
    // Workers run batches side by side; give each its share of the cores.
    int cores = std::max(1u, std::thread::hardware_concurrency());
    torch::set_num_threads(std::max(1, cores / options.num_workers));
  }
  try {
    impl->module.eval();
    impl->module.to(impl->device, impl->compute_type);
    // Warm-up: the first runs of a TorchScript module profile and optimise its graph.
    ModelMetadata& md = impl->metadata;
    std::vector<std::vector<char>> in(md.inputs.size()), out(md.outputs.size());
    std::vector<const char*> in_ptrs;
    std::vector<char*> out_ptrs;
    for (size_t i = 0; i < in.size(); ++i) {
      in[i].assign(md.inputs[i].RowBytes(), 0);
      in_ptrs.push_back(in[i].data());
    }
    for (size_t o = 0; o < out.size(); ++o) {
      out[o].assign(md.outputs[o].RowBytes(), 0);
      out_ptrs.push_back(out[o].data());
    }
    for (int round = 0; round < 3; ++round) {
      if (absl::Status s = impl->Run(1, in_ptrs, out_ptrs); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("model '", md.name,
                                                       "' failed its dry run: ", s.message()));
      }
    }
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", impl->metadata.name, "' failed its dry run: ", ErrorText(e)));
  }
  return std::unique_ptr<TorchBackend>(new TorchBackend(std::move(impl)));
}

}  // namespace coalesce
