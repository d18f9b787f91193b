#include "core/torch/torch_backend.h"

// No protobuf-generated header may be included here: a PyTorch wheel ships its own
// google/protobuf headers, which would shadow the system ones the protos were generated for.
#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/torch.h>
#if defined(__APPLE__)
#include <torch/mps.h>
#endif
#if defined(COALESCE_WITH_CUDA)
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
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

// What one executor worker runs with: its own copy of the module (no state shared between
// workers), and on CUDA its own stream, so two workers' copies and kernels overlap.
struct WorkerState {
  torch::jit::Module module;
#if defined(COALESCE_WITH_CUDA)
  std::optional<c10::cuda::CUDAStream> stream;
#endif
};

struct TorchBackend::Impl {
  ModelMetadata metadata;
  // The module as loaded (fp32, CPU): the precision check's reference and the fallback.
  torch::jit::Module cpu_module;
  std::vector<WorkerState> workers;
  DeviceKind device_kind = DeviceKind::kCpu;
  Precision precision = Precision::kFp32;
  torch::Device device{torch::kCPU};
  torch::ScalarType compute_type = torch::kFloat;
  double precision_error = 0;
  // Set once the device failed; from then on every batch runs on cpu_module.
  std::atomic<bool> fell_back{false};
  std::atomic<int64_t> fallbacks{0};

  // Where output `o` of `shape` (batch dimension first) goes: `bytes` bytes of host memory.
  using OutputSink =
      std::function<char*(int o, const std::vector<int64_t>& shape, int64_t bytes)>;

  absl::Status Run(int worker, int64_t rows, absl::Span<const char* const> inputs,
                   absl::Span<const std::vector<int64_t>> input_dims, const OutputSink& sink);
  // Runs `module` on `device` in `compute`; the shared body of the device and CPU paths.
  // `input_dims` are each input's dims without the batch dimension.
  absl::Status RunOn(torch::jit::Module& module, torch::Device on, torch::ScalarType compute,
                     int64_t rows, absl::Span<const char* const> inputs,
                     absl::Span<const std::vector<int64_t>> input_dims, const OutputSink& sink);
  // The spec dims of every input (a fixed-size model's input_dims).
  std::vector<std::vector<int64_t>> SpecInputDims() const;
  // A sink into `outputs`, for fixed-size outputs of exactly their spec's shape.
  OutputSink FixedSink(int64_t rows, absl::Span<char* const> outputs) const;
};

std::vector<std::vector<int64_t>> TorchBackend::Impl::SpecInputDims() const {
  std::vector<std::vector<int64_t>> dims;
  for (const TensorSpec& spec : metadata.inputs) dims.push_back(spec.dims);
  return dims;
}

TorchBackend::Impl::OutputSink TorchBackend::Impl::FixedSink(
    int64_t rows, absl::Span<char* const> outputs) const {
  return [outputs](int o, const std::vector<int64_t>&, int64_t) { return outputs[o]; };
}

absl::Status TorchBackend::Impl::Run(int worker, int64_t rows,
                                     absl::Span<const char* const> inputs,
                                     absl::Span<const std::vector<int64_t>> input_dims,
                                     const OutputSink& sink) {
  if (!fell_back.load(std::memory_order_acquire)) {
    try {
      WorkerState& state = workers[worker % workers.size()];
#if defined(COALESCE_WITH_CUDA)
      std::optional<c10::cuda::CUDAStreamGuard> stream_guard;
      if (state.stream.has_value()) stream_guard.emplace(*state.stream);
#endif
      std::unique_lock<std::mutex> mps_lock;
      if (device_kind == DeviceKind::kMps) mps_lock = std::unique_lock(MpsSubmissionMutex());
      return RunOn(state.module, device, compute_type, rows, inputs, input_dims, sink);
    } catch (const std::exception& e) {
      if (device_kind == DeviceKind::kCpu) throw;
      // The device failed (an error, out of memory): serve from the CPU rather than fail
      // every request from now on.
      fell_back.store(true, std::memory_order_release);
      fallbacks.fetch_add(1, std::memory_order_relaxed);
      std::fprintf(stderr, "coalesce: model '%s' failed on %s (%s); falling back to CPU\n",
                   metadata.name.c_str(), std::string(DeviceKindName(device_kind)).c_str(),
                   ErrorText(e).c_str());
    }
  }
  return RunOn(cpu_module, torch::Device(torch::kCPU), torch::kFloat, rows, inputs, input_dims,
               sink);
}

absl::Status TorchBackend::Impl::RunOn(torch::jit::Module& module, torch::Device on,
                                       torch::ScalarType compute, int64_t rows,
                                       absl::Span<const char* const> inputs,
                                       absl::Span<const std::vector<int64_t>> input_dims,
                                       const OutputSink& sink) {
  c10::InferenceMode inference_mode;
  std::vector<torch::jit::IValue> args;
  args.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const TensorSpec& spec = metadata.inputs[i];
    std::vector<int64_t> shape = {rows};
    shape.insert(shape.end(), input_dims[i].begin(), input_dims[i].end());
    torch::Tensor host = torch::from_blob(const_cast<char*>(inputs[i]), shape,
                                          ScalarTypeOf(spec.dtype));
    // Copied to the device as sent (asynchronously from pinned staging memory), then converted
    // there; to() returns the same tensor when nothing changes (fp32 on CPU: the model reads
    // the gathered buffer itself).
    torch::Tensor on_device = host.to(on, /*non_blocking=*/true);
    args.emplace_back(IsFloating(spec.dtype) ? on_device.to(compute) : on_device);
  }
  torch::jit::IValue result = module.forward(std::move(args));

  std::vector<torch::Tensor> tensors;
  if (result.isTensor()) {
    tensors.push_back(result.toTensor());
  } else if (result.isTuple()) {
    for (const auto& element : result.toTuple()->elements()) {
      if (!element.isTensor()) {
        return absl::InternalError(
            absl::StrCat("model '", metadata.name, "' returned a tuple holding a non-tensor"));
      }
      tensors.push_back(element.toTensor());
    }
  } else {
    return absl::InternalError(absl::StrCat("model '", metadata.name,
                                            "' returned neither a tensor nor a tuple"));
  }
  if (tensors.size() != metadata.outputs.size()) {
    return absl::InternalError(absl::StrCat("model '", metadata.name, "' returned ",
                                            tensors.size(), " outputs, its config declares ",
                                            metadata.outputs.size()));
  }
  for (size_t o = 0; o < tensors.size(); ++o) {
    const TensorSpec& spec = metadata.outputs[o];
    std::vector<int64_t> got(tensors[o].sizes().begin(), tensors[o].sizes().end());
    // The config's dims, with the batch dimension first and -1 matching any size.
    bool matches = got.size() == spec.dims.size() + 1 && got[0] == rows;
    for (size_t d = 0; matches && d < spec.dims.size(); ++d) {
      matches = spec.dims[d] < 0 || spec.dims[d] == got[d + 1];
    }
    if (!matches) {
      std::vector<int64_t> expected = {rows};
      expected.insert(expected.end(), spec.dims.begin(), spec.dims.end());
      return absl::InternalError(absl::StrCat("model '", metadata.name, "' returned shape ",
                                              ShapeToString(got), " for output '", spec.name,
                                              "', expected ", ShapeToString(expected)));
    }
    const int64_t bytes = DimsElements(got) * DataTypeSize(spec.dtype);
    // Converts dtype and copies device -> host in one step on this worker's stream; the copy
    // into pageable memory waits for the result: that is the synchronisation, not a
    // device-wide synchronise.
    torch::from_blob(sink(static_cast<int>(o), got, bytes), got, ScalarTypeOf(spec.dtype))
        .copy_(tensors[o]);
  }
  return absl::OkStatus();
}

namespace {

// Random input bytes for `rows` rows of `spec`: floating values uniform in [-1, 1), other types
// zero (a safe index, a false flag).
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

}  // namespace

// Runs every worker's module once (the first runs of a TorchScript module profile and optimise
// its graph), then compares the served module with the fp32 CPU reference on random inputs.
absl::Status TorchBackend::WarmUpAndCheck(Impl& impl, const Options& options) {
  const ModelMetadata& md = impl.metadata;
  constexpr int64_t kRows = 4;
  // The dry run's sizes: each variable (-1) dimension as 3, an arbitrary size that a model
  // written for fixed sizes would trip over.
  std::vector<std::vector<int64_t>> dims = impl.SpecInputDims();
  for (auto& d : dims) {
    for (int64_t& dim : d) dim = dim < 0 ? 3 : dim;
  }
  std::vector<std::vector<char>> in;
  std::vector<const char*> in_ptrs;
  for (size_t i = 0; i < md.inputs.size(); ++i) {
    in.push_back(RandomRows(md.inputs[i], dims[i], kRows));
    in_ptrs.push_back(in.back().data());
  }
  // Outputs land in vectors sized by what the model returns; their shapes are compared below.
  std::vector<std::vector<char>> out(md.outputs.size()), ref_out(md.outputs.size());
  std::vector<std::vector<int64_t>> out_shape(md.outputs.size());
  auto out_sink = [&out, &out_shape](int o, const std::vector<int64_t>& shape, int64_t bytes) {
    out[o].assign(bytes, 0);
    out_shape[o] = shape;
    return out[o].data();
  };
  auto ref_sink = [&ref_out](int o, const std::vector<int64_t>&, int64_t bytes) {
    ref_out[o].assign(bytes, 0);
    return ref_out[o].data();
  };
  for (int round = 0; round < 3; ++round) {
    for (size_t w = 0; w < impl.workers.size(); ++w) {
      absl::Status s = impl.RunOn(impl.workers[w].module, impl.device, impl.compute_type, kRows,
                                  in_ptrs, dims, out_sink);
      if (!s.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("model '", md.name, "' failed its dry run: ", s.message()));
      }
    }
  }
  absl::Status s = impl.RunOn(impl.cpu_module, torch::Device(torch::kCPU), torch::kFloat, kRows,
                              in_ptrs, dims, ref_sink);
  if (!s.ok()) return s;
  double max_diff = 0, max_ref = 0;
  for (size_t o = 0; o < md.outputs.size(); ++o) {
    if (ref_out[o].size() != out[o].size()) {
      return absl::InternalError(absl::StrCat("model '", md.name, "': output '",
                                              md.outputs[o].name,
                                              "' differs in size between device and CPU"));
    }
    auto dtype = ScalarTypeOf(md.outputs[o].dtype);
    torch::Tensor a = torch::from_blob(out[o].data(), out_shape[o], dtype).to(torch::kDouble);
    torch::Tensor b = torch::from_blob(ref_out[o].data(), out_shape[o], dtype).to(torch::kDouble);
    if (a.numel() == 0) continue;
    max_diff = std::max(max_diff, (a - b).abs().max().item<double>());
    max_ref = std::max(max_ref, b.abs().max().item<double>());
  }
  impl.precision_error = max_ref > 0 ? max_diff / max_ref : max_diff;
  if (!(impl.precision_error <= options.max_precision_error)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "model '%s' in %s on %s differs from its fp32 CPU reference by %.3g (largest "
        "difference over largest output), above the tolerance %.3g",
        md.name, PrecisionName(impl.precision), DeviceKindName(impl.device_kind),
        impl.precision_error, options.max_precision_error));
  }
  return absl::OkStatus();
}

TorchBackend::TorchBackend(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TorchBackend::~TorchBackend() = default;

const ModelMetadata& TorchBackend::metadata() const { return impl_->metadata; }

std::string TorchBackend::DeviceDescription() const {
  return absl::StrCat(DeviceKindName(impl_->device_kind), " ", PrecisionName(impl_->precision));
}

std::shared_ptr<char> TorchBackend::AllocateStaging(int64_t bytes) {
  if (impl_->device_kind != DeviceKind::kCuda) return Backend::AllocateStaging(bytes);
  torch::Tensor pinned =
      torch::empty({bytes}, torch::TensorOptions().dtype(torch::kByte).pinned_memory(true));
  // The deleter owns the tensor: the memory lives exactly as long as the pointer.
  return std::shared_ptr<char>(static_cast<char*>(pinned.data_ptr()),
                               [pinned](char*) mutable { pinned.reset(); });
}

double TorchBackend::precision_error() const { return impl_->precision_error; }

int64_t TorchBackend::fallbacks() const {
  return impl_->fallbacks.load(std::memory_order_relaxed);
}

absl::Status TorchBackend::Execute(int worker, int64_t rows, absl::Span<const char* const> inputs,
                                   absl::Span<char* const> outputs) {
  try {
    return impl_->Run(worker, rows, inputs, impl_->SpecInputDims(),
                      impl_->FixedSink(rows, outputs));
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("model '", impl_->metadata.name, "' failed: ", ErrorText(e)));
  }
}

absl::Status TorchBackend::ExecuteVariable(int worker, int64_t rows,
                                           absl::Span<const char* const> inputs,
                                           const VariableBatch& batch) {
  try {
    return impl_->Run(worker, rows, inputs, batch.input_dims,
                      [&batch](int o, const std::vector<int64_t>&, int64_t bytes) {
                        return batch.output_buffer(o, bytes);
                      });
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
  impl->cpu_module = std::move(module);
  return Initialize(std::move(impl), options);
}

absl::StatusOr<std::unique_ptr<TorchBackend>> TorchBackend::Load(const std::string& path,
                                                                 ModelMetadata metadata,
                                                                 const Options& options) {
  auto impl = std::make_unique<Impl>();
  try {
    impl->cpu_module = torch::jit::load(path, torch::kCPU);
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
    impl->cpu_module.eval();
    // The served module: moved and cast, then frozen (parameters become constants, so the
    // graph optimiser can fold them).
    torch::jit::Module served = impl->cpu_module.clone();
    served.to(impl->device, impl->compute_type);
    served.eval();
    served = torch::jit::freeze(served);
    for (int w = 0; w < options.num_workers; ++w) {
      WorkerState state;
      state.module = served.clone();
#if defined(COALESCE_WITH_CUDA)
      if (*device == DeviceKind::kCuda) {
        state.stream = c10::cuda::getStreamFromPool(/*isHighPriority=*/false,
                                                    impl->device.index());
      }
#endif
      impl->workers.push_back(std::move(state));
    }
    if (absl::Status s = WarmUpAndCheck(*impl, options); !s.ok()) return s;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", impl->metadata.name, "' failed its dry run: ", ErrorText(e)));
  }
  return std::unique_ptr<TorchBackend>(new TorchBackend(std::move(impl)));
}

}  // namespace coalesce
