#ifndef COALESCE_BENCH_STRESS_SLOW_CLIENTS_H_
#define COALESCE_BENCH_STRESS_SLOW_CLIENTS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace coalesce::stress {

// Slow and silent clients held open beside the stress traffic, and scrapes of /metrics that
// must keep succeeding meanwhile:
//   - metrics slowloris: connections to the metrics endpoint that send a request a byte every
//     `byte_interval` and never finish it;
//   - metrics silent: connections to the metrics endpoint that send nothing;
//   - gRPC slowloris: raw TCP connections to the gRPC port that send the HTTP/2 connection
//     preface a byte every `byte_interval` and stop one byte short of it.
// A connection the server closes is opened again at the next byte, so the server keeps facing
// as many as configured. A scraper thread GETs /metrics every `scrape_interval`; each scrape
// must answer 200 with a coalesce_ metric within `scrape_timeout`.
//
// Thread-safety: all methods may be called from any thread; the clients run on two threads
// of their own until destruction.
class SlowClients {
 public:
  struct Options {
    // "host:port" of the metrics endpoint; empty: no metrics clients and no scrapes.
    std::string metrics_address;
    // "host:port" of the gRPC port; empty: no gRPC slowloris.
    std::string grpc_address;
    int metrics_slowloris = 8;
    int metrics_silent = 96;
    int grpc_slowloris = 4;
    absl::Duration byte_interval = absl::Seconds(1);
    absl::Duration scrape_interval = absl::Milliseconds(500);
    absl::Duration scrape_timeout = absl::Seconds(5);
  };

  // What the clients saw over a span of the run.
  struct Counts {
    int64_t scrapes_ok = 0;
    int64_t scrapes_failed = 0;
    std::string last_failure;
    // Connections the server closed (or refused), by kind.
    int64_t metrics_cut_off = 0;
    int64_t grpc_cut_off = 0;
  };

  // Resolves the addresses and starts the clients. InvalidArgument for an address that does
  // not resolve.
  static absl::StatusOr<std::unique_ptr<SlowClients>> Start(const Options& options);
  // Closes every connection and stops both threads (within about 100 ms plus a scrape).
  ~SlowClients();

  // One scrape now, on the caller's thread: OK, or why it failed. Counted like the others.
  absl::Status Scrape();
  // What happened since the last TakeCounts(), or since the start.
  Counts TakeCounts();
  Counts Totals();
  // Connections held open right now: metrics, gRPC.
  std::pair<int, int> Held();

  // For a stress round or a soak: takes the counts (scraping once now if no scrape happened
  // since the last call), prints failed scrapes to stderr, and returns whether none failed.
  bool Clean();
  // One line on what the clients did over the whole run.
  std::string Summary();

 private:
  enum class Kind { kMetricsSlow, kMetricsSilent, kGrpcSlow };
  struct Connection {
    int fd = -1;
    Kind kind;
    size_t sent = 0;
  };
  struct Address;

  explicit SlowClients(const Options& options);
  static absl::StatusOr<std::unique_ptr<Address>> Resolve(const std::string& address);
  void Hold();
  void ScrapeEvery();
  // Opens connections until each kind has its count.
  void TopUp(std::vector<Connection>& held);
  // Sends the next byte of a slow connection; false when the server has closed it.
  bool SendNextByte(Connection& c);

  const Options options_;
  // Null where not used.
  std::unique_ptr<Address> metrics_;
  std::unique_ptr<Address> grpc_;
  absl::Notification stop_;

  absl::Mutex mu_;
  Counts counts_ ABSL_GUARDED_BY(mu_);
  Counts totals_ ABSL_GUARDED_BY(mu_);
  std::pair<int, int> held_ ABSL_GUARDED_BY(mu_) = {0, 0};

  std::thread holder_;
  std::thread scraper_;
};

}  // namespace coalesce::stress

#endif  // COALESCE_BENCH_STRESS_SLOW_CLIENTS_H_
