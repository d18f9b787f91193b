#ifndef COALESCE_EXECUTION_CUDA_IPC_MEMORY_H_
#define COALESCE_EXECUTION_CUDA_IPC_MEMORY_H_

#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace coalesce {

// Device memory that another process exported with cudaIpcGetMemHandle, opened in this one:
// what Triton's CUDA shared-memory extension registers. Plain C++, so that the server layer
// needs no CUDA headers; the implementation (execution/torch/torch_cuda_ipc.cc) is the only code that
// touches the CUDA runtime.
//
// Thread-safe: copies may run concurrently from any thread (each one sets, then restores, the
// calling thread's current device). Destroying it closes the handle; nobody may copy then.
class CudaIpcMemory {
 public:
  virtual ~CudaIpcMemory() = default;

  // Bytes that may be addressed, from the start of the exported allocation.
  virtual int64_t byte_size() const = 0;
  // Copies [offset, offset + size) of the device memory to `host`, synchronously.
  // REQUIRES: the range lies inside byte_size().
  virtual absl::Status CopyToHost(int64_t offset, int64_t size, char* host) const = 0;
  // Copies `bytes` to the device memory at `offset`, synchronously.
  // REQUIRES: the range lies inside byte_size().
  virtual absl::Status CopyFromHost(int64_t offset, absl::string_view bytes) const = 0;
};

// Opens `handle` (the bytes of a cudaIpcMemHandle_t) on device `device_id`, for `byte_size`
// bytes, which must not exceed the exported allocation. INVALID_ARGUMENT for a handle that does
// not open or an allocation smaller than byte_size; UNIMPLEMENTED where the build has no CUDA.
using CudaIpcOpener = std::function<absl::StatusOr<std::unique_ptr<CudaIpcMemory>>(
    absl::string_view handle, int64_t device_id, int64_t byte_size)>;

}  // namespace coalesce

#endif  // COALESCE_EXECUTION_CUDA_IPC_MEMORY_H_
