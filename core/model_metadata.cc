#include "core/model_metadata.h"

namespace coalesce {

int64_t TensorSpec::RowElements() const {
  int64_t elements = 1;
  for (int64_t dim : dims) elements *= dim;
  return elements;
}

}  // namespace coalesce
