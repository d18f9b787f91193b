#include "server/listener_watch.h"

#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#if defined(__linux__)
#include <netinet/tcp.h>
#endif

#include <cstdlib>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace coalesce {

absl::StatusOr<int> ListenerWatch::AcceptQueueLength(int fd) {
#if defined(__linux__)
  tcp_info info{};
  socklen_t size = sizeof(info);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &size) != 0) {
    return absl::InternalError(absl::StrCat("TCP_INFO of socket ", fd, " failed"));
  }
  // For a listening socket the kernel reports the accept queue's length in tcpi_unacked.
  return static_cast<int>(info.tcpi_unacked);
#else
  (void)fd;
  return absl::UnimplementedError("the accept queue can be read on Linux only");
#endif
}

absl::StatusOr<std::vector<int>> ListenerWatch::FindListeningSockets(int port) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return absl::UnimplementedError("no /proc/self/fd");
  std::vector<int> found;
  while (dirent* entry = readdir(dir)) {
    int fd = 0;
    if (!absl::SimpleAtoi(entry->d_name, &fd) || fd == dirfd(dir)) continue;
    int listening = 0;
    socklen_t size = sizeof(listening);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0 || !listening) continue;
    sockaddr_storage address{};
    socklen_t length = sizeof(address);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) continue;
    int bound = 0;
    if (address.ss_family == AF_INET) {
      bound = ntohs(reinterpret_cast<sockaddr_in*>(&address)->sin_port);
    } else if (address.ss_family == AF_INET6) {
      bound = ntohs(reinterpret_cast<sockaddr_in6*>(&address)->sin6_port);
    }
    if (bound == port) found.push_back(fd);
  }
  closedir(dir);
  if (found.empty()) {
    return absl::NotFoundError(absl::StrCat("no listening socket on port ", port));
  }
  return found;
}

absl::StatusOr<std::unique_ptr<ListenerWatch>> ListenerWatch::Start(Options options) {
  absl::StatusOr<std::vector<int>> fds = FindListeningSockets(options.port);
  if (!fds.ok()) return fds.status();
  for (int fd : *fds) {
    if (absl::StatusOr<int> length = AcceptQueueLength(fd); !length.ok()) return length.status();
  }
  return std::unique_ptr<ListenerWatch>(new ListenerWatch(std::move(options), *std::move(fds)));
}

ListenerWatch::ListenerWatch(Options options, std::vector<int> fds)
    : options_(std::move(options)), fds_(std::move(fds)), thread_([this] { Watch(); }) {}

ListenerWatch::~ListenerWatch() {
  stop_.Notify();
  thread_.join();
}

void ListenerWatch::Watch() {
  // Per listening socket: consecutive readings with connections waiting.
  std::vector<int> waiting_readings(fds_.size(), 0);
  while (!stop_.WaitForNotificationWithTimeout(options_.interval)) {
    for (size_t i = 0; i < fds_.size(); ++i) {
      absl::StatusOr<int> length = AcceptQueueLength(fds_[i]);
      if (!length.ok()) return;  // The socket went away: the server is stopping.
      waiting_readings[i] = *length > 0 ? waiting_readings[i] + 1 : 0;
      if (waiting_readings[i] == options_.dead_after) {
        options_.on_dead(absl::StrCat(
            *length, " connection(s) waiting on the gRPC port ", options_.port,
            " have not been accepted for ",
            absl::FormatDuration(options_.interval * waiting_readings[i]),
            ": the listener has stopped accepting (gRPC 1.51 stops for good after running out "
            "of file descriptors once)"));
        return;
      }
    }
  }
}

}  // namespace coalesce
