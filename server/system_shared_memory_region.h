#ifndef COALESCE_SERVER_SYSTEM_SHARED_MEMORY_REGION_H_
#define COALESCE_SERVER_SYSTEM_SHARED_MEMORY_REGION_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/shared_memory_region.h"

namespace coalesce {

// A slice of a POSIX shared-memory object (/dev/shm), mapped read-write into the server, as
// Triton's system shared-memory extension maps it. Tensors read their bytes straight from the
// mapping and outputs are copied into it.
//
// Thread-safe (see SharedMemoryRegion). The mapping lives until the object is destroyed.
// The client must not shrink the object (ftruncate) while it is registered: touching a page
// past the object's new end raises SIGBUS in the server, as it would in Triton.
class SystemSharedMemoryRegion final : public SharedMemoryRegion {
 public:
  // Opens `key` read-write (shm_open), checks that [offset, offset + byte_size) lies inside the
  // object (fstat) and maps that slice. Any offset works: the mapping starts at the page
  // boundary below it. INVALID_ARGUMENT for a bad key (CheckSharedMemoryKey) or a slice that
  // does not fit; NOT_FOUND for a key with no object; PERMISSION_DENIED where the server may
  // not open it; INTERNAL for other failures. Every message names the region and the key.
  static absl::StatusOr<std::unique_ptr<SystemSharedMemoryRegion>> Open(const std::string& name,
                                                                        const std::string& key,
                                                                        uint64_t offset,
                                                                        uint64_t byte_size);
  ~SystemSharedMemoryRegion() override;

  absl::StatusOr<absl::string_view> Read(int64_t offset, int64_t size,
                                         std::string& scratch) const override;
  absl::Status Write(int64_t offset, absl::string_view bytes) const override;

 private:
  SystemSharedMemoryRegion(Description description, void* mapping, size_t mapping_bytes,
                           char* base);

  // What mmap returned, and its length (the slice plus the distance from the page boundary).
  void* const mapping_;
  const size_t mapping_bytes_;
  // Byte 0 of the region, inside the mapping.
  char* const base_;
};

}  // namespace coalesce

#endif  // COALESCE_SERVER_SYSTEM_SHARED_MEMORY_REGION_H_
