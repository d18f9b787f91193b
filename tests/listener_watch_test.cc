// ListenerWatch against a real listening socket that nobody accepts on: the accept queue's
// length is read, and connections left waiting for `dead_after` readings call on_dead once;
// a listener that accepts never does.
#include "server/listener_watch.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace coalesce {
namespace {

struct Listener {
  int fd = -1;
  int port = 0;
  // `share_port`: bind with SO_REUSEPORT to this port (0: a free one), as gRPC's listeners do.
  explicit Listener(int share_port = 0) {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    const int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(share_port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    listen(fd, 64);
    socklen_t length = sizeof(address);
    getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    port = ntohs(address.sin_port);
  }
  ~Listener() { close(fd); }
};

int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  return fd;
}

TEST(ListenerWatchTest, FindsTheListeningSocketAndReadsItsAcceptQueue) {
  Listener listener;
  absl::StatusOr<std::vector<int>> found = ListenerWatch::FindListeningSockets(listener.port);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(*found, std::vector<int>{listener.fd});
  EXPECT_EQ(*ListenerWatch::AcceptQueueLength(listener.fd), 0);
  std::vector<int> clients = {Connect(listener.port), Connect(listener.port),
                              Connect(listener.port)};
  EXPECT_EQ(*ListenerWatch::AcceptQueueLength(listener.fd), 3);
  close(accept(listener.fd, nullptr, nullptr));
  EXPECT_EQ(*ListenerWatch::AcceptQueueLength(listener.fd), 2);
  for (int fd : clients) close(fd);
  EXPECT_FALSE(ListenerWatch::FindListeningSockets(1).ok());
}

TEST(ListenerWatchTest, ConnectionsLeftWaitingCallOnDeadOnce) {
  Listener listener;
  std::atomic<int> calls{0};
  absl::Notification dead;
  std::string why;
  ListenerWatch::Options options;
  options.port = listener.port;
  options.interval = absl::Milliseconds(10);
  options.dead_after = 5;
  options.on_dead = [&](const std::string& reason) {
    why = reason;
    if (calls.fetch_add(1) == 0) dead.Notify();
  };
  auto watch = ListenerWatch::Start(options);
  ASSERT_TRUE(watch.ok()) << watch.status();
  const int client = Connect(listener.port);
  ASSERT_TRUE(dead.WaitForNotificationWithTimeout(absl::Seconds(10)));
  absl::SleepFor(absl::Milliseconds(100));  // Further readings must not call it again.
  watch->reset();
  EXPECT_EQ(calls.load(), 1);
  EXPECT_NE(why.find("1 connection(s) waiting"), std::string::npos) << why;
  close(client);
}

TEST(ListenerWatchTest, OneOfSeveralListenersOnThePortThatStopsAcceptingIsDead) {
  Listener accepting;
  Listener stopped(accepting.port);
  ASSERT_EQ(stopped.port, accepting.port);
  fcntl(accepting.fd, F_SETFL, O_NONBLOCK);  // Its accept() below returns when none waits.
  absl::StatusOr<std::vector<int>> found = ListenerWatch::FindListeningSockets(accepting.port);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->size(), 2u);
  absl::Notification dead;
  ListenerWatch::Options options;
  options.port = accepting.port;
  options.interval = absl::Milliseconds(10);
  options.dead_after = 5;
  options.on_dead = [&](const std::string&) { dead.Notify(); };
  auto watch = ListenerWatch::Start(options);
  ASSERT_TRUE(watch.ok()) << watch.status();
  // Only `stopped` is left with a connection waiting: the kernel spreads connections over the
  // two, and those that reach `accepting` are taken at once.
  std::vector<int> clients;
  for (int i = 0; i < 200 && !dead.HasBeenNotified(); ++i) {
    clients.push_back(Connect(accepting.port));
    // Takes whatever reached the accepting listener.
    for (int fd; (fd = accept(accepting.fd, nullptr, nullptr)) >= 0;) close(fd);
    absl::SleepFor(absl::Milliseconds(2));
  }
  EXPECT_TRUE(dead.WaitForNotificationWithTimeout(absl::Seconds(10)));
  watch->reset();
  for (int fd : clients) close(fd);
}

TEST(ListenerWatchTest, AListenerThatAcceptsIsNeverDead) {
  Listener listener;
  std::atomic<int> calls{0};
  ListenerWatch::Options options;
  options.port = listener.port;
  options.interval = absl::Milliseconds(10);
  options.dead_after = 3;
  options.on_dead = [&](const std::string&) { calls.fetch_add(1); };
  auto watch = ListenerWatch::Start(options);
  ASSERT_TRUE(watch.ok()) << watch.status();
  // A connection every 5 ms, each accepted at once: the queue is empty at nearly every reading,
  // and never at `dead_after` readings in a row.
  for (int i = 0; i < 40; ++i) {
    const int client = Connect(listener.port);
    close(accept(listener.fd, nullptr, nullptr));
    close(client);
    absl::SleepFor(absl::Milliseconds(5));
  }
  watch->reset();
  EXPECT_EQ(calls.load(), 0);
}

}  // namespace
}  // namespace coalesce
