#include "execution/torch/torch_ceilings.h"

// No protobuf-generated header may be included here: a PyTorch wheel ships its own
// google/protobuf headers, which would shadow the system ones the protos were generated for.
#include <torch/script.h>
#include <torch/torch.h>
#if defined(COALESCE_WITH_CUDA)
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "execution/half.h"
#include "execution/torch/torch_backend_impl.h"
#include "execution/torch/torch_support.h"

namespace coalesce {

using torch_support::ErrorText;
using torch_support::ScalarTypeOf;

absl::StatusOr<absl::Duration> TimeResidentBatches(TorchBackend& backend, int worker,
                                                   int64_t rows, int iterations) {
  TorchBackendInternals::Impl& impl = TorchBackendInternals::Of(backend);
  try {
    WorkerState& state = impl.workers[worker % impl.workers.size()];
#if defined(COALESCE_WITH_CUDA)
    std::optional<c10::cuda::CUDAStreamGuard> stream_guard;
    if (state.stream.has_value()) stream_guard.emplace(*state.stream);
#endif
    std::unique_lock<std::mutex> mps_lock;
    if (impl.device_kind == DeviceKind::kMps) {
      mps_lock = std::unique_lock(torch_support::MpsSubmissionMutex());
    }
    c10::InferenceMode inference_mode;
    std::vector<torch::jit::IValue> args;
    for (const TensorSpec& spec : impl.metadata.inputs) {
      std::vector<int64_t> dims;
      for (int64_t dim : spec.dims) dims.push_back(dim < 0 ? 1 : dim);
      std::vector<char> bytes = torch_support::RandomRows(spec, dims, rows);
      torch::Tensor on_device =
          torch::from_blob(bytes.data(), impl.ModelShape(spec, rows, dims),
                           ScalarTypeOf(spec.dtype))
              .to(impl.device);
      args.emplace_back(
          on_device.to(torch_support::ModelTypeOf(spec.dtype, impl.compute_type)));
    }
    // Page-locked on CUDA, like the server's staging memory, so the copy runs at full speed,
    // and in the output's staging type (FP16 with Options::stage_fp16), as the batch path copies.
    std::vector<torch::Tensor> host;
    absl::Time start;
    for (int i = -1; i < iterations; ++i) {
      if (i == 0) start = impl.clock->Now();  // Run -1 sizes the host buffers, untimed.
      absl::StatusOr<std::vector<torch::Tensor>> outputs =
          impl.OutputTensors(state.module.forward(args));
      if (!outputs.ok()) return outputs.status();
      for (size_t o = 0; o < outputs->size(); ++o) {
        const torch::Tensor& output = (*outputs)[o];
        if (host.size() <= o) {
          host.push_back(torch::empty(
              output.sizes(),
              torch::TensorOptions()
                  .dtype(ScalarTypeOf(impl.output_staging[o]))
                  .pinned_memory(impl.device_kind == DeviceKind::kCuda)));
        }
        host[o].copy_(output.to(host[o].scalar_type()));  // As RunOn() does.
      }
    }
    return impl.clock->Now() - start;
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("model '", impl.metadata.name,
                                            "' failed on resident inputs: ", ErrorText(e)));
  }
}

absl::StatusOr<absl::Duration> TimeHostBatches(TorchBackend& backend, int worker, int64_t rows,
                                               int iterations) {
  TorchBackendInternals::Impl& impl = TorchBackendInternals::Of(backend);
  try {
    std::vector<std::vector<int64_t>> dims;
    std::vector<std::shared_ptr<char>> input_memory;
    std::vector<const char*> inputs;
    for (size_t i = 0; i < impl.metadata.inputs.size(); ++i) {
      const TensorSpec& spec = impl.metadata.inputs[i];
      std::vector<int64_t> spec_dims;
      for (int64_t dim : spec.dims) spec_dims.push_back(dim < 0 ? 1 : dim);
      std::vector<char> bytes = torch_support::RandomRows(spec, spec_dims, rows);
      // In the staging type, as the executor would have gathered them.
      if (impl.input_staging[i] == DataType::kFp16 && spec.dtype == DataType::kFp32) {
        std::vector<char> halves(bytes.size() / 2);
        FloatsToHalves(reinterpret_cast<uint16_t*>(halves.data()),
                       reinterpret_cast<const float*>(bytes.data()), bytes.size() / sizeof(float),
                       /*streaming=*/false);
        bytes = std::move(halves);
      }
      input_memory.push_back(backend.AllocateStaging(static_cast<int64_t>(bytes.size())));
      std::memcpy(input_memory.back().get(), bytes.data(), bytes.size());
      inputs.push_back(input_memory.back().get());
      dims.push_back(std::move(spec_dims));
    }
    // Host staging for each output, sized by the untimed first run.
    std::vector<std::shared_ptr<char>> output_memory(impl.metadata.outputs.size());
    std::vector<int64_t> output_bytes(impl.metadata.outputs.size(), 0);
    TorchBackendInternals::Impl::OutputSink sink = [&](int o, const std::vector<int64_t>&,
                                                       int64_t bytes) {
      if (output_bytes[o] < bytes) {
        output_memory[o] = backend.AllocateStaging(bytes);
        output_bytes[o] = bytes;
      }
      return output_memory[o].get();
    };
    // From the second run on, a fixed-size model's outputs are known buffers, as the
    // executor's are, so the batch path may use its CUDA graphs.
    std::vector<char*> fixed_outputs;
    absl::Time start;
    for (int i = -1; i < iterations; ++i) {
      if (i == 0) start = impl.clock->Now();
      absl::Status status = impl.RunOnDevice(worker, rows, inputs, dims, sink, fixed_outputs);
      if (!status.ok()) return status;
      if (i == -1 && !impl.metadata.HasVariableDims()) {
        for (const auto& memory : output_memory) fixed_outputs.push_back(memory.get());
      }
    }
    return impl.clock->Now() - start;
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("model '", impl.metadata.name,
                                            "' failed from host buffers: ", ErrorText(e)));
  }
}

}  // namespace coalesce
