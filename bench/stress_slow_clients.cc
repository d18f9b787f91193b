#include "bench/stress_slow_clients.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace coalesce::stress {

struct SlowClients::Address {
  sockaddr_storage storage{};
  socklen_t length = 0;
  std::string text;
};

namespace {

// A request line and then header bytes for ever: the request never ends.
constexpr char kSlowRequest[] = "GET /metrics HTTP/1.1\r\nHost: stress\r\n";
constexpr char kSlowHeader[] = "X-Slow: a\r\n";
// The HTTP/2 client connection preface (RFC 9113, 3.4); the last byte is never sent.
constexpr char kHttp2Preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
// How often the holder looks for connections the server closed, and for stop.
constexpr absl::Duration kHolderTick = absl::Milliseconds(100);

// A non-blocking socket connecting to `address`, or -1.
int ConnectTo(const sockaddr_storage& address, socklen_t length) {
  int fd = socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&address), length) != 0 &&
      errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SlowClients::Address>> SlowClients::Resolve(
    const std::string& address) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("address '", address, "' is not host:port"));
  }
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.c_str(), address.c_str() + colon + 1, &hints, &found); rc != 0) {
    return absl::InvalidArgumentError(absl::StrCat("address '", address, "': ",
                                                   gai_strerror(rc)));
  }
  auto resolved = std::make_unique<Address>();
  std::memcpy(&resolved->storage, found->ai_addr, found->ai_addrlen);
  resolved->length = found->ai_addrlen;
  resolved->text = address;
  freeaddrinfo(found);
  return resolved;
}

absl::StatusOr<std::unique_ptr<SlowClients>> SlowClients::Start(const Options& options) {
  std::unique_ptr<SlowClients> clients(new SlowClients(options));
  if (!options.metrics_address.empty()) {
    auto address = Resolve(options.metrics_address);
    if (!address.ok()) return address.status();
    clients->metrics_ = *std::move(address);
  }
  if (!options.grpc_address.empty()) {
    auto address = Resolve(options.grpc_address);
    if (!address.ok()) return address.status();
    clients->grpc_ = *std::move(address);
  }
  clients->holder_ = std::thread([c = clients.get()] { c->Hold(); });
  if (clients->metrics_ != nullptr) {
    clients->scraper_ = std::thread([c = clients.get()] { c->ScrapeEvery(); });
  }
  return clients;
}

SlowClients::SlowClients(const Options& options) : options_(options) {}

SlowClients::~SlowClients() {
  stop_.Notify();
  if (holder_.joinable()) holder_.join();
  if (scraper_.joinable()) scraper_.join();
}

void SlowClients::TopUp(std::vector<Connection>& held) {
  auto top_up = [&](Kind kind, int want, const Address* address) {
    if (address == nullptr) return;
    int have = static_cast<int>(
        std::count_if(held.begin(), held.end(), [kind](const Connection& c) {
          return c.kind == kind;
        }));
    for (; have < want; ++have) {
      int fd = ConnectTo(address->storage, address->length);
      if (fd < 0) {
        absl::MutexLock lock(&mu_);
        for (Counts* counts : {&counts_, &totals_}) {
          ++(kind == Kind::kGrpcSlow ? counts->grpc_cut_off : counts->metrics_cut_off);
        }
        return;
      }
      held.push_back({fd, kind, 0});
    }
  };
  top_up(Kind::kMetricsSlow, options_.metrics_slowloris, metrics_.get());
  top_up(Kind::kMetricsSilent, options_.metrics_silent, metrics_.get());
  top_up(Kind::kGrpcSlow, options_.grpc_slowloris, grpc_.get());
}

bool SlowClients::SendNextByte(Connection& c) {
  char byte;
  if (c.kind == Kind::kGrpcSlow) {
    if (c.sent + 1 >= sizeof(kHttp2Preface) - 1) return true;  // Stops one byte short.
    byte = kHttp2Preface[c.sent];
  } else if (c.sent < sizeof(kSlowRequest) - 1) {
    byte = kSlowRequest[c.sent];
  } else {
    byte = kSlowHeader[(c.sent - (sizeof(kSlowRequest) - 1)) % (sizeof(kSlowHeader) - 1)];
  }
  ssize_t n = send(c.fd, &byte, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
  // Still connecting, or a full buffer: try again at the next byte.
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTCONN)) return true;
  if (n != 1) return false;
  ++c.sent;
  return true;
}

void SlowClients::Hold() {
  std::vector<Connection> held;
  std::vector<pollfd> fds;
  absl::Time next_byte = absl::Now();
  while (!stop_.HasBeenNotified()) {
    const bool byte_due = absl::Now() >= next_byte;
    if (byte_due) {
      TopUp(held);
      next_byte = absl::Now() + options_.byte_interval;
    }
    fds.clear();
    for (const Connection& c : held) fds.push_back({c.fd, POLLIN, 0});
    poll(fds.data(), fds.size(), byte_due ? 0 : absl::ToInt64Milliseconds(kHolderTick));
    int64_t metrics_cut = 0, grpc_cut = 0;
    for (size_t i = 0; i < held.size(); ++i) {
      Connection& c = held[i];
      bool open = true;
      if (fds[i].revents != 0) {
        // Whatever the server says (a 408, a GOAWAY) is read and dropped; only its close counts.
        char buffer[4096];
        ssize_t n = recv(c.fd, buffer, sizeof(buffer), MSG_DONTWAIT);
        open = n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
      }
      if (open && byte_due && c.kind != Kind::kMetricsSilent) open = SendNextByte(c);
      if (!open) {
        ++(c.kind == Kind::kGrpcSlow ? grpc_cut : metrics_cut);
        close(c.fd);
        c.fd = -1;
      }
    }
    held.erase(std::remove_if(held.begin(), held.end(), [](const Connection& c) {
                 return c.fd < 0;
               }), held.end());
    int metrics_held = static_cast<int>(std::count_if(held.begin(), held.end(), [](const auto& c) {
      return c.kind != Kind::kGrpcSlow;
    }));
    absl::MutexLock lock(&mu_);
    for (Counts* counts : {&counts_, &totals_}) {
      counts->metrics_cut_off += metrics_cut;
      counts->grpc_cut_off += grpc_cut;
    }
    held_ = {metrics_held, static_cast<int>(held.size()) - metrics_held};
  }
  for (const Connection& c : held) close(c.fd);
}

absl::Status SlowClients::Scrape() {
  if (metrics_ == nullptr) return absl::FailedPreconditionError("no metrics address");
  absl::Status status = [&]() -> absl::Status {
    const absl::Time deadline = absl::Now() + options_.scrape_timeout;
    int fd = ConnectTo(metrics_->storage, metrics_->length);
    pollfd connecting{fd, POLLOUT, 0};
    int error = 0;
    socklen_t length = sizeof(error);
    if (fd < 0 ||
        poll(&connecting, 1, absl::ToInt64Milliseconds(options_.scrape_timeout)) != 1 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0 || error != 0) {
      if (error == 0) error = fd < 0 ? errno : ETIMEDOUT;
      if (fd >= 0) close(fd);
      return absl::UnavailableError(absl::StrCat("connect to ", metrics_->text, ": ",
                                                 std::strerror(error)));
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    timeval timeout = absl::ToTimeval(options_.scrape_timeout);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    static constexpr char kRequest[] = "GET /metrics HTTP/1.1\r\nHost: stress\r\n\r\n";
    std::string response;
    if (send(fd, kRequest, sizeof(kRequest) - 1, MSG_NOSIGNAL) ==
        static_cast<ssize_t>(sizeof(kRequest) - 1)) {
      char buffer[65536];
      ssize_t n;
      while (absl::Now() < deadline && (n = recv(fd, buffer, sizeof(buffer), 0)) > 0) {
        response.append(buffer, n);
      }
    }
    error = errno;
    close(fd);
    if (!absl::StartsWith(response, "HTTP/1.1 200 ")) {
      return absl::UnavailableError(absl::StrCat(
          "scrape of ", metrics_->text, ": ",
          response.empty() ? std::strerror(error) : response.substr(0, response.find('\r'))));
    }
    if (!absl::StrContains(response, "\ncoalesce_")) {
      return absl::DataLossError(absl::StrCat("scrape of ", metrics_->text,
                                              ": no coalesce_ metric in ", response.size(),
                                              " bytes"));
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("scrape of ", metrics_->text, " took over ",
                       absl::FormatDuration(options_.scrape_timeout)));
    }
    return absl::OkStatus();
  }();
  absl::MutexLock lock(&mu_);
  for (Counts* counts : {&counts_, &totals_}) {
    if (status.ok()) {
      ++counts->scrapes_ok;
    } else {
      ++counts->scrapes_failed;
      counts->last_failure = std::string(status.message());
    }
  }
  return status;
}

void SlowClients::ScrapeEvery() {
  while (!stop_.WaitForNotificationWithTimeout(options_.scrape_interval)) {
    Scrape().IgnoreError();  // Counted.
  }
}

SlowClients::Counts SlowClients::TakeCounts() {
  absl::MutexLock lock(&mu_);
  return std::exchange(counts_, Counts{});
}

SlowClients::Counts SlowClients::Totals() {
  absl::MutexLock lock(&mu_);
  return totals_;
}

std::pair<int, int> SlowClients::Held() {
  absl::MutexLock lock(&mu_);
  return held_;
}

bool SlowClients::Clean() {
  if (metrics_ == nullptr) return true;
  Counts counts = TakeCounts();
  if (counts.scrapes_ok + counts.scrapes_failed == 0) {
    Scrape().IgnoreError();  // Counted.
    counts = TakeCounts();
  }
  if (counts.scrapes_failed > 0) {
    std::fprintf(stderr, "  %ld of %ld scrapes of /metrics failed; last: %s\n",
                 counts.scrapes_failed, counts.scrapes_ok + counts.scrapes_failed,
                 counts.last_failure.c_str());
  }
  return counts.scrapes_failed == 0;
}

std::string SlowClients::Summary() {
  Counts totals = Totals();
  auto [metrics_held, grpc_held] = Held();
  return absl::StrCat(
      "slow clients: scrapes of /metrics ", totals.scrapes_ok, " ok, ", totals.scrapes_failed,
      " failed; held now ", metrics_held, " metrics and ", grpc_held,
      " gRPC connections (of ", options_.metrics_slowloris, " slowloris + ",
      options_.metrics_silent, " silent, ", options_.grpc_slowloris,
      " gRPC slowloris); closed by the server: ", totals.metrics_cut_off, " metrics, ",
      totals.grpc_cut_off, " gRPC");
}

}  // namespace coalesce::stress
