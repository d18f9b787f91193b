#include "execution/address_ranges.h"

#include <iterator>

namespace coalesce {

void AddressRanges::Add(const void* start, int64_t bytes) {
  absl::MutexLock lock(&mu_);
  ranges_[reinterpret_cast<uintptr_t>(start)] = static_cast<uintptr_t>(bytes);
}

void AddressRanges::Remove(const void* start) {
  absl::MutexLock lock(&mu_);
  ranges_.erase(reinterpret_cast<uintptr_t>(start));
}

bool AddressRanges::Contains(const void* start, int64_t bytes) const {
  if (bytes < 0) return false;
  const uintptr_t at = reinterpret_cast<uintptr_t>(start);
  absl::MutexLock lock(&mu_);
  // The last range that begins at or before `start`.
  auto after = ranges_.upper_bound(at);
  if (after == ranges_.begin()) return false;
  const auto& [first, size] = *std::prev(after);
  // Written without forming first + size, which could wrap for a range at the top.
  const uintptr_t offset = at - first;
  return offset <= size && static_cast<uintptr_t>(bytes) <= size - offset;
}

}  // namespace coalesce
