#include "server/file_descriptor_limit.h"

#include <sys/resource.h>
#ifdef __APPLE__
#include <sys/sysctl.h>
#endif

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace coalesce {

absl::StatusOr<FileDescriptorLimit> RaiseFileDescriptorLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return absl::InternalError(absl::StrCat("getrlimit(RLIMIT_NOFILE): ", std::strerror(errno)));
  }
  FileDescriptorLimit result;
  result.before = result.after = limit.rlim_cur;
  result.hard = limit.rlim_max;
  rlimit raised = limit;
  raised.rlim_cur = limit.rlim_max;
#ifdef __APPLE__
  // macOS refuses a soft limit above kern.maxfilesperproc, RLIM_INFINITY included, which is
  // launchd's default hard limit.
  int per_process = 0;
  size_t size = sizeof(per_process);
  rlim_t most = OPEN_MAX;
  if (sysctlbyname("kern.maxfilesperproc", &per_process, &size, nullptr, 0) == 0 &&
      per_process > 0) {
    most = static_cast<rlim_t>(per_process);
  }
  raised.rlim_cur = std::min(limit.rlim_max, most);
#endif
  if (raised.rlim_cur <= limit.rlim_cur) return result;
  if (setrlimit(RLIMIT_NOFILE, &raised) != 0) {
    return absl::InternalError(absl::StrCat("setrlimit(RLIMIT_NOFILE) from ", limit.rlim_cur,
                                            " to ", raised.rlim_cur, ": ", std::strerror(errno)));
  }
  result.after = raised.rlim_cur;
  return result;
}

}  // namespace coalesce
