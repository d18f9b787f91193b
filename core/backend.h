#ifndef COALESCE_CORE_BACKEND_H_
#define COALESCE_CORE_BACKEND_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "core/model_metadata.h"

namespace coalesce {

// Runs one model on whole batches. The executor gathers requests into contiguous buffers and
// calls `Execute()`; a backend never sees individual requests.
//
// Thread-safety: `Execute()` is called concurrently from every executor worker, each passing its
// own `worker` index (0 .. workers-1) and its own buffers; an implementation may keep per-worker
// state indexed by it without locking.
class Backend {
 public:
  virtual ~Backend() = default;

  // Constant after construction.
  virtual const ModelMetadata& metadata() const = 0;

  // Runs the model on `rows` samples. `inputs[i]` holds `rows` rows of model input i in its wire
  // datatype, contiguous and row-major; `outputs[i]` has room for `rows` rows of output i and
  // receives them in the same layout. An error fails every request of the batch.
  virtual absl::Status Execute(int worker, int64_t rows, absl::Span<const char* const> inputs,
                               absl::Span<char* const> outputs) = 0;

  // Where the model runs and in what precision, for logs ("cpu fp32", "cuda:0 fp16").
  virtual std::string DeviceDescription() const = 0;
};

}  // namespace coalesce

#endif  // COALESCE_CORE_BACKEND_H_
