#include "server/system_shared_memory_region.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "engine/client_text.h"
#include "server/shared_memory_checks.h"

namespace coalesce {
namespace {

absl::Status OpenError(const std::string& name, const std::string& key, int error) {
  std::string message =
      absl::StrCat("Unable to open shared memory region: '", ClientText(key),
                   "' (registering region '", ClientText(name), "'): ", std::strerror(error));
  switch (error) {
    case ENOENT:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    case ENAMETOOLONG:
    case EINVAL:
      return absl::InvalidArgumentError(message);
    default:
      return absl::InternalError(message);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<SystemSharedMemoryRegion>> SystemSharedMemoryRegion::Open(
    const std::string& name, const std::string& key, uint64_t offset, uint64_t byte_size) {
  if (absl::Status s = CheckSharedMemoryRegionName(name); !s.ok()) return s;
  if (absl::Status s = CheckSharedMemoryKey(name, key); !s.ok()) return s;
  // Read-write, as Triton opens it: outputs are written into the region. glibc's shm_open adds
  // O_NOFOLLOW, so a symbolic link planted in /dev/shm is not followed.
  const int fd = shm_open(key.c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) return OpenError(name, key, errno);
  // The mapping keeps the object alive; the descriptor is not needed past mmap.
  absl::Cleanup close_fd = [fd] { close(fd); };
  struct stat status {};
  if (fstat(fd, &status) != 0) {
    return absl::InternalError(absl::StrCat("Invalid shared memory region: '", ClientText(key),
                                            "' (fstat: ", std::strerror(errno), ")"));
  }
  if (!S_ISREG(status.st_mode) || status.st_size < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Invalid shared memory region: '", ClientText(key), "' is not a shared-memory object"));
  }
  if (absl::Status s = CheckRegistrationFits(name, key, offset, byte_size,
                                             static_cast<uint64_t>(status.st_size));
      !s.ok()) {
    return s;
  }
  // Both fit in the object's off_t size, hence in size_t and int64_t.
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t map_offset = offset - offset % page;
  const size_t lead = static_cast<size_t>(offset - map_offset);
  const size_t mapping_bytes = static_cast<size_t>(byte_size) + lead;
  void* mapping = mmap(nullptr, mapping_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                       static_cast<off_t>(map_offset));
  if (mapping == MAP_FAILED) {
    return absl::InternalError(absl::StrCat("failed to register shared memory region '",
                                            ClientText(name), "': mmap of '", ClientText(key),
                                            "' failed: ", std::strerror(errno)));
  }
  Description description;
  description.name = name;
  description.kind = SharedMemoryKind::kSystem;
  description.key = key;
  description.offset = offset;
  description.byte_size = static_cast<int64_t>(byte_size);
  return std::unique_ptr<SystemSharedMemoryRegion>(new SystemSharedMemoryRegion(
      std::move(description), mapping, mapping_bytes, static_cast<char*>(mapping) + lead));
}

SystemSharedMemoryRegion::SystemSharedMemoryRegion(Description description, void* mapping,
                                                   size_t mapping_bytes, char* base)
    : SharedMemoryRegion(std::move(description)),
      mapping_(mapping),
      mapping_bytes_(mapping_bytes),
      base_(base) {}

SystemSharedMemoryRegion::~SystemSharedMemoryRegion() { munmap(mapping_, mapping_bytes_); }

absl::StatusOr<absl::string_view> SystemSharedMemoryRegion::Read(int64_t offset, int64_t size,
                                                                 std::string&) const {
  if (absl::Status s = CheckInside(offset, size); !s.ok()) return s;
  return absl::string_view(base_ + offset, static_cast<size_t>(size));
}

absl::Status SystemSharedMemoryRegion::Write(int64_t offset, absl::string_view bytes) const {
  if (absl::Status s = CheckInside(offset, static_cast<int64_t>(bytes.size())); !s.ok()) return s;
  if (!bytes.empty()) std::memcpy(base_ + offset, bytes.data(), bytes.size());
  return absl::OkStatus();
}

}  // namespace coalesce
