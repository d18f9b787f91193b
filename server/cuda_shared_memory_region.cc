#include "server/cuda_shared_memory_region.h"

#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/client_text.h"
#include "server/shared_memory_checks.h"

namespace coalesce {

absl::StatusOr<std::unique_ptr<CudaSharedMemoryRegion>> CudaSharedMemoryRegion::Open(
    const CudaIpcOpener& opener, const std::string& name, const std::string& raw_handle,
    int64_t device_id, uint64_t byte_size) {
  if (!opener) {
    return absl::UnimplementedError(absl::StrCat(
        "cannot register CUDA shared memory region '", ClientText(name),
        "': this build of coalesce has no CUDA: it cannot open CUDA IPC memory handles; use "
        "system shared memory (SystemSharedMemoryRegister) or raw_input_contents instead"));
  }
  if (absl::Status s = CheckSharedMemoryRegionName(name); !s.ok()) return s;
  if (byte_size == 0 || byte_size > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return absl::InvalidArgumentError(absl::StrCat("failed to register shared memory region '",
                                                   ClientText(name), "': invalid args: byte_size ",
                                                   byte_size));
  }
  absl::StatusOr<std::unique_ptr<CudaIpcMemory>> memory =
      opener(raw_handle, device_id, static_cast<int64_t>(byte_size));
  if (!memory.ok()) {
    return absl::Status(memory.status().code(),
                        absl::StrCat("failed to register shared memory region '", ClientText(name),
                                     "': ", memory.status().message()));
  }
  Description description;
  description.name = name;
  description.kind = SharedMemoryKind::kCuda;
  description.device_id = device_id;
  description.byte_size = static_cast<int64_t>(byte_size);
  return std::unique_ptr<CudaSharedMemoryRegion>(
      new CudaSharedMemoryRegion(std::move(description), *std::move(memory)));
}

absl::StatusOr<absl::string_view> CudaSharedMemoryRegion::Read(int64_t offset, int64_t size,
                                                               std::string& scratch) const {
  if (absl::Status s = CheckInside(offset, size); !s.ok()) return s;
  scratch.resize(static_cast<size_t>(size));
  if (absl::Status s = memory_->CopyToHost(offset, size, scratch.data()); !s.ok()) return s;
  return absl::string_view(scratch);
}

absl::Status CudaSharedMemoryRegion::Write(int64_t offset, absl::string_view bytes) const {
  if (absl::Status s = CheckInside(offset, static_cast<int64_t>(bytes.size())); !s.ok()) return s;
  return memory_->CopyFromHost(offset, bytes);
}

}  // namespace coalesce
