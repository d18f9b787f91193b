#ifndef COALESCE_SERVER_METRICS_ENDPOINT_H_
#define COALESCE_SERVER_METRICS_ENDPOINT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/registry.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace coalesce {

// Serves `GET /metrics` (Prometheus text format 0.0.4) from one registry on its own address.
//
// A deliberately small HTTP/1.0-style server: one thread, non-blocking sockets and a poll()
// loop; each connection gets one response and is closed. It replaces prometheus-cpp's civetweb
// exposer, which cannot start its threads on some sandboxed kernels (gVisor: "Cannot create
// threads") and takes ~2 s to stop. One thread is enough for Prometheus, which scrapes every few
// seconds and sends its whole request at once.
//
// Clients that are slow or never finish cannot keep scrapes out, because no connection is ever
// waited on: every connection is served concurrently by the loop, and
//   - its whole request must arrive within `read_timeout` of the accept (a total deadline, not
//     one per byte, so a byte every second does not keep it open), and the whole response must
//     be taken within `write_timeout`; past either, the connection is closed;
//   - at most `max_connections` are open; a new connection beyond the cap closes the oldest one.
//     Refusing the new one instead would let whoever holds the cap, renewing connections as
//     they expire, refuse every scrape; closing the oldest makes the holder race a scraper
//     that sends its request within a millisecond of connecting.
// When the process is out of file descriptors (EMFILE/ENFILE), accept() fails without taking
// the connection off the listen queue, and polling the listener again would spin. The endpoint
// keeps one spare descriptor: it frees it, accepts the waiting connection, answers it
// 503 and closes it, then takes the spare again. Without a spare it stops polling the listener
// for a short while. Either way it logs once when the shortage starts and once when a connection
// is accepted again.
//
// Thread-safety: construction and destruction from one thread; serving runs on its own thread.
class MetricsEndpoint {
 public:
  struct Options {
    // "host:port" ("[v6]:port"; an empty host is every interface; port 0 picks a free one).
    std::string address;
    // The whole request (request line and headers, at most 8 KiB) must arrive within this long
    // of the accept; otherwise the connection is closed unanswered.
    absl::Duration read_timeout = absl::Seconds(2);
    // The whole response must be taken by the client within this long of the request.
    absl::Duration write_timeout = absl::Seconds(10);
    // Connections open at once; one more closes the oldest.
    int max_connections = 64;
  };

  // Binds `options.address` and starts serving. InvalidArgument for a bad address or option,
  // Unavailable if the address cannot be bound. `before_scrape`, if set, runs on the serving
  // thread before each scrape (to sample gauges).
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(
      const Options& options, std::shared_ptr<prometheus::Registry> registry,
      std::function<void()> before_scrape = nullptr);
  // The same with the default Options on `address`.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(
      const std::string& address, std::shared_ptr<prometheus::Registry> registry,
      std::function<void()> before_scrape = nullptr);
  // Stops serving and closes every socket.
  ~MetricsEndpoint();

  int port() const { return port_; }

 private:
  using SteadyTime = std::chrono::steady_clock::time_point;
  struct Connection;

  MetricsEndpoint(const Options& options, int listen_fd, int wake_read_fd, int wake_write_fd,
                  int port, std::shared_ptr<prometheus::Registry> registry,
                  std::function<void()> before_scrape);
  void Serve();
  // Accepts what the listen queue holds, closing the oldest connections beyond the cap.
  void AcceptAll(SteadyTime now);
  // Takes one queued connection with the spare descriptor when out of descriptors; returns
  // whether the listener may be polled again at once.
  bool RefuseOneWithSpare();
  // Reads what `c` sent; once the request is complete, prepares the response and starts
  // writing it. Returns false when `c` is to be closed.
  bool OnReadable(Connection& c, SteadyTime now);
  // Writes more of the response; returns false when `c` is done or is to be closed.
  bool OnWritable(Connection& c);
  std::string Answer(const std::string& request);

  // Constant after construction.
  const std::chrono::nanoseconds read_timeout_;
  const std::chrono::nanoseconds write_timeout_;
  const size_t max_connections_;
  const int listen_fd_;
  // A pipe whose write end, written at destruction, wakes the serving thread's poll().
  const int wake_read_fd_;
  const int wake_write_fd_;
  const int port_;
  const std::shared_ptr<prometheus::Registry> registry_;
  const std::function<void()> before_scrape_;

  // State below is used by the serving thread only.
  // Oldest first.
  std::vector<Connection> connections_;
  // A descriptor held in reserve for refusing a connection when none is left; -1 while not held.
  int spare_fd_ = -1;
  // While the process is out of descriptors: connections refused since it started.
  bool out_of_descriptors_ = false;
  int64_t refused_ = 0;
  // The listener is not polled before this (out of descriptors without a spare).
  SteadyTime listener_paused_until_{};

  std::thread thread_;
};

}  // namespace coalesce

#endif  // COALESCE_SERVER_METRICS_ENDPOINT_H_
