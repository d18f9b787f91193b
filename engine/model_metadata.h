#ifndef COALESCE_ENGINE_MODEL_METADATA_H_
#define COALESCE_ENGINE_MODEL_METADATA_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "engine/data_type.h"

namespace coalesce {

// One input or output of a model. `dims` excludes the batch dimension; -1 marks a dimension
// whose size each request chooses. Clients see `dims` only: requests are validated against
// them and responses are shaped by them.
struct TensorSpec {
  std::string name;
  DataType dtype = DataType::kFp32;
  std::vector<int64_t> dims;
  // The shape the model itself takes (an input) or produces (an output) instead of `dims`,
  // without the batch dimension, as Triton's `reshape`: the same elements in the same order,
  // viewed in another shape. Its k-th -1 stands for the size of the k-th -1 of `dims`.
  // Invariant (ParseModelConfig checks it): the runs of fixed dims between the -1s hold as many
  // elements in both, so the element counts agree for every request. May be empty (a scalar
  // per sample of a batching model, for `dims` [1]). Unset: the model sees `dims`.
  std::optional<std::vector<int64_t>> reshape = std::nullopt;

  // Elements in one sample (one row of the batch). Requires every dim to be fixed (>= 0).
  int64_t RowElements() const;
  int64_t RowBytes() const { return RowElements() * DataTypeSize(dtype); }
  bool HasVariableDims() const;
  // The shape on the model's side, without the batch dimension: `reshape` if set, else `dims`;
  // -1 where a request chooses the size.
  const std::vector<int64_t>& model_dims() const { return reshape.has_value() ? *reshape : dims; }
  // model_dims() for one sample whose client-side dims are `sample_dims` (`dims` with each -1
  // filled in): each -1 of `reshape` takes the size of the -1 of `dims` in the same place in
  // order. Requires sample_dims.size() == dims.size().
  std::vector<int64_t> ModelDimsFor(absl::Span<const int64_t> sample_dims) const;
};

// How a batching model with variable dims lets requests of different lengths share a batch
// (docs/batching.md, "Padded batching"), as its config declares it. Requests carry one length:
// the size of the variable dim of every padded input (the inputs' lengths agree). A batch of
// several requests pads each padded input to the batch's bucket, the smallest of `buckets` that
// holds its longest request, runs once, and cuts each cut output back to each request's own
// length. Invariants (the repository's parser checks them): every input with a variable dim is
// padded, has exactly one -1 and no reshape; every output with a variable dim is cut, has exactly
// one -1 and no reshape; `buckets` is ascending and not empty.
struct PaddingSpec {
  struct Input {
    // Index in ModelMetadata::inputs.
    int input = 0;
    // Index of its variable dim in `dims`.
    int dim = 0;
    // The value every padded element holds, in the input's type (exactly representable).
    double value = 0;
  };
  struct Output {
    // Index in ModelMetadata::outputs.
    int output = 0;
    // Index of its variable dim in `dims`: the one that follows the requests' length.
    int dim = 0;
  };
  // Padded lengths, ascending. A request longer than the last runs as today: only with requests
  // of exactly its dims.
  std::vector<int64_t> buckets;
  std::vector<Input> inputs;
  std::vector<Output> outputs;
  // The largest share of a batch's padded-input elements that may be padding when requests of a
  // smaller bucket join a batch of a larger one (JoinSmallerBuckets()). 0: buckets never mix.
  double max_padding_ratio = 0.5;
};

// What a model takes and returns, as ModelMetadata reports it and as requests are validated
// against. A model with max_batch_size > 0 batches along a leading dimension that `dims` omit;
// with max_batch_size == 0 it does not batch: each request is one execution, and the model
// takes and returns tensors of exactly their dims (or reshape), with no leading dimension.
struct ModelMetadata {
  std::string name;
  std::string version = "1";
  std::string platform = "pytorch_libtorch";
  int64_t max_batch_size = 0;
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  // Set when requests of different lengths may share a batch, padded; unset, only requests of
  // equal input dims do.
  std::optional<PaddingSpec> padding = std::nullopt;

  bool batches() const { return max_batch_size > 0; }
  // Whether any input or output has a -1 dimension: requests then carry their own sizes, and
  // only requests of equal sizes share a batch, unless the model pads (`padding`).
  bool HasVariableDims() const;
};

// Elements in a row of `dims` (no -1 allowed).
int64_t DimsElements(absl::Span<const int64_t> dims);

// "[-1, 32, 256]": a shape as error messages print it.
std::string ShapeToString(absl::Span<const int64_t> shape);

}  // namespace coalesce

#endif  // COALESCE_ENGINE_MODEL_METADATA_H_
