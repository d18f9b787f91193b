#ifndef COALESCE_SERVER_REQUEST_TRACER_H_
#define COALESCE_SERVER_REQUEST_TRACER_H_

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "engine/request_trace.h"

namespace coalesce {

// Triton's trace extension in its file mode: which requests to sample (globally and per model)
// and, for each sampled one, one JSON line in the trace file:
//
//   {"id":7,"model_name":"m","model_version":"1","request_id":"abc","timestamps":[
//    {"name":"REQUEST_START","ns":...},{"name":"QUEUE_START","ns":...},
//    {"name":"COMPUTE_START","ns":...},{"name":"COMPUTE_END","ns":...},
//    {"name":"REQUEST_END","ns":...}]}
//
// (one line; a stage the request never reached is left out). Nanoseconds are the server Clock's
// (a monotonic clock, as Triton's steady_clock stamps), so stages of one request and of
// different requests of one server run compare; they are not wall-clock times.
//
// Settings, as Triton names them: level (OFF, TIMESTAMPS), rate (trace 1 request in N), count
// (traces left to take; -1 unlimited; each trace taken counts it down, and at 0 sampling stops)
// and log_frequency (0: every line goes to the trace file; N: lines go to "<file>.0" for the
// first N traces, "<file>.1" for the next N, ...). A model may override level, rate and count;
// a field it does not override follows the global value. A model with an override samples and
// counts on its own; the others share the global counters.
//
// Thread-safe. Sample() costs an untraced request one atomic load while tracing is off
// everywhere, and a short mutex hold otherwise. Write() formats outside the lock and appends one
// line under it (one write() call to a file opened O_APPEND); a line is at most a few hundred
// bytes, so the I/O is bounded per traced request.
class RequestTracer {
 public:
  enum class Level { kOff, kTimestamps };
  struct Settings {
    Level level = Level::kOff;
    uint32_t rate = 1000;
    // Traces left to take; -1: unlimited.
    int64_t count = -1;
    uint32_t log_frequency = 0;
  };
  // A change to one scope's settings: for each field, keep it, set it, or clear it (a model's
  // field then follows the global one; a global field returns to its default).
  template <typename T>
  struct Change {
    enum Action { kKeep, kSet, kClear };
    Action action = kKeep;
    T value{};
  };
  struct Update {
    Change<Level> level;
    Change<uint32_t> rate;
    Change<int64_t> count;
    Change<uint32_t> log_frequency;  // Global only.
  };
  struct Options {
    // The trace file; empty: tracing cannot be turned on. Opened (created if missing, appended
    // to) at Create().
    std::string file;
    // The global settings at start.
    Settings initial;
  };
  // A sampled request's stages and its trace id.
  struct Trace {
    RequestTrace stages;
    uint64_t id = 0;
  };

  // INVALID_ARGUMENT naming the path and the reason when the file cannot be opened for writing,
  // or for invalid initial settings (rate 0, count below -1, level on without a file).
  static absl::StatusOr<std::unique_ptr<RequestTracer>> Create(const Options& options);
  ~RequestTracer();

  const std::string& file() const { return options_.file; }

  // The settings in force for `model` ("" for the global ones), with count as the traces left.
  Settings Get(const std::string& model) const;
  // Applies `update` to the global settings (`model` empty) or to `model`'s override.
  // INVALID_ARGUMENT for a rate of 0, a count below -1, log_frequency for a model, or a level
  // turned on while there is no trace file. Nothing changes unless all of it is valid.
  absl::Status Apply(const std::string& model, const Update& update);

  // Whether to trace a request to `model`; if so, a Trace with its id. Null for most requests.
  std::unique_ptr<Trace> Sample(const std::string& model) {
    if (!any_on_.load(std::memory_order_acquire)) return nullptr;
    return SampleSlow(model);
  }
  // Appends `trace`'s line to the trace file.
  void Write(const Trace& trace, const std::string& model, const std::string& version,
             const std::string& request_id);

 private:
  struct ModelOverride {
    std::optional<Level> level;
    std::optional<uint32_t> rate;
    std::optional<int64_t> count;
  };
  // Sampling state of a scope.
  struct Counters {
    uint64_t seen = 0;
    int64_t remaining = -1;
  };

  explicit RequestTracer(const Options& options) : options_(options) {}
  std::unique_ptr<Trace> SampleSlow(const std::string& model);
  // The settings for `model` from the global ones and its override. REQUIRES: mu_ held.
  Settings EffectiveLocked(const std::string& model) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RefreshAnyOnLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  // Whether any scope's level is on: the fast path's only read.
  std::atomic<bool> any_on_{false};

  mutable absl::Mutex mu_;
  Settings global_ ABSL_GUARDED_BY(mu_);
  Counters global_counters_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, ModelOverride> overrides_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Counters> override_counters_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;

  // The file being written and how many lines it and its predecessors hold.
  absl::Mutex file_mu_ ABSL_ACQUIRED_AFTER(mu_);
  int fd_ ABSL_GUARDED_BY(file_mu_) = -1;
  int64_t file_index_ ABSL_GUARDED_BY(file_mu_) = -1;
  uint64_t written_ ABSL_GUARDED_BY(file_mu_) = 0;
};

}  // namespace coalesce

#endif  // COALESCE_SERVER_REQUEST_TRACER_H_
