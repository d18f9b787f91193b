#ifndef COALESCE_SERVER_METRICS_ENDPOINT_H_
#define COALESCE_SERVER_METRICS_ENDPOINT_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <prometheus/registry.h>

#include "absl/status/statusor.h"

namespace coalesce {

// Serves `GET /metrics` (Prometheus text format 0.0.4) from one registry on its own address.
//
// A deliberately small HTTP/1.0-style server on one thread: each connection gets one response
// and is closed. Prometheus scrapes every few seconds, so one connection at a time is plenty,
// and a client that sends nothing is dropped after a 2-second read timeout. It replaces
// prometheus-cpp's civetweb exposer, which cannot start its threads on some sandboxed kernels
// (gVisor: "Cannot create threads") and takes ~2 s to stop.
//
// Thread-safety: construction and destruction from one thread; serving runs on its own thread.
class MetricsEndpoint {
 public:
  // Binds `address` ("host:port"; port 0 picks a free one) and starts serving.
  // `before_scrape`, if set, runs on the serving thread before each scrape (to sample gauges).
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(
      const std::string& address, std::shared_ptr<prometheus::Registry> registry,
      std::function<void()> before_scrape = nullptr);
  // Stops serving and closes the socket.
  ~MetricsEndpoint();

  int port() const { return port_; }

 private:
  MetricsEndpoint(int listen_fd, int wake_read_fd, int wake_write_fd, int port,
                  std::shared_ptr<prometheus::Registry> registry,
                  std::function<void()> before_scrape);
  void Serve();
  void Answer(int fd);

  const int listen_fd_;
  // A pipe whose write end, written at destruction, wakes the serving thread's poll().
  const int wake_read_fd_;
  const int wake_write_fd_;
  const int port_;
  const std::shared_ptr<prometheus::Registry> registry_;
  const std::function<void()> before_scrape_;
  std::thread thread_;
};

}  // namespace coalesce

#endif  // COALESCE_SERVER_METRICS_ENDPOINT_H_
