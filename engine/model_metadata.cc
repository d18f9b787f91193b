#include "engine/model_metadata.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace coalesce {

int64_t DimsElements(absl::Span<const int64_t> dims) {
  int64_t elements = 1;
  for (int64_t dim : dims) elements *= dim;
  return elements;
}

int64_t TensorSpec::RowElements() const { return DimsElements(dims); }

bool TensorSpec::HasVariableDims() const {
  for (int64_t dim : dims) {
    if (dim < 0) return true;
  }
  return false;
}

std::vector<int64_t> TensorSpec::ModelDimsFor(absl::Span<const int64_t> sample_dims) const {
  if (!reshape.has_value()) return {sample_dims.begin(), sample_dims.end()};
  std::vector<int64_t> variable;
  for (size_t d = 0; d < dims.size() && d < sample_dims.size(); ++d) {
    if (dims[d] < 0) variable.push_back(sample_dims[d]);
  }
  std::vector<int64_t> shape = *reshape;
  size_t next = 0;
  for (int64_t& dim : shape) {
    if (dim < 0 && next < variable.size()) dim = variable[next++];
  }
  return shape;
}

bool ModelMetadata::HasVariableDims() const {
  for (const auto* specs : {&inputs, &outputs}) {
    for (const TensorSpec& spec : *specs) {
      if (spec.HasVariableDims()) return true;
    }
  }
  return false;
}

std::string ShapeToString(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

}  // namespace coalesce
