// Executor's staging: the layout each tensor is staged in, the bytes it takes there, and the
// buffers that hold it. The executor's steps are described in executor.h.

#include "execution/executor.h"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace coalesce {

absl::Status Executor::ResolveStagingLayouts() {
  const ModelMetadata& metadata = backend_->metadata();
  auto check = [&](const TensorSpec& spec, const StagingLayout& layout,
                   const char* kind) -> absl::Status {
    absl::Status fits = layout.Fits(spec);
    if (fits.ok()) return fits;
    return absl::InvalidArgumentError(absl::StrCat("model '", metadata.name, "' ", kind, " '",
                                                   spec.name, "': ", fits.message()));
  };
  for (size_t i = 0; i < metadata.inputs.size(); ++i) {
    const StagingLayout& layout = backend_->InputStaging(static_cast<int>(i));
    if (absl::Status s = check(metadata.inputs[i], layout, "input"); !s.ok()) return s;
    input_layouts_.push_back(&layout);
    lone_in_place_ = lone_in_place_ && layout.keeps_wire_bytes();
  }
  for (size_t o = 0; o < metadata.outputs.size(); ++o) {
    const StagingLayout& layout = backend_->OutputStaging(static_cast<int>(o));
    if (absl::Status s = check(metadata.outputs[o], layout, "output"); !s.ok()) return s;
    output_layouts_.push_back(&layout);
  }
  if (!metadata.padding.has_value()) return absl::OkStatus();
  // Padding and cutting work on the wire bytes.
  padded_input_.assign(metadata.inputs.size(), -1);
  cut_output_.assign(metadata.outputs.size(), -1);
  for (size_t p = 0; p < metadata.padding->inputs.size(); ++p) {
    const int i = metadata.padding->inputs[p].input;
    padded_input_[i] = static_cast<int>(p);
    if (!input_layouts_[i]->keeps_wire_bytes()) {
      return absl::InvalidArgumentError(absl::StrCat("model '", metadata.name, "' input '",
                                                     metadata.inputs[i].name,
                                                     "' is padded, so it must stage as sent"));
    }
  }
  for (size_t c = 0; c < metadata.padding->outputs.size(); ++c) {
    const int o = metadata.padding->outputs[c].output;
    cut_output_[o] = static_cast<int>(c);
    if (!output_layouts_[o]->keeps_wire_bytes()) {
      return absl::InvalidArgumentError(absl::StrCat("model '", metadata.name, "' output '",
                                                     metadata.outputs[o].name,
                                                     "' is cut, so it must stage as sent"));
    }
  }
  absl::StatusOr<PaddedRows> padded = PaddedRows::Create(metadata);
  if (!padded.ok()) return padded.status();
  padded_rows_.emplace(*std::move(padded));
  return absl::OkStatus();
}

int64_t Executor::StagedInputBytes(size_t i, int64_t wire_bytes) const {
  return input_layouts_[i]->StagedBytes(wire_bytes);
}

int64_t Executor::OutputStagingRowBytes(size_t o) const {
  return output_layouts_[o]->StagedBytes(backend_->metadata().outputs[o].RowBytes());
}

char* Executor::Reserve(Staging& staging, int64_t bytes) {
  const bool hit = options_.pool_staging && staging.data != nullptr && bytes <= staging.bytes;
  metrics_->RecordStaging(hit);
  if (!hit) {
    staging.data = backend_->AllocateStaging(bytes);
    staging.bytes = bytes;
  }
  return staging.data.get();
}

absl::Status Executor::ReserveFullBatch(WorkerBuffers& buffers) {
  const ModelMetadata& metadata = backend_->metadata();
  const int64_t max_rows = std::max<int64_t>(1, metadata.max_batch_size);
  buffers.inputs.resize(metadata.inputs.size());
  buffers.outputs.resize(metadata.outputs.size());
  auto reserve = [&](Staging& staging, int64_t bytes, const char* kind,
                     const std::string& name) -> absl::Status {
    try {
      Reserve(staging, bytes);
      return absl::OkStatus();
    } catch (const std::exception& e) {
      const std::string what = e.what();  // LibTorch's carry a backtrace after the first line.
      return absl::ResourceExhaustedError(absl::StrCat(
          "model '", metadata.name, "' ", kind, " '", name, "': cannot allocate ", bytes,
          " bytes of staging for a batch of ", max_rows, ": ", what.substr(0, what.find('\n'))));
    }
  };
  // Variable-size tensors get their buffers from the first batch that needs them, and keep
  // them (grown to the largest seen).
  for (size_t i = 0; options_.pool_staging && i < metadata.inputs.size(); ++i) {
    if (metadata.inputs[i].HasVariableDims()) continue;
    absl::Status s =
        reserve(buffers.inputs[i], StagedInputBytes(i, max_rows * metadata.inputs[i].RowBytes()),
                "input", metadata.inputs[i].name);
    if (!s.ok()) return s;
  }
  for (size_t o = 0; options_.pool_staging && o < metadata.outputs.size(); ++o) {
    if (metadata.outputs[o].HasVariableDims()) continue;
    absl::Status s = reserve(buffers.outputs[o], max_rows * OutputStagingRowBytes(o), "output",
                             metadata.outputs[o].name);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

int64_t Executor::StagedBytesOf(const InferRequest& request, size_t i,
                                int64_t padded_length) const {
  if (padded_length > 0 && padded_input_[i] >= 0) {
    return padded_rows_->PaddedInputBytes(padded_input_[i], request.input_dims()[i],
                                          request.rows(), padded_length);
  }
  return StagedInputBytes(i, static_cast<int64_t>(request.input(i).size()));
}

bool Executor::AlignedForItsElements(const InferRequest& request) const {
  // A request's input may be a view into the bytes gRPC received, where a tensor starts at any
  // byte; the backend reads its elements as their type (staging is aligned for any type).
  const ModelMetadata& metadata = backend_->metadata();
  for (size_t i = 0; i < metadata.inputs.size(); ++i) {
    const uintptr_t address = reinterpret_cast<uintptr_t>(request.input(i).data());
    const int64_t element = std::max<int64_t>(1, DataTypeSize(metadata.inputs[i].dtype));
    if (address % static_cast<uintptr_t>(element) != 0) return false;
  }
  return true;
}

}  // namespace coalesce
