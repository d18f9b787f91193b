#include "execution/torch/torch_backend.h"

// No protobuf-generated header may be included here: a PyTorch wheel ships its own
// google/protobuf headers, which would shadow the system ones the protos were generated for.
#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/torch.h>
#if defined(COALESCE_WITH_CUDA)
#include <c10/cuda/CUDAStream.h>
#endif

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "execution/demo_model.h"
#include "execution/device.h"
#include "execution/torch/torch_backend_impl.h"
#include "execution/torch/torch_support.h"

namespace coalesce {
namespace {

using torch_support::ErrorText;
using torch_support::ScalarTypeOf;

}  // namespace

// Runs every worker's module once (the first runs of a TorchScript module profile and optimise
// its graph), then compares the served module with the fp32 CPU reference on random inputs.
absl::Status TorchBackend::WarmUpAndCheck(Impl& impl, const Options& options) {
  const ModelMetadata& md = impl.metadata;
  // A few rows, never more than the model takes; one for a model that does not batch.
  const int64_t kRows = md.batches() ? std::min<int64_t>(4, md.max_batch_size) : 1;
  // The dry run's sizes: each variable (-1) dimension as 3, an arbitrary size that a model
  // written for fixed sizes would trip over.
  std::vector<std::vector<int64_t>> dims = impl.SpecInputDims();
  for (auto& d : dims) {
    for (int64_t& dim : d) dim = dim < 0 ? 3 : dim;
  }
  std::vector<std::vector<char>> in;
  std::vector<const char*> in_ptrs;
  for (size_t i = 0; i < md.inputs.size(); ++i) {
    in.push_back(torch_support::RandomRows(md.inputs[i], dims[i], kRows));
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
                                  in_ptrs, dims, out_sink, /*staged=*/false);
      if (!s.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("model '", md.name, "' failed its dry run: ", s.message()));
      }
    }
  }
  absl::Status s = impl.RunOn(impl.cpu_module, torch::Device(torch::kCPU), torch::kFloat, kRows,
                              in_ptrs, dims, ref_sink, /*staged=*/false);
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

int TorchBackend::DefaultBatchesPerWorker() const {
  return impl_->device_kind == DeviceKind::kCuda ? 2 : 1;
}

std::string TorchBackend::DeviceDescription() const {
  return absl::StrCat(DeviceKindName(impl_->device_kind), " ", PrecisionName(impl_->precision));
}

std::string TorchBackend::DeviceName() const {
  if (impl_->device_kind == DeviceKind::kCuda) return absl::StrCat("cuda:", impl_->device.index());
  return std::string(DeviceKindName(impl_->device_kind));
}

std::shared_ptr<char> TorchBackend::AllocateStaging(int64_t bytes) {
  if (impl_->device_kind != DeviceKind::kCuda) return Backend::AllocateStaging(bytes);
  torch::Tensor memory =
      torch::empty({bytes}, torch::TensorOptions().dtype(torch::kByte).pinned_memory(true));
  char* start = static_cast<char*>(memory.data_ptr());
  impl_->pinned->Add(start, bytes);
  // The deleter owns the tensor: the memory lives exactly as long as the pointer.
  return std::shared_ptr<char>(start, [memory, pinned = impl_->pinned](char* p) mutable {
    pinned->Remove(p);
    memory.reset();
  });
}

double TorchBackend::precision_error() const { return impl_->precision_error; }

bool TorchBackend::optimized() const { return impl_->optimized; }

int TorchBackend::VisibleCudaDevices() {
  return torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
}

absl::StatusOr<std::unique_ptr<TorchBackend>> TorchBackend::CreateDemo(const Options& options,
                                                                       int64_t max_batch_size) {
  if (max_batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("demo model max_batch_size must be at least 1, got ", max_batch_size));
  }
  torch::jit::Module module;
  try {
    module = torch_support::BuildDemoModule();
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

absl::Status TorchBackend::Impl::InstallAndCheck(const torch::jit::Module& served,
                                                 const Options& options) {
  Impl& impl = *this;
  impl.workers.clear();
  for (int w = 0; w < options.num_workers; ++w) {
    WorkerState state;
    state.module = served.clone();
#if defined(COALESCE_WITH_CUDA)
    if (impl.device_kind == DeviceKind::kCuda) {
      state.stream = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, impl.device.index());
    }
#endif
    impl.workers.push_back(std::move(state));
  }
  try {
    return WarmUpAndCheck(impl, options);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", impl.metadata.name, "' failed its dry run: ", ErrorText(e)));
  }
}

absl::StatusOr<std::unique_ptr<TorchBackend>> TorchBackend::Initialize(std::unique_ptr<Impl> impl,
                                                                   const Options& options) {
  if (options.num_workers < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_workers must be at least 1, got ", options.num_workers));
  }
  if (options.device_recheck_interval < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("device_recheck_interval must not be negative, got ",
                     absl::FormatDuration(options.device_recheck_interval)));
  }
  if (absl::Status s = torch_support::CheckSupported(impl->metadata); !s.ok()) return s;
  absl::StatusOr<DeviceKind> device = ResolveDevice(
      options.device, torch_support::MpsAvailable(), torch::cuda::is_available());
  if (!device.ok()) return device.status();
  absl::StatusOr<Precision> precision = ResolvePrecision(options.precision, *device);
  if (!precision.ok()) return precision.status();
  impl->device_kind = *device;
  // The precision applies to what the model declares FP32 (torch_support::ModelTypeOf()); a
  // model with no FP32 input has nothing to compute in it and runs as written.
  const bool takes_fp32 =
      std::any_of(impl->metadata.inputs.begin(), impl->metadata.inputs.end(),
                  [](const TensorSpec& spec) { return spec.dtype == DataType::kFp32; });
  impl->precision = takes_fp32 ? *precision : Precision::kFp32;
  impl->compute_type = torch_support::ComputeType(impl->precision);
  switch (*device) {
    case DeviceKind::kCpu:
      impl->device = torch::Device(torch::kCPU);
      break;
    case DeviceKind::kCuda:
      if (options.cuda_device < 0 || options.cuda_device >= VisibleCudaDevices()) {
        return absl::InvalidArgumentError(
            absl::StrCat("cuda:", options.cuda_device, " does not exist; ",
                         VisibleCudaDevices(), " CUDA device(s) are visible"));
      }
      impl->device =
          torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(options.cuda_device));
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
  impl->recheck_interval = options.device_recheck_interval;
  impl->cuda_graphs = options.cuda_graphs && *device == DeviceKind::kCuda;
  const bool stage_fp16 = options.stage_fp16 && *device == DeviceKind::kCuda &&
                          impl->compute_type == torch::kHalf &&
                          !impl->metadata.HasVariableDims();
  auto staging = [stage_fp16](const TensorSpec& spec) {
    return stage_fp16 && spec.dtype == DataType::kFp32 ? DataType::kFp16 : spec.dtype;
  };
  for (const TensorSpec& spec : impl->metadata.inputs) {
    impl->input_staging.push_back(staging(spec));
  }
  for (const TensorSpec& spec : impl->metadata.outputs) {
    impl->output_staging.push_back(staging(spec));
  }
  impl->clock = options.clock != nullptr ? options.clock : Clock::Real();
  try {
    impl->cpu_module.eval();
    // The served module: moved and its FP32 state cast, then frozen (parameters become
    // constants, so the graph optimiser can fold them).
    torch::jit::Module served = impl->cpu_module.clone();
    torch_support::MoveAndCastFp32(served, impl->device, impl->compute_type);
    served.eval();
    served = torch::jit::freeze(served);
    std::optional<torch::jit::Module> optimized;
    if (options.optimize_for_inference) {
      optimized = torch_support::OptimizeForInference(served, impl->metadata.name);
    }
    absl::Status optimized_check;
    if (optimized.has_value()) {
      optimized_check = impl->InstallAndCheck(*optimized, options);
      if (optimized_check.ok()) {
        impl->optimized = true;
        return std::unique_ptr<TorchBackend>(new TorchBackend(std::move(impl)));
      }
    }
    // A model that fails with the frozen module too is broken either way: its own error says
    // why, and the optimised module's failure is not worth a log line.
    if (absl::Status s = impl->InstallAndCheck(served, options); !s.ok()) return s;
    if (!optimized_check.ok()) {
      std::fprintf(stderr,
                   "coalesce: model '%s': the optimize_for_inference module failed its check "
                   "(%s); serving the frozen module\n",
                   impl->metadata.name.c_str(), std::string(optimized_check.message()).c_str());
    }
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", impl->metadata.name, "' failed its dry run: ", ErrorText(e)));
  }
  return std::unique_ptr<TorchBackend>(new TorchBackend(std::move(impl)));
}

}  // namespace coalesce
