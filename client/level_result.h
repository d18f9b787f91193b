#ifndef COALESCE_CLIENT_LEVEL_RESULT_H_
#define COALESCE_CLIENT_LEVEL_RESULT_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "client/latency_recorder.h"
#include "client/status_counts.h"

namespace coalesce {

// How a level drives the server.
enum class LoadMode {
  // Closed loop: `level` requests are always outstanding; each completion sends the next.
  kConcurrency,
  // Open loop: requests leave at Poisson-distributed times, `level` per second on average,
  // whether or not earlier ones have been answered.
  kRate,
};

// "concurrency" or "rate", as printed in every output format.
inline const char* LoadModeName(LoadMode mode) {
  return mode == LoadMode::kConcurrency ? "concurrency" : "rate";
}

// A send whose p99 lateness exceeds this means the load generator, not the server, limited
// the offered load.
inline constexpr absl::Duration kGeneratorBehindThreshold = absl::Milliseconds(1);

// What one level of a run measured. Only calls that completed inside the measurement window
// count; calls still in flight when it closed are not counted at all.
struct LevelResult {
  // Free-form name of the configuration, so that a script can join runs.
  std::string label;
  LoadMode mode = LoadMode::kConcurrency;
  // Outstanding requests (kConcurrency) or mean requests per second (kRate).
  double level = 0;
  // Samples per request.
  int64_t batch = 1;
  // Length of the measurement window.
  absl::Duration window;
  // Completions inside the window, by status code.
  StatusCounts statuses;
  // Latency of the OK completions inside the window, from send to completion.
  LatencySummary latency;
  // Open loop only: how late the sender was against its schedule, for sends scheduled inside
  // the window.
  std::optional<LatencySummary> send_lateness;
  // Open loop only: sends scheduled inside the window that were not made because
  // max_requests_in_flight calls were already outstanding.
  int64_t skipped = 0;
  // CPU time the whole client process used during the window, divided by the window: cores.
  double client_cpu_cores = 0;
  // Connections (gRPC channels) the calls were spread over, and threads receiving completions.
  int channels = 0;
  int threads = 0;

  // OK completions per second of window.
  double requests_per_s() const {
    const double seconds = absl::ToDoubleSeconds(window);
    return seconds > 0 ? static_cast<double>(statuses.ok()) / seconds : 0.0;
  }
  double samples_per_s() const { return requests_per_s() * static_cast<double>(batch); }
  // True when the open-loop sender fell behind its schedule by more than
  // kGeneratorBehindThreshold at p99: the offered rate was not the requested one.
  bool generator_behind() const {
    return send_lateness.has_value() && send_lateness->count > 0 &&
           send_lateness->p99 > kGeneratorBehindThreshold;
  }
};

}  // namespace coalesce

#endif  // COALESCE_CLIENT_LEVEL_RESULT_H_
