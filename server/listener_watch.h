#ifndef COALESCE_SERVER_LISTENER_WATCH_H_
#define COALESCE_SERVER_LISTENER_WATCH_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace coalesce {

// Watches that the gRPC listener still takes connections off its accept queue, and calls
// `on_dead` once if it stops.
//
// gRPC 1.51 (Debian 12's) stops accepting for good the first time accept() fails with EMFILE:
// its listener is not re-armed, so the process looks alive, answers on connections it already
// has, and every new client waits until its deadline. Nothing inside gRPC can be asked to retry,
// so coalesce watches from outside: every `interval` it reads the listening socket's accept
// queue length (TCP_INFO on a listening socket, Linux) of every listening socket of the port;
// connections that stay queued on any of them across `dead_after` consecutive readings are not
// being accepted. The caller then ends the process
// with a distinct status so that its supervisor (systemd Restart=on-failure, launchd KeepAlive,
// Kubernetes) starts a fresh one. A listener that accepts drains its queue in microseconds, so
// a queue that is never empty for `dead_after` x `interval` is not load.
//
// Thread-safety: Start() and the destructor from one thread; `on_dead` runs on the watch thread.
class ListenerWatch {
 public:
  struct Options {
    int port = 0;  // The gRPC listener's TCP port.
    absl::Duration interval = absl::Seconds(1);
    int dead_after = 10;  // Consecutive readings with connections waiting.
    std::function<void(const std::string& why)> on_dead;
  };

  // Finds this process's listening socket on `options.port` and starts watching it.
  // UNIMPLEMENTED where the accept queue cannot be read (not Linux); NOT_FOUND if no listening
  // socket of this process has the port.
  static absl::StatusOr<std::unique_ptr<ListenerWatch>> Start(Options options);
  ~ListenerWatch();

  // Connections waiting in the accept queue of the listening socket `fd`.
  static absl::StatusOr<int> AcceptQueueLength(int fd);
  // This process's listening TCP sockets bound to `port` (gRPC opens one per resolved address,
  // and on Linux one per completion queue, sharing the port with SO_REUSEPORT; running out of
  // descriptors stops only the one whose accept failed), or NOT_FOUND.
  static absl::StatusOr<std::vector<int>> FindListeningSockets(int port);

 private:
  ListenerWatch(Options options, std::vector<int> fds);
  void Watch();

  const Options options_;
  const std::vector<int> fds_;  // gRPC's; never closed here.
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace coalesce

#endif  // COALESCE_SERVER_LISTENER_WATCH_H_
