#ifndef COALESCE_SERVER_MALLOC_TRIMMER_H_
#define COALESCE_SERVER_MALLOC_TRIMMER_H_

#include <cstdint>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace coalesce {

// Hands the free pages of glibc's malloc heaps back to the system every `interval`
// (malloc_trim), so that resident memory follows the memory in use.
//
// glibc keeps what the process frees inside its arenas for reuse and returns memory to the
// system only from the top of a heap. The server's traffic mixes allocations of many sizes that
// live for a call, a connection or a scrape; free chunks come to lie below live ones, and the
// heaps grow a little whenever no free chunk fits: the bytes in use stay flat while resident
// memory, the touched pages of free chunks included, creeps up for hours (docs/operations.md,
// "Memory"). malloc_trim() gives back every whole free page of every arena (madvise), wherever
// it lies; a page reused later costs one page fault.
//
// A trim holds each arena's lock while it walks that arena's free chunks, so a thread that
// allocates meanwhile waits; once every few seconds that is a small price for a bound on
// resident memory.
//
// Thread-safety: Start() and the destructor from one thread; the accessors from any thread.
class MallocTrimmer {
 public:
  struct Options {
    // Time between trims, the first one `interval` after Start(). Must be positive.
    absl::Duration interval = absl::Seconds(10);
  };

  // Starts trimming. InvalidArgument for an interval that is not positive; Unimplemented where
  // the allocator is not glibc's (macOS), which has no trim to call.
  static absl::StatusOr<std::unique_ptr<MallocTrimmer>> Start(const Options& options);
  // Stops; a trim in progress finishes first.
  ~MallocTrimmer();

  MallocTrimmer(const MallocTrimmer&) = delete;
  MallocTrimmer& operator=(const MallocTrimmer&) = delete;

  // Trims done so far.
  int64_t trims() const;
  // The longest a trim took: how long an allocating thread could have waited on it.
  absl::Duration longest() const;

 private:
  explicit MallocTrimmer(const Options& options);
  void Run();

  // Constant after construction.
  const absl::Duration interval_;

  absl::Notification stop_;
  mutable absl::Mutex mu_;
  int64_t trims_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration longest_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;  // Last: started once the members above exist.
};

}  // namespace coalesce

#endif  // COALESCE_SERVER_MALLOC_TRIMMER_H_
