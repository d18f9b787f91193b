#include "server/shared_memory_manager.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/client_text.h"
#include "server/shared_memory_checks.h"

namespace coalesce {

absl::string_view SharedMemoryKindName(SharedMemoryKind kind) {
  return kind == SharedMemoryKind::kSystem ? "system" : "CUDA";
}

absl::StatusOr<std::unique_ptr<SharedMemoryManager>> SharedMemoryManager::Create(
    const Options& options) {
  if (options.max_regions < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_regions must be >= 0 (0 turns shared memory off), got ",
                     options.max_regions));
  }
  return std::unique_ptr<SharedMemoryManager>(new SharedMemoryManager(options));
}

absl::Status SharedMemoryManager::CheckCanAddLocked(absl::string_view name) const {
  if (absl::Status s = CheckSharedMemoryRegionName(name); !s.ok()) return s;
  if (options_.max_regions == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot register shared memory region '", ClientText(name),
        "': shared memory is turned off on this server (--max_shared_memory_regions=0)"));
  }
  if (regions_.find(name) != regions_.end()) {
    return absl::AlreadyExistsError(
        absl::StrCat("shared memory region '", ClientText(name), "' already in manager"));
  }
  if (static_cast<int>(regions_.size()) >= options_.max_regions) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot register shared memory region '", ClientText(name), "': ", regions_.size(),
        " regions are registered, the most this server allows "
        "(--max_shared_memory_regions); unregister one first"));
  }
  return absl::OkStatus();
}

absl::Status SharedMemoryManager::CheckCanAdd(absl::string_view name) const {
  absl::ReaderMutexLock lock(&mu_);
  return CheckCanAddLocked(name);
}

absl::Status SharedMemoryManager::Add(std::unique_ptr<SharedMemoryRegion> region) {
  std::shared_ptr<const SharedMemoryRegion> shared(std::move(region));
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = CheckCanAddLocked(shared->name()); !s.ok()) return s;
    regions_.emplace(shared->name(), std::move(shared));
  }
  // On error, `shared` releases the memory here, outside the lock.
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const SharedMemoryRegion>> SharedMemoryManager::Find(
    absl::string_view name) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = regions_.find(name);
  if (it == regions_.end()) {
    return absl::NotFoundError(
        absl::StrCat("Unable to find shared memory region: '", ClientText(name), "'"));
  }
  return it->second;
}

absl::StatusOr<std::vector<SharedMemoryRegion::Description>> SharedMemoryManager::Status(
    SharedMemoryKind kind, absl::string_view name) const {
  std::vector<SharedMemoryRegion::Description> out;
  absl::ReaderMutexLock lock(&mu_);
  if (name.empty()) {
    for (const auto& [unused, region] : regions_) {
      if (region->description().kind == kind) out.push_back(region->description());
    }
    return out;
  }
  auto it = regions_.find(name);
  if (it == regions_.end()) {
    return absl::NotFoundError(absl::StrCat("Unable to find ",
                                            kind == SharedMemoryKind::kSystem ? "system" : "cuda",
                                            " shared memory region: '", ClientText(name), "'"));
  }
  if (it->second->description().kind != kind) {
    const bool cuda = it->second->description().kind == SharedMemoryKind::kCuda;
    return absl::NotFoundError(absl::StrCat(
        "The region named '", ClientText(name), "' is registered as ", cuda ? "CUDA" : "system",
        " shared memory, not ", cuda ? "system" : "CUDA", " shared memory"));
  }
  out.push_back(it->second->description());
  return out;
}

int SharedMemoryManager::Unregister(SharedMemoryKind kind, absl::string_view name) {
  // Released after the lock: the last reference may unmap.
  std::vector<std::shared_ptr<const SharedMemoryRegion>> removed;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = regions_.begin(); it != regions_.end();) {
      const bool match = (name.empty() || it->first == name) &&
                         it->second->description().kind == kind;
      if (match) {
        removed.push_back(std::move(it->second));
        it = regions_.erase(it);
      } else {
        ++it;
      }
    }
  }
  return static_cast<int>(removed.size());
}

int SharedMemoryManager::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return static_cast<int>(regions_.size());
}

}  // namespace coalesce
