#ifndef COALESCE_SERVER_SHARED_MEMORY_REGION_H_
#define COALESCE_SERVER_SHARED_MEMORY_REGION_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace coalesce {

// Which of Triton's two shared-memory extensions a region belongs to. The two share one name
// space, as in Triton: a name registered as one kind cannot be registered as the other.
enum class SharedMemoryKind { kSystem, kCuda };

// Memory a client shares with the server, registered under a name, that tensors of inference
// requests can name instead of carrying their bytes in the message.
//
// A region stays usable for as long as anybody holds it: SharedMemoryManager hands out
// std::shared_ptr, and the memory is released (munmap, cudaIpcCloseMemHandle) by the destructor,
// after the last request that uses it has been answered.
//
// Thread-safe: the description is constant, and Read()/Write() may run concurrently (on
// different slices; what the client does to the bytes meanwhile is the client's affair, as in
// Triton).
class SharedMemoryRegion {
 public:
  // What SystemSharedMemoryStatus and CudaSharedMemoryStatus report.
  struct Description {
    std::string name;
    SharedMemoryKind kind = SharedMemoryKind::kSystem;
    // System regions: the shm_open key and where the region starts within the object.
    std::string key;
    uint64_t offset = 0;
    // CUDA regions: the device holding the memory.
    int64_t device_id = 0;
    // Bytes the region spans; tensors address [0, byte_size).
    int64_t byte_size = 0;
  };

  virtual ~SharedMemoryRegion() = default;
  SharedMemoryRegion(const SharedMemoryRegion&) = delete;
  SharedMemoryRegion& operator=(const SharedMemoryRegion&) = delete;

  const Description& description() const { return description_; }
  const std::string& name() const { return description_.name; }
  int64_t byte_size() const { return description_.byte_size; }

  // The bytes [offset, offset + size) of the region, as host memory: a view into the region
  // itself where it is host memory, else a copy into `scratch` (which the view then points
  // into). REQUIRES: the slice lies inside the region (CheckSliceInRegion); INTERNAL if not.
  virtual absl::StatusOr<absl::string_view> Read(int64_t offset, int64_t size,
                                                 std::string& scratch) const = 0;
  // Copies `bytes` to [offset, offset + bytes.size()). REQUIRES: that slice lies inside the
  // region; INTERNAL if not.
  virtual absl::Status Write(int64_t offset, absl::string_view bytes) const = 0;

 protected:
  explicit SharedMemoryRegion(Description description) : description_(std::move(description)) {}

  // INTERNAL unless [offset, offset + size) lies inside the region: the callers' checks failed.
  absl::Status CheckInside(int64_t offset, int64_t size) const;

 private:
  const Description description_;
};

}  // namespace coalesce

#endif  // COALESCE_SERVER_SHARED_MEMORY_REGION_H_
