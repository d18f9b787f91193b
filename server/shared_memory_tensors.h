#ifndef COALESCE_SERVER_SHARED_MEMORY_TENSORS_H_
#define COALESCE_SERVER_SHARED_MEMORY_TENSORS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "proto/inference.pb.h"
#include "server/request_validator.h"
#include "server/shared_memory_region.h"

namespace coalesce {

class SharedMemoryManager;

// The tensors of one inference request that live in shared memory: inputs whose bytes are read
// from a region, and requested outputs to be written into one. Each names its slice with
// Triton's parameters `shared_memory_region` (string), `shared_memory_offset` (int64, default
// 0) and `shared_memory_byte_size` (int64).
//
// It holds every region it resolved until it is destroyed, so that the request it belongs to
// can use them however long it waits, even if they are unregistered meanwhile: keep it with the
// request until the request has been answered.
//
// Not thread-safe; belongs to one request.
class SharedMemoryTensors {
 public:
  // Reads the shared-memory parameters of `request`'s inputs and requested outputs and
  // resolves their regions in `manager` (which may be null: no region is registered). Returns
  // null, cheaply, when no tensor carries them. INVALID_ARGUMENT for malformed parameters (a
  // wrong type, an offset or size without a region, a region without a size) or a slice
  // outside its region; NOT_FOUND for an unknown region. Messages name the tensor, the region,
  // the offset, the size and the region's size. The input views point into the regions (or
  // into this object), so the result must outlive the request built from `request`.
  static absl::StatusOr<std::unique_ptr<SharedMemoryTensors>> Resolve(
      const SharedMemoryManager* manager, const inference::ModelInferRequest& request);

  // One entry per request input: the bytes of those in shared memory, for
  // ValidateInferRequest(), which checks their size against shape and datatype.
  absl::Span<const std::optional<ExternalInput>> inputs() const { return inputs_; }

  // Before compute: INVALID_ARGUMENT if an output in shared memory whose size `response`
  // already tells (datatype and a shape with no -1) does not fit its slice. `response` is the
  // one the request will fill, with its outputs listed.
  absl::Status CheckOutputsFit(const inference::ModelInferResponse& response) const;

  // After compute: copies each shared-memory output's bytes from its raw_output_contents entry
  // (entry k belongs to outputs(k)) into its slice and leaves the entry empty, as Triton does
  // (the entries stay, so that raw_output_contents still lines up with outputs), and sets the
  // output's shared_memory_* parameters, shared_memory_byte_size being the bytes written.
  // INVALID_ARGUMENT, writing nothing further, if an output (one whose size depends on its
  // input, say) is larger than its slice.
  absl::Status WriteOutputs(inference::ModelInferResponse& response) const;

 private:
  struct Slice {
    std::shared_ptr<const SharedMemoryRegion> region;
    int64_t offset = 0;
    int64_t byte_size = 0;
  };
  struct OutputSlice {
    std::string name;
    Slice slice;
  };

  SharedMemoryTensors() = default;
  const OutputSlice* FindOutput(const std::string& name) const;

  std::vector<std::optional<ExternalInput>> inputs_;
  std::vector<OutputSlice> outputs_;
  // Copies of inputs whose region is not host memory; the views in inputs_ point into them.
  std::vector<std::unique_ptr<std::string>> scratch_;
  // Every region resolved, held until this object is destroyed.
  std::vector<std::shared_ptr<const SharedMemoryRegion>> held_;
};

}  // namespace coalesce

#endif  // COALESCE_SERVER_SHARED_MEMORY_TENSORS_H_
