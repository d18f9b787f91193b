#include "server/shared_memory_region.h"

#include "absl/strings/str_cat.h"

namespace coalesce {

absl::Status SharedMemoryRegion::CheckInside(int64_t offset, int64_t size) const {
  if (offset < 0 || size < 0 || offset > byte_size() || size > byte_size() - offset) {
    return absl::InternalError(absl::StrCat("shared memory region '", name(), "': slice at ",
                                            offset, " of ", size, " bytes is outside its ",
                                            byte_size(), " bytes (unchecked request?)"));
  }
  return absl::OkStatus();
}

}  // namespace coalesce
