#include "core/model_metadata.h"

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
