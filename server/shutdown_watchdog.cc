#include "server/shutdown_watchdog.h"

#include <unistd.h>

#include <cstdio>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace coalesce {
namespace {

void LogAndExit(const std::string& report) {
  spdlog::error("{}", report);
  spdlog::default_logger()->flush();
  std::fprintf(stderr, "coalesce-server: %s\n", report.c_str());
  std::fflush(stderr);
  // No destructors and no atexit handlers: they would wait for the very parts that are stuck.
  _exit(ShutdownWatchdog::kExitStatus);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ShutdownWatchdog>> ShutdownWatchdog::Create(Options options) {
  if (options.bound <= absl::ZeroDuration() || options.bound == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shutdown watchdog: bound must be positive and finite, got ",
        absl::FormatDuration(options.bound)));
  }
  if (!options.expire) options.expire = LogAndExit;
  std::function<std::string()> progress = std::move(options.progress);
  std::unique_ptr<ShutdownWatchdog> watchdog(new ShutdownWatchdog(std::move(options)));
  watchdog->set_progress(std::move(progress));
  return watchdog;
}

void ShutdownWatchdog::Start() {
  {
    absl::MutexLock lock(&mu_);
    if (started_) return;
    started_ = true;
  }
  std::thread([this] {
    if (!disarmed_.WaitForNotificationWithTimeout(options_.bound)) Expire();
  }).detach();
}

void ShutdownWatchdog::Disarm() {
  absl::MutexLock lock(&mu_);
  done_ = true;
  progress_ = nullptr;
  if (!disarmed_.HasBeenNotified()) disarmed_.Notify();
}

void ShutdownWatchdog::set_progress(std::function<std::string()> progress) {
  absl::MutexLock lock(&mu_);
  progress_ = std::move(progress);
}

void ShutdownWatchdog::Expire() {
  std::string report;
  {
    // Held while `progress` runs, so that Disarm() (and whoever tears down what it reads) waits.
    absl::MutexLock lock(&mu_);
    if (done_) return;
    done_ = true;
    report = absl::StrCat("still running ", absl::FormatDuration(options_.bound),
                          " after the stop signal; exiting with status ", kExitStatus,
                          " without waiting further. Stuck: ",
                          progress_ ? progress_() : std::string("(nothing reported)"));
  }
  options_.expire(report);
}

}  // namespace coalesce
