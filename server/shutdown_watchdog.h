#ifndef COALESCE_SERVER_SHUTDOWN_WATCHDOG_H_
#define COALESCE_SERVER_SHUTDOWN_WATCHDOG_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace coalesce {

// Bounds how long the process takes to stop once it has been asked to. Started at the first
// SIGTERM or SIGINT, it waits `bound`; if the process has not disarmed it by then (a forward pass
// that runs on, a model load or repository poll that does not return, a client that holds a
// connection open), it reports what is still stuck and ends the process with kExitStatus,
// whatever the stuck parts are doing. Calls still in flight then see their connection close.
//
// Thread-safe. Start() and Disarm() may race: once Disarm() has returned, the watchdog never
// fires and never calls `progress` again.
class ShutdownWatchdog {
 public:
  // The process's exit status when the watchdog ends it (0 is a clean drain, 1 a failure to
  // start, 2 a wrong command line).
  static constexpr int kExitStatus = 3;

  struct Options {
    // How long after Start() the process may still run. Must be positive and finite.
    absl::Duration bound = absl::Seconds(35);
    // What the process is busy with, for the report (the server's shutdown stage, say); may be
    // replaced with set_progress().
    std::function<std::string()> progress;
    // Called once the bound has passed, with the report. By default: logs it at error level,
    // writes it to stderr and calls _exit(kExitStatus). Tests replace it.
    std::function<void(const std::string& report)> expire;
  };

  static absl::StatusOr<std::unique_ptr<ShutdownWatchdog>> Create(Options options);

  // Starts the countdown on a thread of its own (detached: the watchdog must outlive it, so
  // make it live as long as the process). Later calls do nothing.
  void Start();
  // Stops the countdown: the process is about to exit on its own.
  void Disarm();
  // Replaces Options::progress; call Disarm() or set_progress(nullptr) before anything
  // `progress` refers to goes away.
  void set_progress(std::function<std::string()> progress);

 private:
  explicit ShutdownWatchdog(Options options) : options_(std::move(options)) {}
  void Expire();

  const Options options_;
  absl::Notification disarmed_;
  absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::function<std::string()> progress_ ABSL_GUARDED_BY(mu_);
};

}  // namespace coalesce

#endif  // COALESCE_SERVER_SHUTDOWN_WATCHDOG_H_
