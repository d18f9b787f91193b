#include "execution/torch/torch_backend.h"

// No protobuf-generated header may be included here: a PyTorch wheel ships its own
// google/protobuf headers, which would shadow the system ones the protos were generated for.
#include <torch/script.h>
#include <torch/torch.h>
#if defined(COALESCE_WITH_CUDA)
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "execution/torch/torch_backend_impl.h"
#include "execution/torch/torch_support.h"

namespace coalesce {
namespace {

using torch_support::ErrorText;
using torch_support::ScalarTypeOf;

// What InjectDeviceFailures() (torch_device_faults.h, test-only) makes the device path throw.
class InjectedDeviceFailure : public std::runtime_error {
 public:
  InjectedDeviceFailure() : std::runtime_error("injected device failure (test)") {}
};

}  // namespace

std::vector<std::vector<int64_t>> TorchBackend::Impl::SpecInputDims() const {
  std::vector<std::vector<int64_t>> dims;
  for (const TensorSpec& spec : metadata.inputs) dims.push_back(spec.dims);
  return dims;
}

std::vector<int64_t> TorchBackend::Impl::ModelShape(const TensorSpec& spec, int64_t rows,
                                                    absl::Span<const int64_t> dims) const {
  std::vector<int64_t> shape;
  if (metadata.batches()) shape.push_back(rows);
  const std::vector<int64_t> sample = spec.ModelDimsFor(dims);
  shape.insert(shape.end(), sample.begin(), sample.end());
  return shape;
}

TorchBackend::Impl::OutputSink TorchBackend::Impl::FixedSink(
    int64_t rows, absl::Span<char* const> outputs) const {
  return [outputs](int o, const std::vector<int64_t>&, int64_t) { return outputs[o]; };
}

bool TorchBackend::Impl::TakeInjectedFailure() {
  int left = injected_failures.load(std::memory_order_relaxed);
  while (left > 0 && !injected_failures.compare_exchange_weak(left, left - 1)) {
  }
  return left > 0;
}

bool TorchBackend::Impl::ShouldTryDevice(bool* probe) {
  *probe = false;
  if (!fell_back.load(std::memory_order_acquire)) return true;
  absl::MutexLock lock(&fallback_mu);
  if (!fell_back.load(std::memory_order_relaxed)) return true;
  if (probing || clock->Now() < next_recheck) return false;
  probing = true;
  *probe = true;
  return true;
}

void TorchBackend::Impl::FellBack(const std::exception& e, bool probe) {
  bool first;
  {
    absl::MutexLock lock(&fallback_mu);
    first = !fell_back.exchange(true, std::memory_order_acq_rel);
    if (probe) probing = false;
    // A failure of a batch that was already running when the first one fell back does not
    // push the recheck further out.
    if (first || probe) next_recheck = clock->Now() + recheck_interval;
  }
  fallbacks.fetch_add(1, std::memory_order_relaxed);
  std::fprintf(stderr, "coalesce: model '%s' failed on %s (%s); %s\n", metadata.name.c_str(),
               std::string(DeviceKindName(device_kind)).c_str(), ErrorText(e).c_str(),
               probe ? "staying on the CPU fallback" : "falling back to CPU");
}

void TorchBackend::Impl::EndProbe(bool probe) {
  if (!probe) return;
  absl::MutexLock lock(&fallback_mu);
  probing = false;
}

void TorchBackend::Impl::Recovered() {
  {
    absl::MutexLock lock(&fallback_mu);
    probing = false;
    fell_back.store(false, std::memory_order_release);
  }
  std::fprintf(stderr, "coalesce: model '%s' ran on %s again; leaving the CPU fallback\n",
               metadata.name.c_str(), std::string(DeviceKindName(device_kind)).c_str());
}

absl::Status TorchBackend::Impl::RunOnDevice(int worker, int64_t rows,
                                             absl::Span<const char* const> inputs,
                                             absl::Span<const std::vector<int64_t>> input_dims,
                                             const OutputSink& sink,
                                             absl::Span<char* const> fixed_outputs) {
  if (TakeInjectedFailure()) throw InjectedDeviceFailure();
  WorkerState& state = workers[worker % workers.size()];
  state.last_stages.reset();  // Stages of an earlier batch that nobody took.
  // A sampled batch is timed on the device, eagerly: a graph replay cannot be split into
  // stages, so where batches replay graphs sampling is rarer.
  const bool replays = cuda_graphs && !fixed_outputs.empty() &&
                       !graphs_failed.load(std::memory_order_relaxed);
  const bool timed =
      device_kind == DeviceKind::kCuda &&
      ++state.device_batches %
              (replays ? StageEvents::kSampleEveryWithGraphs : StageEvents::kSampleEvery) ==
          0;
#if defined(COALESCE_WITH_CUDA)
  std::optional<c10::cuda::CUDAStreamGuard> stream_guard;
  if (state.stream.has_value()) stream_guard.emplace(*state.stream);
  if (!fixed_outputs.empty() && !timed) {
    std::optional<absl::Status> graphed = RunGraph(state, rows, inputs, fixed_outputs);
    if (graphed.has_value()) return *std::move(graphed);
    // A failed capture gave the worker a new stream.
    if (stream_guard.has_value()) stream_guard->reset_stream(*state.stream);
  }
#endif
  StageEvents* timing = nullptr;
  if (timed) {
    if (state.timing == nullptr) state.timing = std::make_unique<StageEvents>();
    timing = state.timing.get();
  }
  std::unique_lock<std::mutex> mps_lock;
  if (device_kind == DeviceKind::kMps) {
    mps_lock = std::unique_lock(torch_support::MpsSubmissionMutex());
  }
  return RunOn(state.module, device, compute_type, rows, inputs, input_dims, sink,
               /*staged=*/true, /*capturing=*/false, timing, &state.last_stages);
}

absl::Status TorchBackend::Impl::Run(int worker, int64_t rows,
                                     absl::Span<const char* const> inputs,
                                     absl::Span<const std::vector<int64_t>> input_dims,
                                     const OutputSink& sink,
                                     absl::Span<char* const> fixed_outputs) {
  // Staged FP16 inputs are widened for the fp32 module, its outputs narrowed into staging.
  auto run_on_cpu = [&] {
    return RunOn(cpu_module, torch::Device(torch::kCPU), torch::kFloat, rows, inputs, input_dims,
                 sink, /*staged=*/true);
  };
  bool probe = false;
  if (ShouldTryDevice(&probe)) {
    try {
      absl::Status status = RunOnDevice(worker, rows, inputs, input_dims, sink, fixed_outputs);
      // The device answered (an error status is the model's, which the CPU would repeat).
      if (probe) Recovered();
      return status;
    } catch (const std::exception& e) {
      const bool injected = dynamic_cast<const InjectedDeviceFailure*>(&e) != nullptr;
      if (device_kind == DeviceKind::kCpu && !injected) {
        EndProbe(probe);
        throw;
      }
      // The device failed (an error, out of memory), or the model failed on this batch's
      // inputs (it raised, or asked for more memory than there is): the fp32 CPU module tells
      // which. Only a batch the CPU answers makes the model serve from the CPU rather than fail
      // every request from now on; one the CPU fails too is the batch's fault (the executor
      // splits and retries it) and leaves the device in use, so that a poison request cannot
      // move a model off its device.
      absl::Status on_cpu;
      try {
        on_cpu = run_on_cpu();
      } catch (const std::exception&) {
        EndProbe(probe);
        throw;
      }
      if (!on_cpu.ok()) {
        EndProbe(probe);
        return on_cpu;
      }
      FellBack(e, probe);
      return on_cpu;
    }
  }
  return run_on_cpu();
}

absl::StatusOr<std::vector<torch::Tensor>> TorchBackend::Impl::OutputTensors(
    const torch::jit::IValue& result) const {
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
  return tensors;
}

absl::Status TorchBackend::Impl::RunOn(torch::jit::Module& module, torch::Device on,
                                       torch::ScalarType compute, int64_t rows,
                                       absl::Span<const char* const> inputs,
                                       absl::Span<const std::vector<int64_t>> input_dims,
                                       const OutputSink& sink, bool staged, bool capturing,
                                       StageEvents* timing,
                                       std::optional<Backend::DeviceStages>* stages) {
  if (!metadata.batches() && rows != 1) {
    return absl::InternalError(absl::StrCat("model '", metadata.name,
                                            "' does not batch (max_batch_size 0) but was given ",
                                            rows, " requests at once"));
  }
  c10::InferenceMode inference_mode;
  MarkStage(timing, StageEvents::kStart);
  std::vector<torch::jit::IValue> args;
  args.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const TensorSpec& spec = metadata.inputs[i];
    const std::vector<int64_t> shape = ModelShape(spec, rows, input_dims[i]);
    const DataType type = staged ? input_staging[i] : spec.dtype;
    torch::Tensor host = torch::from_blob(const_cast<char*>(inputs[i]), shape, ScalarTypeOf(type));
    // Copied to the device as sent (asynchronously from pinned staging memory), then converted
    // there (staged FP16 to the compute type; nothing else changes type); to() returns the same
    // tensor when nothing changes (fp32 on CPU: the model reads the gathered buffer itself).
    torch::Tensor on_device = host.to(on, /*non_blocking=*/true);
    args.emplace_back(on_device.to(torch_support::ModelTypeOf(spec.dtype, compute)));
  }
  MarkStage(timing, StageEvents::kCopiedIn);
  absl::StatusOr<std::vector<torch::Tensor>> outputs =
      OutputTensors(module.forward(std::move(args)));
  if (!outputs.ok()) return outputs.status();
  std::vector<torch::Tensor>& tensors = *outputs;
  // Every output's type and shape are checked before any is copied: an error leaves no copy in
  // flight.
  std::vector<std::vector<int64_t>> shapes;
  for (size_t o = 0; o < tensors.size(); ++o) {
    const TensorSpec& spec = metadata.outputs[o];
    // The declared type, or for FP32 the compute precision the model runs in; converting any
    // other type would hand the client values the model did not mean (an index as a float).
    const torch::ScalarType returned = tensors[o].scalar_type();
    if (returned != ScalarTypeOf(spec.dtype) &&
        returned != torch_support::ModelTypeOf(spec.dtype, compute)) {
      return absl::InternalError(absl::StrCat(
          "model '", metadata.name, "' returned ", torch_support::TypeName(returned),
          " for output '", spec.name, "', declared ", DataTypeName(spec.dtype)));
    }
    std::vector<int64_t> got(tensors[o].sizes().begin(), tensors[o].sizes().end());
    // The config's reshape (or dims), after the batch dimension of a batching model, -1
    // matching any size. The elements are the client's dims' in the same order.
    std::vector<int64_t> expected;
    if (metadata.batches()) expected.push_back(rows);
    expected.insert(expected.end(), spec.model_dims().begin(), spec.model_dims().end());
    bool matches = got.size() == expected.size();
    for (size_t d = 0; matches && d < expected.size(); ++d) {
      matches = expected[d] < 0 || expected[d] == got[d];
    }
    if (!matches) {
      return absl::InternalError(absl::StrCat(
          "model '", metadata.name, "' returned shape ", ShapeToString(got), " for output '",
          spec.name, "', expected ", ShapeToString(expected),
          spec.reshape.has_value() ? " (its reshape)" : ""));
    }
    shapes.push_back(std::move(got));
  }
  MarkStage(timing, StageEvents::kForwardDone);
  // Converted to the wire type where the result is (a blocking copy_ between devices would
  // convert on the host, after the copy, with a temporary host tensor), then copied to the host
  // on this worker's stream; the blocking copy waits for the result: that is the
  // synchronisation, not a device-wide synchronise. In a capture the copies are recorded
  // instead, and RunGraph() waits for the stream after replaying them; a timed batch waits for
  // its last event.
  const bool wait_later = capturing || timing != nullptr;
  for (size_t o = 0; o < tensors.size(); ++o) {
    const DataType type = staged ? output_staging[o] : metadata.outputs[o].dtype;
    const int64_t bytes = DimsElements(shapes[o]) * DataTypeSize(type);
    torch::from_blob(sink(static_cast<int>(o), shapes[o], bytes), shapes[o], ScalarTypeOf(type))
        .copy_(tensors[o].to(ScalarTypeOf(type)), /*non_blocking=*/wait_later);
  }
#if defined(COALESCE_WITH_CUDA)
  if (timing != nullptr) {
    MarkStage(timing, StageEvents::kCopiedOut);
    *stages = timing->Wait();
  }
#endif
  return absl::OkStatus();
}

const StagingLayout& TorchBackend::InputStaging(int i) const {
  return impl_->input_staging[i] == impl_->metadata.inputs[i].dtype ? StagingLayout::Wire()
                                                                     : StagingLayout::Fp16();
}

const StagingLayout& TorchBackend::OutputStaging(int o) const {
  return impl_->output_staging[o] == impl_->metadata.outputs[o].dtype ? StagingLayout::Wire()
                                                                      : StagingLayout::Fp16();
}

std::optional<Backend::DeviceStages> TorchBackend::TakeDeviceStages(int worker) {
  WorkerState& state = impl_->workers[worker % impl_->workers.size()];
  return std::exchange(state.last_stages, std::nullopt);
}

int64_t TorchBackend::fallbacks() const {
  return impl_->fallbacks.load(std::memory_order_relaxed);
}

TorchBackend::GraphStats TorchBackend::cuda_graphs() const {
  GraphStats stats;
  stats.captured = impl_->graph_captures.load(std::memory_order_relaxed);
  stats.replays = impl_->graph_replays.load(std::memory_order_relaxed);
  stats.failed = impl_->graphs_failed.load(std::memory_order_relaxed);
  return stats;
}

bool TorchBackend::on_fallback() const {
  return impl_->fell_back.load(std::memory_order_acquire);
}

Backend::FallbackState TorchBackend::Fallback() const {
  FallbackState state;
  state.fallbacks = fallbacks();
  state.on_fallback = on_fallback();
  return state;
}

std::optional<Backend::MemoryUsage> TorchBackend::DeviceMemory() const {
  return torch_support::DeviceMemoryOf(impl_->device_kind, impl_->device);
}

void TorchBackend::RecheckDevice() {
  absl::MutexLock lock(&impl_->fallback_mu);
  impl_->next_recheck = absl::InfinitePast();
}

absl::Status TorchBackend::Execute(int worker, int64_t rows, absl::Span<const char* const> inputs,
                                   absl::Span<char* const> outputs) {
  try {
    return impl_->Run(worker, rows, inputs, impl_->SpecInputDims(),
                      impl_->FixedSink(rows, outputs), outputs);
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
                      },
                      /*fixed_outputs=*/{});
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("model '", impl_->metadata.name, "' failed: ", ErrorText(e)));
  }
}

}  // namespace coalesce
