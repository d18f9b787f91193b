#ifndef COALESCE_EXECUTION_TORCH_TORCH_CUDA_IPC_H_
#define COALESCE_EXECUTION_TORCH_TORCH_CUDA_IPC_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "execution/cuda_ipc_memory.h"

namespace coalesce {

// A CudaIpcOpener (execution/cuda_ipc_memory.h) over the CUDA runtime that LibTorch links: opens the
// handle with cudaIpcOpenMemHandle, checks byte_size against the allocation's size as the driver
// reports it (cuMemGetAddressRange, reached through the runtime so that nothing links libcuda),
// and copies with cudaMemcpy. On builds whose LibTorch has no CUDA it answers UNIMPLEMENTED
// ("this build of coalesce has no CUDA: ...").
absl::StatusOr<std::unique_ptr<CudaIpcMemory>> OpenCudaIpcMemory(absl::string_view handle,
                                                                 int64_t device_id,
                                                                 int64_t byte_size);

// Whether OpenCudaIpcMemory can open anything in this build.
bool CudaIpcAvailable();

}  // namespace coalesce

#endif  // COALESCE_EXECUTION_TORCH_TORCH_CUDA_IPC_H_
