#ifndef COALESCE_SERVER_SHARED_MEMORY_MANAGER_H_
#define COALESCE_SERVER_SHARED_MEMORY_MANAGER_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "execution/cuda_ipc_memory.h"
#include "server/shared_memory_region.h"

namespace coalesce {

// The registered shared-memory regions of Triton's system and CUDA shared-memory extensions,
// by name.
//
// Unregistering removes a name at once, but the memory stays mapped for as long as a request
// that resolved the region (Find()) holds it: regions are handed out as std::shared_ptr and
// released by the last holder. So a region unregistered under queued or running requests
// neither crashes them nor changes their answers, and a later request naming it gets NOT_FOUND.
//
// Thread-safe. Opening and closing memory (shm_open, mmap, munmap) never happens under the
// lock: regions are opened by the caller before Add() and released wherever the last reference
// drops.
class SharedMemoryManager {
 public:
  struct Options {
    // Most regions registered at once, of both kinds together. Each region holds a mapping (and
    // for system memory, address space of its size) until unregistered, so a client must not be
    // able to pile them up without bound. 0 turns the extension off: every registration is
    // refused with UNAVAILABLE.
    int max_regions = 64;
    // Opens CUDA IPC handles for CudaSharedMemoryRegister (OpenCudaIpcMemory where the build
    // has CUDA). Empty: CUDA registration answers UNIMPLEMENTED.
    CudaIpcOpener cuda_opener;
  };

  // INVALID_ARGUMENT for a negative max_regions.
  static absl::StatusOr<std::unique_ptr<SharedMemoryManager>> Create(const Options& options);

  // OK if a region named `name` could be added now: the name is valid and free and there is
  // room. Lets a caller refuse a registration before it opens any memory; Add() checks again.
  // ALREADY_EXISTS ("shared memory region 'x' already in manager", Triton's text),
  // RESOURCE_EXHAUSTED when max_regions are registered, INVALID_ARGUMENT for a bad name.
  absl::Status CheckCanAdd(absl::string_view name) const ABSL_LOCKS_EXCLUDED(mu_);
  // Registers `region` under its name; on error the region is released.
  absl::Status Add(std::unique_ptr<SharedMemoryRegion> region) ABSL_LOCKS_EXCLUDED(mu_);

  // The region named `name`, of either kind, for a request to hold while it runs. NOT_FOUND
  // ("Unable to find shared memory region: 'x'", Triton's text) if none.
  absl::StatusOr<std::shared_ptr<const SharedMemoryRegion>> Find(absl::string_view name) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // Descriptions of the regions of `kind`, in name order; just the one named `name` unless it
  // is empty. NOT_FOUND (Triton's texts) for an unknown name or one registered as the other
  // kind.
  absl::StatusOr<std::vector<SharedMemoryRegion::Description>> Status(
      SharedMemoryKind kind, absl::string_view name) const ABSL_LOCKS_EXCLUDED(mu_);

  // Unregisters the region `name` of `kind`, or every region of `kind` when `name` is empty. A
  // name that is not registered (as `kind`) is not an error, as in Triton. Returns how many
  // were unregistered.
  int Unregister(SharedMemoryKind kind, absl::string_view name) ABSL_LOCKS_EXCLUDED(mu_);

  int size() const ABSL_LOCKS_EXCLUDED(mu_);
  const CudaIpcOpener& cuda_opener() const { return options_.cuda_opener; }

 private:
  explicit SharedMemoryManager(const Options& options) : options_(options) {}
  absl::Status CheckCanAddLocked(absl::string_view name) const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const Options options_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<const SharedMemoryRegion>, std::less<>> regions_
      ABSL_GUARDED_BY(mu_);
};

// "system" or "CUDA", for messages.
absl::string_view SharedMemoryKindName(SharedMemoryKind kind);

}  // namespace coalesce

#endif  // COALESCE_SERVER_SHARED_MEMORY_MANAGER_H_
