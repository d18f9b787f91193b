#include "server/metrics_endpoint.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>
#include <utility>

#include <prometheus/text_serializer.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace coalesce {

struct MetricsEndpoint::Connection {
  int fd = -1;
  // The connection is closed when this passes: the read deadline, then the write deadline.
  SteadyTime deadline;
  std::string request;
  // Set once the request is complete; `sent` bytes of it are written.
  std::string response;
  size_t sent = 0;
  bool writing = false;
};

namespace {

constexpr size_t kMaxRequestBytes = 8192;
// Connections accepted per turn of the loop, so that a flood of connects cannot starve the
// connections already open.
constexpr int kAcceptsPerTurn = 64;
// How long the listener is left alone when out of descriptors with no spare to refuse with.
constexpr std::chrono::milliseconds kOutOfDescriptorsPause{100};

// Splits "host:port" (or "[v6]:port"); an empty host means every interface.
bool SplitAddress(const std::string& address, std::string& host, std::string& port) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) return false;
  host = address.substr(0, colon);
  port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return !port.empty();
}

// Closes `fd` with a reset, dropping what it still holds to send: for connections cut off,
// whose unsent bytes would otherwise stay queued in the kernel for a client that does not read.
void Abort(int fd) {
  linger now{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &now, sizeof(now));
  close(fd);
}

std::string Response(const std::string& status, const std::string& content_type,
                     const std::string& body) {
  return absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", content_type,
                      "\r\nContent-Length: ", body.size(), "\r\nConnection: close\r\n\r\n",
                      body);
}

// A listening, non-blocking socket on `address`, or why not.
absl::StatusOr<int> Listen(const std::string& address) {
  std::string host, port;
  if (!SplitAddress(address, host, port)) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics address '", address, "' is not host:port"));
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found);
      rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics address '", address, "': ", gai_strerror(rc)));
  }
  int fd = -1;
  std::string error = "no usable address";
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
      error = std::strerror(errno);
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", address, ": ", error));
  }
  return fd;
}

int BoundPort(int fd) {
  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length);
  return bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                     : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(
    const std::string& address, std::shared_ptr<prometheus::Registry> registry,
    std::function<void()> before_scrape) {
  Options options;
  options.address = address;
  return Start(options, std::move(registry), std::move(before_scrape));
}

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(
    const Options& options, std::shared_ptr<prometheus::Registry> registry,
    std::function<void()> before_scrape) {
  if (options.read_timeout <= absl::ZeroDuration() ||
      options.write_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics endpoint: read and write timeouts must be positive, got ",
        absl::FormatDuration(options.read_timeout), " and ",
        absl::FormatDuration(options.write_timeout)));
  }
  if (options.max_connections < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics endpoint: max_connections must be >= 1, got ", options.max_connections));
  }
  absl::StatusOr<int> fd = Listen(options.address);
  if (!fd.ok()) return fd.status();
  int wake[2];
  if (pipe2(wake, O_CLOEXEC) != 0) {
    close(*fd);
    return absl::InternalError(absl::StrCat("metrics endpoint: pipe: ", std::strerror(errno)));
  }
  std::unique_ptr<MetricsEndpoint> endpoint(
      new MetricsEndpoint(options, *fd, wake[0], wake[1], BoundPort(*fd), std::move(registry),
                          std::move(before_scrape)));
  endpoint->thread_ = std::thread([e = endpoint.get()] { e->Serve(); });
  return endpoint;
}

MetricsEndpoint::MetricsEndpoint(const Options& options, int listen_fd, int wake_read_fd,
                                 int wake_write_fd, int port,
                                 std::shared_ptr<prometheus::Registry> registry,
                                 std::function<void()> before_scrape)
    : read_timeout_(absl::ToChronoNanoseconds(options.read_timeout)),
      write_timeout_(absl::ToChronoNanoseconds(options.write_timeout)),
      max_connections_(static_cast<size_t>(options.max_connections)),
      listen_fd_(listen_fd),
      wake_read_fd_(wake_read_fd),
      wake_write_fd_(wake_write_fd),
      port_(port),
      registry_(std::move(registry)),
      before_scrape_(std::move(before_scrape)),
      // Any descriptor will do as the spare: it only holds a slot in the table.
      spare_fd_(fcntl(wake_read_fd, F_DUPFD_CLOEXEC, 0)) {}

MetricsEndpoint::~MetricsEndpoint() {
  char byte = 0;
  while (write(wake_write_fd_, &byte, 1) < 0 && errno == EINTR) {
  }
  if (thread_.joinable()) thread_.join();
  for (const Connection& c : connections_) close(c.fd);
  if (spare_fd_ >= 0) close(spare_fd_);
  close(listen_fd_);
  close(wake_read_fd_);
  close(wake_write_fd_);
}

void MetricsEndpoint::Serve() {
  std::vector<pollfd> fds;
  while (true) {
    SteadyTime now = std::chrono::steady_clock::now();
    // Close connections past their deadline, and find the next deadline to wake up for.
    SteadyTime wake_at = SteadyTime::max();
    auto expired = [&](const Connection& c) {
      if (c.deadline > now) {
        wake_at = std::min(wake_at, c.deadline);
        return false;
      }
      Abort(c.fd);
      return true;
    };
    connections_.erase(std::remove_if(connections_.begin(), connections_.end(), expired),
                       connections_.end());
    const bool poll_listener = listener_paused_until_ <= now;
    if (!poll_listener) wake_at = std::min(wake_at, listener_paused_until_);

    fds.clear();
    fds.push_back({wake_read_fd_, POLLIN, 0});
    fds.push_back({poll_listener ? listen_fd_ : -1, POLLIN, 0});
    for (const Connection& c : connections_) {
      fds.push_back({c.fd, static_cast<short>(c.writing ? POLLOUT : POLLIN), 0});
    }
    int timeout_ms = -1;
    if (wake_at != SteadyTime::max()) {
      // Rounded up, so that the deadline has passed when poll() returns.
      auto wait = std::chrono::ceil<std::chrono::milliseconds>(wake_at - now).count();
      timeout_ms = static_cast<int>(std::clamp<int64_t>(wait, 0, 60'000));
    }
    if (poll(fds.data(), fds.size(), timeout_ms) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("metrics endpoint stopped: poll: {}", std::strerror(errno));
      return;
    }
    if (fds[0].revents != 0) return;
    now = std::chrono::steady_clock::now();
    // Connections accepted below are appended, so indices of the polled ones stay valid.
    for (size_t i = 0; i < connections_.size() && i + 2 < fds.size(); ++i) {
      if (fds[i + 2].revents == 0) continue;
      Connection& c = connections_[i];
      if (!(c.writing ? OnWritable(c) : OnReadable(c, now))) {
        close(c.fd);
        c.fd = -1;
      }
    }
    connections_.erase(std::remove_if(connections_.begin(), connections_.end(),
                                      [](const Connection& c) { return c.fd < 0; }),
                       connections_.end());
    if (fds[1].revents != 0) AcceptAll(now);
  }
}

void MetricsEndpoint::AcceptAll(SteadyTime now) {
  for (int i = 0; i < kAcceptsPerTurn; ++i) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EMFILE && errno != ENFILE && errno != ENOBUFS && errno != ENOMEM) return;
      if (!out_of_descriptors_) {
        out_of_descriptors_ = true;
        refused_ = 0;
        spdlog::warn("metrics endpoint: cannot accept connections ({}); answering them 503 "
                     "while this lasts",
                     std::strerror(errno));
      }
      if (RefuseOneWithSpare()) continue;
      listener_paused_until_ = now + kOutOfDescriptorsPause;
      return;
    }
    if (out_of_descriptors_) {
      out_of_descriptors_ = false;
      spdlog::info("metrics endpoint: accepting connections again ({} refused meanwhile)",
                   refused_);
    }
    if (spare_fd_ < 0) spare_fd_ = fcntl(wake_read_fd_, F_DUPFD_CLOEXEC, 0);
    if (connections_.size() >= max_connections_) {
      Abort(connections_.front().fd);
      connections_.erase(connections_.begin());
    }
    Connection& c = connections_.emplace_back();
    c.fd = fd;
    c.deadline = now + read_timeout_;
  }
}

bool MetricsEndpoint::RefuseOneWithSpare() {
  if (spare_fd_ < 0) return false;
  close(spare_fd_);
  spare_fd_ = -1;
  int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd >= 0) {
    static const std::string refusal =
        Response("503 Service Unavailable", "text/plain", "out of file descriptors\n");
    // One try: the refusal is small enough for an empty socket buffer. The request already
    // here is read first, since closing with unread bytes resets the connection, which can
    // discard the refusal before the client reads it.
    char request[kMaxRequestBytes];
    while (recv(fd, request, sizeof(request), MSG_DONTWAIT) > 0) {
    }
    (void)send(fd, refusal.data(), refusal.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    close(fd);
    ++refused_;
  }
  spare_fd_ = fcntl(wake_read_fd_, F_DUPFD_CLOEXEC, 0);
  return fd >= 0 && spare_fd_ >= 0;
}

bool MetricsEndpoint::OnReadable(Connection& c, SteadyTime now) {
  char buffer[2048];
  bool complete = false;
  while (!complete) {
    ssize_t n = recv(c.fd, buffer, sizeof(buffer), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n < 0) return false;
    // The client finished sending: answer what it sent, if anything.
    if (n == 0 && c.request.empty()) return false;
    if (n == 0) break;
    c.request.append(buffer, std::min(static_cast<size_t>(n), kMaxRequestBytes - c.request.size()));
    complete = c.request.find("\r\n\r\n") != std::string::npos ||
               c.request.size() >= kMaxRequestBytes;
  }
  c.response = Answer(c.request);
  c.request.clear();
  c.request.shrink_to_fit();
  c.writing = true;
  c.deadline = now + write_timeout_;
  return OnWritable(c);
}

bool MetricsEndpoint::OnWritable(Connection& c) {
  while (c.sent < c.response.size()) {
    ssize_t n = send(c.fd, c.response.data() + c.sent, c.response.size() - c.sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n <= 0) return false;
    c.sent += static_cast<size_t>(n);
  }
  return false;
}

std::string MetricsEndpoint::Answer(const std::string& request) {
  std::string line = request.substr(0, request.find("\r\n"));
  if (!absl::StartsWith(line, "GET ")) {
    return Response("405 Method Not Allowed", "text/plain", "only GET /metrics\n");
  }
  std::string path = line.substr(4, line.find(' ', 4) - 4);
  if (path != "/metrics" && !absl::StartsWith(path, "/metrics?")) {
    return Response("404 Not Found", "text/plain", "metrics are at /metrics\n");
  }
  if (before_scrape_) before_scrape_();
  std::ostringstream body;
  prometheus::TextSerializer().Serialize(body, registry_->Collect());
  return Response("200 OK", "text/plain; version=0.0.4; charset=utf-8", body.str());
}

}  // namespace coalesce
