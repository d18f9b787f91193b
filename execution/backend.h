#ifndef COALESCE_EXECUTION_BACKEND_H_
#define COALESCE_EXECUTION_BACKEND_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "engine/model_metadata.h"
#include "execution/staging_layout.h"

namespace coalesce {

// Runs one model on whole batches. The executor gathers requests into contiguous buffers and
// calls `Execute()`; a backend never sees individual requests.
//
// Thread-safety: `Execute()` is called concurrently for every executor worker, each call passing
// its `worker` index (0 .. workers-1) and its thread's buffers. Calls for one worker never
// overlap, though they may come from different threads (Executor::Options::batches_per_worker),
// so an implementation may keep per-worker state indexed by it without locking.
class Backend {
 public:
  virtual ~Backend() = default;

  // Constant after construction.
  virtual const ModelMetadata& metadata() const = 0;

  // Runs the model on `rows` samples. `inputs[i]` holds `rows` rows of model input i in its
  // staging layout (InputStaging(): the wire bytes unless the backend asks otherwise),
  // contiguous and row-major, and aligned for its element type; `outputs[i]` has room for `rows` rows of output i in its staging
  // layout (OutputStaging()) and receives them in the same order. An error fails the batch,
  // which the executor splits and retries if the error is one the model's inputs can cause
  // (INTERNAL, INVALID_ARGUMENT, RESOURCE_EXHAUSTED, ...: Executor::RetriesOnSplit()), so that
  // only the requests that fail alone get it. A backend that cannot run any batch now (its
  // device is lost) says so with UNAVAILABLE, which fails the batch without retries.
  // A model with max_batch_size 0 does not batch: `rows` is always 1, and a backend hands its
  // model a tensor of exactly the spec's dims (or reshape), without a leading rows dimension.
  // A row holds a tensor's elements in `dims` order; a spec with a reshape (TensorSpec::reshape)
  // is the same elements, which the backend hands the model (or takes from it) in that shape.
  virtual absl::Status Execute(int worker, int64_t rows, absl::Span<const char* const> inputs,
                               absl::Span<char* const> outputs) = 0;

  // A batch of a model with variable dimensions (ModelMetadata::HasVariableDims()).
  struct VariableBatch {
    // Each input's dims without the batch dimension, as every request of the batch sent them.
    std::vector<std::vector<int64_t>> input_dims;
    // Room for all `rows` rows of output `o`, `bytes` bytes in all, row-major; called once per
    // output once its size is known. Each output may have at most one -1 dimension, so that
    // its shape follows from its size.
    std::function<char*(int o, int64_t bytes)> output_buffer;
  };

  // Execute() for a model with variable dimensions. The default refuses.
  virtual absl::Status ExecuteVariable(int worker, int64_t rows,
                                       absl::Span<const char* const> inputs,
                                       const VariableBatch& batch) {
    return absl::UnimplementedError("this backend runs fixed-size tensors only");
  }

  // How input `i` (output `o`) is laid out in staging: what Execute() reads (writes) in place of
  // the wire bytes. The executor stages each request's rows through it while it gathers (and
  // scatters), and refuses at start-up a layout that does not fit its tensor
  // (StagingLayout::Fits()). Default: as on the wire. A backend computing in fp16 on an
  // accelerator can ask for StagingLayout::Fp16() for FP32 tensors, so that half the bytes cross
  // between host and device.
  virtual const StagingLayout& InputStaging(int i) const { return StagingLayout::Wire(); }
  virtual const StagingLayout& OutputStaging(int o) const { return StagingLayout::Wire(); }

  // Executor::Options::batches_per_worker when the server leaves it to the backend: 2 where a
  // batch's host copies are worth overlapping with another batch's time on the same model
  // instance (an accelerator that runs asynchronously to the host), else 1. Default 1.
  virtual int DefaultBatchesPerWorker() const { return 1; }
  // Where the model runs and in what precision, for logs ("cpu fp32", "cuda fp16").
  virtual std::string DeviceDescription() const = 0;
  // The device its batches run on, as the metrics' `device` label: "cpu", "cuda:0", "mps".
  // Models that name the same device share its busy time (DeviceBusy). Default "cpu".
  virtual std::string DeviceName() const { return "cpu"; }

  // Host memory of `bytes` bytes for the executor to gather inputs into and receive outputs
  // in, freed when the last copy of the pointer goes. Plain heap memory by default; a GPU
  // backend returns page-locked memory, so its copies to and from the device run at full speed
  // and asynchronously. The executor allocates once per worker, at start-up, not per batch.
  virtual std::shared_ptr<char> AllocateStaging(int64_t bytes) {
    return std::shared_ptr<char>(new char[bytes], std::default_delete<char[]>());
  }

  // The accelerator memory the backend's allocator holds, in bytes.
  struct MemoryUsage {
    // Held by live tensors.
    int64_t in_use_bytes = 0;
    // Taken from the device by the allocator: in use plus cached for reuse.
    int64_t reserved_bytes = 0;
  };
  // Sampled when metrics are scraped, from any thread; must be cheap and must not block on the
  // device. Empty when the backend cannot tell (CPU memory is in the process's resident size).
  virtual std::optional<MemoryUsage> DeviceMemory() const { return std::nullopt; }

  // Where a batch's time on an accelerator went, measured on the device.
  struct DeviceStages {
    // Inputs copied from host staging to the device and converted to the compute precision.
    absl::Duration copy_in;
    // The model's forward.
    absl::Duration forward;
    // Outputs converted to their wire type and copied to host staging.
    absl::Duration copy_out;
  };
  // The stages of the batch `worker` last ran through Execute() or ExecuteVariable(), if the
  // backend timed it, and only once: the executor calls this right after a successful call,
  // from the same thread and before the worker's next call. A backend may time only some
  // batches. The default times none.
  virtual std::optional<DeviceStages> TakeDeviceStages(int worker) { return std::nullopt; }

  // Whether the backend serves from a fallback because its device failed.
  struct FallbackState {
    // Batches that failed on the device and were answered by the fallback, since load.
    int64_t fallbacks = 0;
    // Serving from the fallback now (until a recheck finds the device healthy again).
    bool on_fallback = false;
  };
  // Sampled like DeviceMemory(). A backend without a fallback reports zeros.
  virtual FallbackState Fallback() const { return {}; }
};

}  // namespace coalesce

#endif  // COALESCE_EXECUTION_BACKEND_H_
