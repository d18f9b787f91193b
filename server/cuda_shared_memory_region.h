#ifndef COALESCE_SERVER_CUDA_SHARED_MEMORY_REGION_H_
#define COALESCE_SERVER_CUDA_SHARED_MEMORY_REGION_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "execution/cuda_ipc_memory.h"
#include "server/shared_memory_region.h"

namespace coalesce {

// A region of Triton's CUDA shared-memory extension: device memory a client exported with
// cudaIpcGetMemHandle. Inputs are copied to the host when a request is accepted (the executor
// gathers from host memory) and outputs copied to the device when it completes.
//
// Thread-safe (see SharedMemoryRegion and CudaIpcMemory). Closed when destroyed.
class CudaSharedMemoryRegion final : public SharedMemoryRegion {
 public:
  // Opens `raw_handle` on `device_id` through `opener` (UNIMPLEMENTED, naming why, if the
  // server has none). INVALID_ARGUMENT for a bad name, a byte_size of 0 or above int64, or
  // whatever the opener refuses; every message names the region.
  static absl::StatusOr<std::unique_ptr<CudaSharedMemoryRegion>> Open(
      const CudaIpcOpener& opener, const std::string& name, const std::string& raw_handle,
      int64_t device_id, uint64_t byte_size);

  absl::StatusOr<absl::string_view> Read(int64_t offset, int64_t size,
                                         std::string& scratch) const override;
  absl::Status Write(int64_t offset, absl::string_view bytes) const override;

 private:
  CudaSharedMemoryRegion(Description description, std::unique_ptr<CudaIpcMemory> memory)
      : SharedMemoryRegion(std::move(description)), memory_(std::move(memory)) {}

  const std::unique_ptr<CudaIpcMemory> memory_;
};

}  // namespace coalesce

#endif  // COALESCE_SERVER_CUDA_SHARED_MEMORY_REGION_H_
