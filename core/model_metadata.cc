#include "core/model_metadata.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace coalesce {

int64_t TensorSpec::RowElements() const {
  int64_t elements = 1;
  for (int64_t dim : dims) elements *= dim;
  return elements;
}

std::string ShapeToString(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

}  // namespace coalesce
