#ifndef COALESCE_SERVER_FILE_DESCRIPTOR_LIMIT_H_
#define COALESCE_SERVER_FILE_DESCRIPTOR_LIMIT_H_

#include <cstdint>

#include "absl/status/statusor.h"

namespace coalesce {

// The process's limit on open file descriptors (RLIMIT_NOFILE) before and after raising it.
struct FileDescriptorLimit {
  uint64_t before = 0;
  uint64_t after = 0;
  // The hard limit, which only a privileged process may raise.
  uint64_t hard = 0;
};

// Raises the soft RLIMIT_NOFILE to the hard limit (on macOS, to kern.maxfilesperproc at most,
// the largest soft limit it accepts). Each client connection holds a descriptor, and gRPC stops
// accepting new clients for good once it runs out (gRPC 1.51), while many shells and supervisors
// start processes with a soft limit of 256 or 1024 and a far higher hard limit. Returns the
// limits, or why the soft limit could not be raised; a soft limit already at the hard one is
// left as is. Not thread-safe with respect to other changes of the limit.
absl::StatusOr<FileDescriptorLimit> RaiseFileDescriptorLimit();

}  // namespace coalesce

#endif  // COALESCE_SERVER_FILE_DESCRIPTOR_LIMIT_H_
