// Executor's gather and scatter: every request's rows copied into staging and back out into its
// response (padded and cut for a model that pads), split over the copy threads when large.

#include "execution/executor.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include "engine/padding.h"

namespace coalesce {

void Executor::Gather(WorkerBuffers& buffers, const Batch& batch, bool retry,
                      BackendCall& call) {
  const ModelMetadata& metadata = backend_->metadata();
  call.gather_start = clock_->Now();
  for (size_t j = 0; !retry && j < batch.requests.size(); ++j) {
    const absl::Duration waited = call.gather_start - batch.requests[j]->arrival();
    metrics_->RecordQueued(waited);
    if (options_.statistics != nullptr) options_.statistics->RecordQueued(waited);
  }
  call.padded_length = PaddedLengthOf(batch);
  if (batch.requests.size() == 1 && lone_in_place_ && AlignedForItsElements(*batch.requests[0])) {
    // A lone request whose inputs stage as they are is passed through without a copy.
    for (size_t i = 0; i < call.inputs.size(); ++i) {
      call.inputs[i] = batch.requests[0]->input(i).data();
    }
  } else {
    // Every request of a batch has the same input sizes (the batcher groups them), or pads to
    // them, so rows stack contiguously.
    std::vector<char*> staging(call.inputs.size());
    for (size_t i = 0; i < staging.size(); ++i) {
      int64_t bytes = 0;
      for (const auto& request : batch.requests) {
        bytes += StagedBytesOf(*request, i, call.padded_length);
      }
      staging[i] = Reserve(buffers.inputs[i], bytes);
      call.inputs[i] = staging[i];
    }
    GatherRows(batch, staging, call.padded_length);
  }
  if (padded_rows_.has_value()) RecordPadding(batch, call.padded_length);
  // Each output's bytes for the whole batch: known now for fixed dims, from the backend once it
  // ran for variable ones.
  if (!metadata.HasVariableDims()) {
    for (size_t o = 0; o < call.outputs.size(); ++o) {
      call.output_bytes[o] = batch.rows * OutputStagingRowBytes(o);
      call.outputs[o] = Reserve(buffers.outputs[o], call.output_bytes[o]);
    }
  }
  call.gathered = clock_->Now();
}

int64_t Executor::PaddedLengthOf(const Batch& batch) const {
  if (!padded_rows_.has_value() || batch.requests.size() < 2) return 0;
  // The policy batches requests of one bucket, or smaller ones with it; requests that run as
  // sent (bucket 0) only with requests of their own dims.
  int64_t length = 0;
  for (const auto& request : batch.requests) {
    const PaddedLength padded = LengthOf(*backend_->metadata().padding, request->input_dims());
    if (padded.bucket == 0) return 0;
    length = std::max(length, padded.bucket);
  }
  return length;
}

void Executor::RecordPadding(const Batch& batch, int64_t padded_length) {
  const ModelMetadata& metadata = backend_->metadata();
  int64_t staged = 0;
  int64_t pad = 0;
  for (const PaddingSpec::Input& in : metadata.padding->inputs) {
    const int64_t element = DataTypeSize(metadata.inputs[in.input].dtype);
    for (const auto& request : batch.requests) {
      const int64_t own = static_cast<int64_t>(request->input(in.input).size()) / element;
      const int64_t bytes = StagedBytesOf(*request, in.input, padded_length);
      staged += bytes / element;
      pad += bytes / element - own;
    }
  }
  metrics_->RecordPadding(pad, staged);
}

void Executor::Scatter(const Batch& batch, const BackendCall& call) {
  if (call.status.ok()) {
    ScatterRows(batch, call.outputs, call.output_bytes, call.padded_length);
  }
  // Recorded before the answers go out, so that a client reading statistics after its answer
  // sees its batch counted.
  const absl::Duration gather = call.gathered - call.gather_start;
  const absl::Duration took = call.scatter_start - call.start;
  const absl::Duration scatter = clock_->Now() - call.scatter_start;
  metrics_->RecordStages(gather, scatter);
  if (options_.statistics != nullptr && call.status.ok()) {
    options_.statistics->RecordBatch(batch.rows, gather, took, scatter);
  }
  for (const auto& request : batch.requests) request->TraceCompute(call.start, call.scatter_start);
}

void Executor::ForEachRequest(const Batch& batch, int64_t bytes,
                              const std::function<void(size_t)>& work) {
  const size_t n = batch.requests.size();
  int64_t pieces = 1;
  if (copy_pool_ != nullptr) {
    pieces = std::min<int64_t>({options_.copy_threads, static_cast<int64_t>(n),
                                bytes / options_.copy_split_bytes});
  }
  if (pieces <= 1) {
    for (size_t j = 0; j < n; ++j) work(j);
    return;
  }
  parallel_copies_.fetch_add(1, std::memory_order_relaxed);
  // Piece k takes the requests whose first row lies in [k, k + 1) * rows / pieces: consecutive
  // requests of about equal bytes, since every row of a batch has the same size.
  int64_t rows = 0;
  for (const auto& request : batch.requests) rows += request->rows();
  std::vector<size_t> first(pieces + 1, n);
  first[0] = 0;
  int64_t k = 0, row = 0;
  for (size_t j = 0; j < n; ++j) {
    const int64_t piece = std::min(pieces - 1, row * pieces / std::max<int64_t>(rows, 1));
    while (k < piece) first[++k] = j;
    row += batch.requests[j]->rows();
  }
  copy_pool_->ParallelFor(static_cast<int>(pieces), [&](int piece) {
    for (size_t j = first[piece]; j < first[piece + 1]; ++j) work(j);
  });
}

void Executor::GatherRows(const Batch& batch, absl::Span<char* const> inputs,
                          int64_t padded_length) {
  // Where each request's rows start in each input's staging, so pieces can copy independently.
  const size_t n = batch.requests.size();
  std::vector<int64_t> offsets(n * inputs.size());
  int64_t bytes = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    int64_t offset = 0;
    for (size_t j = 0; j < n; ++j) {
      offsets[j * inputs.size() + i] = offset;
      offset += StagedBytesOf(*batch.requests[j], i, padded_length);
    }
    bytes += offset;
  }
  const bool streaming = options_.streaming_gather;
  ForEachRequest(batch, bytes, [&](size_t j) {
    const InferRequest& request = *batch.requests[j];
    for (size_t i = 0; i < inputs.size(); ++i) {
      char* to = inputs[i] + offsets[j * inputs.size() + i];
      if (padded_length > 0 && padded_input_[i] >= 0) {
        padded_rows_->Pad(padded_input_[i], request.input_dims()[i], request.rows(),
                          request.input(i), padded_length, to);
      } else {
        input_layouts_[i]->Stage(request.input(i), to, streaming);
      }
    }
    if (streaming) StagingFence();
  });
}

void Executor::ScatterRows(const Batch& batch, absl::Span<char* const> outputs,
                           absl::Span<const int64_t> output_bytes, int64_t padded_length) {
  std::vector<int64_t> first_row(batch.requests.size());
  int64_t row = 0;
  for (size_t j = 0; j < batch.requests.size(); ++j) {
    first_row[j] = row;
    row += batch.requests[j]->rows();
  }
  int64_t bytes = 0;
  for (int64_t b : output_bytes) bytes += b;
  // Each answer's memory is allocated as it is filled, on the copy threads too.
  ForEachRequest(batch, bytes, [&](size_t j) {
    const InferRequest& request = *batch.requests[j];
    for (size_t o = 0; o < outputs.size(); ++o) {
      OutputBuffer* out = request.output(o);
      if (out == nullptr) continue;
      const int64_t row_bytes = output_bytes[o] / batch.rows;  // In the staging layout.
      if (padded_length > 0 && cut_output_[o] >= 0) {
        const int c = cut_output_[o];
        const int64_t length = LengthOf(*backend_->metadata().padding, request.input_dims()).length;
        padded_rows_->Cut(c, request.rows(), padded_length, length,
                          outputs[o] + first_row[j] * row_bytes,
                          out->Allocate(padded_rows_->CutOutputBytes(c, request.rows(), length)));
        continue;
      }
      const int64_t staged_bytes = request.rows() * row_bytes;
      const StagingLayout& layout = *output_layouts_[o];
      layout.Unstage(outputs[o] + first_row[j] * row_bytes, staged_bytes,
                     out->Allocate(layout.WireBytes(staged_bytes)));
    }
  });
}

}  // namespace coalesce
