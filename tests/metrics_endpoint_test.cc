#include "server/metrics_endpoint.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/counter.h>

#include "absl/cleanup/cleanup.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"
#include "tests/http_get.h"

namespace coalesce {
namespace {

// A hang bound for each client step, far above what any step takes.
constexpr int kClientTimeoutS = 10;

std::shared_ptr<prometheus::Registry> RegistryWithOneCounter() {
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildCounter().Name("test_total").Help("h").Register(*registry).Add({}).Increment(7);
  return registry;
}

// Gives the socket `fd` send and receive timeouts of kClientTimeoutS and connects it to
// 127.0.0.1:`port`; false on failure (EINPROGRESS included: check errno).
bool ConnectSocket(int fd, int port) {
  timeval timeout{kClientTimeoutS, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

// A socket connected to 127.0.0.1:`port`, blocking, with send and receive timeouts of
// kClientTimeoutS; -1 on failure. Non-blocking and maybe still connecting if `wait` is false.
int Connect(int port, bool wait = true) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (wait ? 0 : SOCK_NONBLOCK), 0);
  if (fd < 0) return -1;
  if (!ConnectSocket(fd, port) && (wait || errno != EINPROGRESS)) {
    close(fd);
    return -1;
  }
  return fd;
}

bool SendText(int fd, const std::string& text) {
  return send(fd, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size());
}

// Everything the server sends until it closes (or kClientTimeoutS passes without a byte).
std::string ReadToEnd(int fd) {
  std::string response;
  char buffer[65536];
  ssize_t n;
  while ((n = recv(fd, buffer, sizeof(buffer), 0)) > 0) response.append(buffer, n);
  return response;
}

// GET /metrics on a connection of its own; the whole response, or "" if none came within the
// client timeouts (where HttpGet() would wait for ever).
std::string Scrape(int port) {
  int fd = Connect(port);
  if (fd < 0) return "";
  std::string response;
  if (SendText(fd, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")) response = ReadToEnd(fd);
  close(fd);
  return response;
}

// Whether the server closed `fd` (end of stream or reset) within `timeout_ms`, reading and
// dropping anything it sent first.
bool ClosedByServer(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) <= 0) return false;
  char buffer[4096];
  ssize_t n;
  while ((n = recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT)) > 0) {
  }
  return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
}

// Raises or lowers the soft limit on open files for a test, restoring it afterwards.
class SoftFileLimit {
 public:
  explicit SoftFileLimit(rlim_t soft) {
    getrlimit(RLIMIT_NOFILE, &saved_);
    rlimit changed = saved_;
    changed.rlim_cur = std::min(soft, saved_.rlim_max);
    setrlimit(RLIMIT_NOFILE, &changed);
  }
  ~SoftFileLimit() { setrlimit(RLIMIT_NOFILE, &saved_); }
  static rlim_t Current() {
    rlimit limit{};
    getrlimit(RLIMIT_NOFILE, &limit);
    return limit.rlim_cur;
  }

 private:
  rlimit saved_{};
};

// CPU time (user + system) this process has used so far.
double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

TEST(MetricsEndpointTest, ServesTheRegistryOnAPickedPort) {
  auto registry = std::make_shared<prometheus::Registry>();
  auto& family = prometheus::BuildCounter().Name("test_total").Help("h").Register(*registry);
  family.Add({{"k", "v"}}).Increment(3);
  auto endpoint = MetricsEndpoint::Start("127.0.0.1:0", registry);
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  ASSERT_GT((*endpoint)->port(), 0);
  std::string page = HttpGet((*endpoint)->port(), "/metrics");
  EXPECT_EQ(MetricValue(page, "test_total{k=\"v\"}"), 3);
  family.Add({{"k", "v"}}).Increment();
  EXPECT_EQ(MetricValue(HttpGet((*endpoint)->port(), "/metrics"), "test_total{k=\"v\"}"), 4);
}

TEST(MetricsEndpointTest, OtherPathsAreNotFound) {
  auto endpoint = MetricsEndpoint::Start("127.0.0.1:0", std::make_shared<prometheus::Registry>());
  ASSERT_TRUE(endpoint.ok());
  EXPECT_EQ(HttpGet((*endpoint)->port(), "/secret"), "metrics are at /metrics\n");
}

TEST(MetricsEndpointTest, BusyPortAndBadAddressAreClearErrors) {
  auto registry = std::make_shared<prometheus::Registry>();
  auto first = MetricsEndpoint::Start("127.0.0.1:0", registry);
  ASSERT_TRUE(first.ok());
  auto second =
      MetricsEndpoint::Start(absl::StrCat("127.0.0.1:", (*first)->port()), registry);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find("in use"), std::string::npos) << second.status();
  EXPECT_EQ(MetricsEndpoint::Start("no-port", registry).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(MetricsEndpointTest, InvalidOptionsAreRefused) {
  MetricsEndpoint::Options options;
  options.address = "127.0.0.1:0";
  options.max_connections = 0;
  auto endpoint = MetricsEndpoint::Start(options, std::make_shared<prometheus::Registry>());
  EXPECT_EQ(endpoint.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(endpoint.status().message().find("got 0"), std::string::npos) << endpoint.status();
  options.max_connections = 1;
  options.read_timeout = absl::ZeroDuration();
  EXPECT_EQ(MetricsEndpoint::Start(options, std::make_shared<prometheus::Registry>())
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(MetricsEndpointTest, ScrapesSucceedWhileSlowIdleAndSilentClientsHoldConnections) {
  // Room for the silent connections (client and server ends live in this process).
  SoftFileLimit limit(RLIM_INFINITY);
  const int silent = static_cast<int>(std::min<rlim_t>(2000, SoftFileLimit::Current() / 2 - 200));
  ASSERT_GE(silent, 100) << "too few file descriptors for the test";
  auto endpoint = MetricsEndpoint::Start("127.0.0.1:0", RegistryWithOneCounter());
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  const int port = (*endpoint)->port();

  // A client that sends its request a byte a second.
  const int slow_fd = Connect(port);
  ASSERT_GE(slow_fd, 0);
  absl::Notification stop;
  std::thread slow([slow_fd, &stop] {
    const std::string request = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    for (size_t i = 0; SendText(slow_fd, request.substr(i % request.size(), 1)) &&
                       !stop.WaitForNotificationWithTimeout(absl::Seconds(1));
         ++i) {
    }
  });
  std::vector<int> held;
  absl::Cleanup release = [&] {
    stop.Notify();
    slow.join();
    close(slow_fd);
    for (int fd : held) close(fd);
  };
  // Idle: a request begun and never finished.
  for (int i = 0; i < 10; ++i) {
    held.push_back(Connect(port));
    ASSERT_GE(held.back(), 0);
    ASSERT_TRUE(SendText(held.back(), "GET /metr"));
  }
  auto expect_scrapes = [port](const std::string& while_held) {
    for (int scrape = 0; scrape < 3; ++scrape) {
      std::string response = Scrape(port);
      EXPECT_EQ(response.substr(0, 15), "HTTP/1.1 200 OK") << while_held << ", scrape " << scrape;
      EXPECT_NE(response.find("\ntest_total 7"), std::string::npos) << while_held;
    }
  };
  // Silent clients (connected, nothing sent), below the connection cap: served side by side.
  for (int i = 0; i < 40; ++i) {
    held.push_back(Connect(port, /*wait=*/false));
    ASSERT_GE(held.back(), 0) << "connection " << i << ": " << std::strerror(errno);
  }
  expect_scrapes("slow, 10 idle and 40 silent clients");
  // Far beyond it: the oldest make room.
  for (int i = 40; i < silent; ++i) {
    held.push_back(Connect(port, /*wait=*/false));
    ASSERT_GE(held.back(), 0) << "connection " << i << ": " << std::strerror(errno);
  }
  expect_scrapes(absl::StrCat("slow, 10 idle and ", silent, " silent clients"));
}

TEST(MetricsEndpointTest, ClosesAClientThatSendsItsRequestTooSlowly) {
  // The default read timeout is 2 s for the whole request.
  auto endpoint = MetricsEndpoint::Start("127.0.0.1:0", RegistryWithOneCounter());
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  int fd = Connect((*endpoint)->port());
  ASSERT_GE(fd, 0);
  // A byte every 200 ms: never 2 s between two bytes, so only a deadline for the whole request
  // closes it. Gives up after 30 s (the request would take 27 minutes to reach 8 KiB).
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  bool closed = false;
  ASSERT_TRUE(SendText(fd, "GET /metrics HTTP/1.1\r\nX-Slow: "));
  while (!closed && absl::Now() < give_up) {
    closed = ClosedByServer(fd, 200) || !SendText(fd, "x");
  }
  EXPECT_TRUE(closed) << "the server still reads a client that sends a byte every 200 ms";
  close(fd);
  // And the endpoint still serves.
  EXPECT_EQ(Scrape((*endpoint)->port()).substr(0, 15), "HTTP/1.1 200 OK");
}

TEST(MetricsEndpointTest, CutsOffAClientThatReadsTheResponseTooSlowly) {
  // A page of several megabytes, more than the socket buffers hold.
  auto registry = std::make_shared<prometheus::Registry>();
  auto& family = prometheus::BuildCounter().Name("big_total").Help("h").Register(*registry);
  for (int i = 0; i < 20000; ++i) {
    family.Add({{"label", absl::StrCat(i, std::string(300, 'x'))}}).Increment();
  }
  MetricsEndpoint::Options options;
  options.address = "127.0.0.1:0";
  options.write_timeout = absl::Seconds(1);
  auto endpoint = MetricsEndpoint::Start(options, registry);
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int small = 16384;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  ASSERT_TRUE(ConnectSocket(fd, (*endpoint)->port())) << std::strerror(errno);
  ASSERT_TRUE(SendText(fd, "GET /metrics HTTP/1.1\r\n\r\n"));
  // 4 KiB every 50 ms: always progressing, but the page would take over a minute.
  size_t received = 0;
  char buffer[4096];
  ssize_t n;
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (absl::Now() < give_up && (n = recv(fd, buffer, sizeof(buffer), 0)) > 0) {
    received += static_cast<size_t>(n);
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_LT(absl::Now(), give_up) << "the server still writes to a client that reads 80 KB/s";
  EXPECT_GT(received, 0u);
  EXPECT_LT(received, 6'000'000u);
  close(fd);
  EXPECT_EQ(Scrape((*endpoint)->port()).substr(0, 15), "HTTP/1.1 200 OK");
}

TEST(MetricsEndpointTest, BeyondTheConnectionCapTheOldestConnectionIsClosed) {
  MetricsEndpoint::Options options;
  options.address = "127.0.0.1:0";
  options.max_connections = 4;
  options.read_timeout = absl::Seconds(60);  // No connection here ends by its deadline.
  auto endpoint = MetricsEndpoint::Start(options, RegistryWithOneCounter());
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  std::vector<int> held;
  for (int i = 0; i < 10; ++i) {
    held.push_back(Connect((*endpoint)->port()));
    ASSERT_GE(held.back(), 0);
  }
  // The listen queue hands connections over in the order they came: the scrape, the 11th,
  // leaves room for 3 of the 10 held before it, the newest.
  std::string response = Scrape((*endpoint)->port());
  EXPECT_EQ(response.substr(0, 15), "HTTP/1.1 200 OK");
  for (int i = 0; i < 7; ++i) {
    EXPECT_TRUE(ClosedByServer(held[i], kClientTimeoutS * 1000)) << "connection " << i;
  }
  for (int i = 7; i < 10; ++i) EXPECT_FALSE(ClosedByServer(held[i], 0)) << "connection " << i;
  for (int fd : held) close(fd);
}

TEST(MetricsEndpointTest, OutOfFileDescriptorsRefusesWithoutSpinningAndRecovers) {
  std::ostringstream log;
  auto saved_logger = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>(
      "test", std::make_shared<spdlog::sinks::ostream_sink_mt>(log)));
  auto endpoint = MetricsEndpoint::Start("127.0.0.1:0", RegistryWithOneCounter());
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  // Client sockets made now; connecting them takes no descriptor.
  int first = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int second = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(first, 0);
  ASSERT_GE(second, 0);
  std::vector<int> fillers;
  {
    // Every descriptor below a low limit taken.
    SoftFileLimit limit(first + 64);
    int fd;
    while ((fd = fcntl(first, F_DUPFD_CLOEXEC, 0)) >= 0) fillers.push_back(fd);
    ASSERT_EQ(errno, EMFILE);
    const double cpu_before = ProcessCpuSeconds();
    const absl::Time start = absl::Now();
    for (int client : {first, second}) {
      ASSERT_TRUE(ConnectSocket(client, (*endpoint)->port())) << std::strerror(errno);
      EXPECT_EQ(ReadToEnd(client).substr(0, 33), "HTTP/1.1 503 Service Unavailable\r");
    }
    // A window long enough for a spinning accept loop to show.
    absl::SleepFor(absl::Seconds(1) - (absl::Now() - start));
    const double cpu = ProcessCpuSeconds() - cpu_before;
    const double wall = absl::ToDoubleSeconds(absl::Now() - start);
    // An accept loop that spins uses most of a core, or its share of one on a busy machine.
    EXPECT_LT(cpu, 0.25) << cpu << " s of CPU in " << wall << " s while out of descriptors";
    for (int filler : fillers) close(filler);
  }
  close(first);
  close(second);
  std::string response = Scrape((*endpoint)->port());
  EXPECT_EQ(response.substr(0, 15), "HTTP/1.1 200 OK");
  endpoint->reset();
  spdlog::set_default_logger(saved_logger);
  // One line when the shortage starts and one when it ends, however many were refused.
  const std::string text = log.str();
  auto count = [&text](const std::string& what) {
    int n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("cannot accept connections"), 1) << text;
  EXPECT_EQ(count("accepting connections again (2 refused meanwhile)"), 1) << text;
}

}  // namespace
}  // namespace coalesce
