#ifndef COALESCE_EXECUTION_ADDRESS_RANGES_H_
#define COALESCE_EXECUTION_ADDRESS_RANGES_H_

#include <cstdint>
#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace coalesce {

// A set of disjoint memory ranges, each added by its start and size and removed by its start.
// TorchBackend keeps the page-locked staging memory it handed out here: a CUDA graph copies
// from and to fixed host addresses, and runs only on buffers found inside one live range.
//
// Thread-safe.
class AddressRanges {
 public:
  // Adds [start, start + bytes). The range must not overlap a live one (memory handed out by
  // an allocator and not yet freed never does); adding a start again replaces its size.
  void Add(const void* start, int64_t bytes) ABSL_LOCKS_EXCLUDED(mu_);
  // Removes the range that begins at `start`; nothing if none does.
  void Remove(const void* start) ABSL_LOCKS_EXCLUDED(mu_);
  // Whether [start, start + bytes) lies inside a single live range (bytes >= 0).
  bool Contains(const void* start, int64_t bytes) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  std::map<uintptr_t, uintptr_t> ranges_ ABSL_GUARDED_BY(mu_);  // Start -> size in bytes.
};

}  // namespace coalesce

#endif  // COALESCE_EXECUTION_ADDRESS_RANGES_H_
