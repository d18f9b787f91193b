#ifndef COALESCE_CORE_MODEL_METADATA_H_
#define COALESCE_CORE_MODEL_METADATA_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "core/data_type.h"

namespace coalesce {

// One input or output of a model. `dims` excludes the batch dimension; -1 marks a dimension
// whose size each request chooses.
struct TensorSpec {
  std::string name;
  DataType dtype = DataType::kFp32;
  std::vector<int64_t> dims;

  // Elements in one sample (one row of the batch). Requires every dim to be fixed (>= 0).
  int64_t RowElements() const;
  int64_t RowBytes() const { return RowElements() * DataTypeSize(dtype); }
  bool HasVariableDims() const;
};

// What a model takes and returns, as ModelMetadata reports it and as requests are validated
// against. A model with max_batch_size > 0 batches along a leading dimension that `dims` omit;
// with max_batch_size == 0 it does not batch and each request is one execution.
struct ModelMetadata {
  std::string name;
  std::string version = "1";
  std::string platform = "pytorch_libtorch";
  int64_t max_batch_size = 0;
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;

  // Whether any input or output has a -1 dimension: requests then carry their own sizes, and
  // only requests of equal sizes share a batch.
  bool HasVariableDims() const;
};

// Elements in a row of `dims` (no -1 allowed).
int64_t DimsElements(absl::Span<const int64_t> dims);

// "[-1, 32, 256]": a shape as error messages print it.
std::string ShapeToString(absl::Span<const int64_t> shape);

}  // namespace coalesce

#endif  // COALESCE_CORE_MODEL_METADATA_H_
