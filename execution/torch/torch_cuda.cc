#include "execution/torch/torch_backend_impl.h"

// No protobuf-generated header may be included here: a PyTorch wheel ships its own
// google/protobuf headers, which would shadow the system ones the protos were generated for.
#include <torch/script.h>
#include <torch/torch.h>
#if defined(COALESCE_WITH_CUDA)
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif

#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "execution/torch/torch_support.h"

// The CUDA-only parts of the batch path: stage timing events and CUDA graphs. Everything here
// compiles to nothing (or to "not available") without COALESCE_WITH_CUDA.

namespace coalesce {

void MarkStage(StageEvents* timing, StageEvents::Mark mark) {
#if defined(COALESCE_WITH_CUDA)
  if (timing != nullptr) timing->Record(mark);
#endif
}

#if defined(COALESCE_WITH_CUDA)
StageEvents::StageEvents() {
  events.reserve(kMarks);
  for (int m = 0; m < kMarks; ++m) events.emplace_back(cudaEventDefault);
}

void StageEvents::Record(Mark mark) { events[mark].record(c10::cuda::getCurrentCUDAStream()); }

Backend::DeviceStages StageEvents::Wait() {
  events[kCopiedOut].synchronize();
  auto between = [this](Mark from, Mark to) {
    return absl::Milliseconds(events[from].elapsed_time(events[to]));
  };
  Backend::DeviceStages stages;
  stages.copy_in = between(kStart, kCopiedIn);
  stages.forward = between(kCopiedIn, kForwardDone);
  stages.copy_out = between(kForwardDone, kCopiedOut);
  return stages;
}
#endif

std::optional<absl::Status> TorchBackend::Impl::RunGraph(WorkerState& state, int64_t rows,
                                                         absl::Span<const char* const> inputs,
                                                         absl::Span<char* const> outputs) {
#if defined(COALESCE_WITH_CUDA)
  if (!cuda_graphs || !state.stream.has_value() ||
      graphs_failed.load(std::memory_order_relaxed)) {
    return std::nullopt;
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    const int64_t bytes =
        rows * metadata.inputs[i].RowElements() * DataTypeSize(input_staging[i]);
    if (!pinned->Contains(inputs[i], bytes)) return std::nullopt;
  }
  for (size_t o = 0; o < outputs.size(); ++o) {
    const int64_t bytes =
        rows * metadata.outputs[o].RowElements() * DataTypeSize(output_staging[o]);
    if (!pinned->Contains(outputs[o], bytes)) return std::nullopt;
  }
  std::vector<uintptr_t> key = {static_cast<uintptr_t>(rows)};
  for (const char* in : inputs) key.push_back(reinterpret_cast<uintptr_t>(in));
  for (char* out : outputs) key.push_back(reinterpret_cast<uintptr_t>(out));
  WorkerGraphs& graphs = state.graphs;
  auto found = graphs.entries.find(key);
  if (found == graphs.entries.end()) {
    if (graphs.entries.size() >= WorkerGraphs::kMaxKeys) return std::nullopt;
    found = graphs.entries.emplace(std::move(key), WorkerGraphs::Entry()).first;
  }
  WorkerGraphs::Entry& entry = found->second;
  if (entry.graph == nullptr) {
    if (entry.eager_runs < WorkerGraphs::kEagerRunsBeforeCapture) {
      ++entry.eager_runs;
      return std::nullopt;
    }
    if (!graphs.pool.has_value()) graphs.pool = at::cuda::graph_pool_handle();
    auto graph = std::make_unique<at::cuda::CUDAGraph>();
    absl::Status captured;
    try {
      // Thread-local mode: the other workers keep running (and allocating) while this one
      // captures; only this thread's calls are checked.
      graph->capture_begin(*graphs.pool, cudaStreamCaptureModeThreadLocal);
      try {
        captured = RunOn(state.module, device, compute_type, rows, inputs, SpecInputDims(),
                         FixedSink(rows, outputs), /*staged=*/true, /*capturing=*/true);
      } catch (...) {
        try {
          graph->capture_end();
        } catch (...) {
          // The capture was invalidated; ending it is all that was needed.
        }
        throw;
      }
      graph->capture_end();
    } catch (const std::exception& e) {
      // A model that synchronises (reads a device value on the host, such as data-dependent
      // control flow) cannot be captured. The stream may have been left unusable: the worker
      // gets another (RunOnDevice() moves its guard there).
      if (!graphs_failed.exchange(true)) {
        std::fprintf(stderr,
                     "coalesce: model '%s': CUDA graph capture failed (%s); running without "
                     "graphs\n",
                     metadata.name.c_str(), torch_support::ErrorText(e).c_str());
      }
      state.stream = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index());
      return std::nullopt;
    }
    // A model error (a wrong output shape) is reported by the eager run that follows; the key
    // runs eagerly twice more before the next try.
    if (!captured.ok()) {
      entry.eager_runs = 0;
      return std::nullopt;
    }
    entry.graph = std::move(graph);
    graph_captures.fetch_add(1, std::memory_order_relaxed);
  }
  entry.graph->replay();
  // The outputs' device->host copies are the graph's last work on this stream.
  state.stream->synchronize();
  graph_replays.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
#else
  return std::nullopt;
#endif
}

}  // namespace coalesce
