// coalesce-server: serves models over the Open Inference Protocol (gRPC) and exposes Prometheus
// metrics. With no model repository it serves the built-in demo model.
//
//   coalesce-server --flagfile=config/server.flags
//   coalesce-server --flagfile=config/server.flags --check-config
//
// SIGHUP, or a change of the files, re-reads the TLS certificates, the client CA and the token
// file (docs/security.md); SIGTERM or SIGINT drains and stops.
//
// Exit status: 0 after a clean drain (or a passing --check-config); 2 for a wrong command line
// (one line on stderr); 1 for anything that fails once the flags are valid (a port in use, a
// model that does not load, unreadable TLS or token files, a failing --check-config) or a second
// stop signal; 3 when the process was still running --shutdown_delay + --drain_timeout + 5 s
// after the stop signal (what was stuck is logged); 4 when the gRPC listener stopped accepting
// connections (server/listener_watch.h), so that the supervisor starts a fresh process.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/flag_parsing.h"
#include "engine/clock.h"
#include "execution/demo_model.h"
#include "execution/device.h"
#include "execution/echo_backend.h"
#include "execution/torch/torch_backend.h"
#include "execution/torch/torch_cuda_ipc.h"
#include "google/protobuf/stubs/logging.h"
#include "repository/model_repository.h"
#include "server/bearer_token_authorizer.h"
#include "server/file_change_watch.h"
#include "server/file_descriptor_limit.h"
#include "server/flags.h"
#include "server/listener_watch.h"
#include "server/logging.h"
#include "server/malloc_arenas.h"
#include "server/malloc_trimmer.h"
#include "server/rotating_tls_credentials.h"
#include "server/server.h"
#include "server/shutdown_watchdog.h"
#include "server/torch_backend_factory.h"
#include "serving/model_registry.h"
#include "spdlog/spdlog.h"

namespace coalesce {
namespace {

constexpr char kProgram[] = "coalesce-server";

TorchBackend::Options TorchOptionsFromFlags() {
  TorchBackend::Options options;
  // Valid spellings: main() checked the flags.
  options.device = *ParseDevice(absl::GetFlag(FLAGS_device));
  options.precision = *ParsePrecision(absl::GetFlag(FLAGS_precision));
  options.num_workers = absl::GetFlag(FLAGS_workers);
  options.cuda_graphs = absl::GetFlag(FLAGS_cuda_graphs);
  options.stage_fp16 = absl::GetFlag(FLAGS_stage_fp16);
  options.max_precision_error = absl::GetFlag(FLAGS_max_precision_error);
  return options;
}

absl::StatusOr<std::unique_ptr<Backend>> MakeBackend() {
  const std::string backend = absl::GetFlag(FLAGS_backend);
  const int64_t max_batch = absl::GetFlag(FLAGS_max_batch_size);
  if (backend == "echo") {
    auto echo = EchoBackend::Create(DemoModel::Metadata(max_batch));
    if (!echo.ok()) return echo.status();
    return std::unique_ptr<Backend>(*std::move(echo));
  }
  if (backend == "torch") {
    TorchBackend::Options options = TorchOptionsFromFlags();
    auto torch = TorchBackend::CreateDemo(options, max_batch);
    if (!torch.ok()) return torch.status();
    spdlog::info("model demo: {} differs from its fp32 CPU reference by {:.3g} (tolerance {:.3g})",
                 (*torch)->DeviceDescription(), (*torch)->precision_error(),
                 options.max_precision_error);
    return std::unique_ptr<Backend>(*std::move(torch));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--backend must be torch or echo, got '", backend, "'"));
}

// The models being served and, with --model_repository, where they come from.
struct Models {
  std::unique_ptr<ModelRegistry> registry;
  std::unique_ptr<ModelRepository> repository;
};

// Builds, checks (dry runs, profiling) and registers every model the flags describe, recording
// into `metrics`: the repository's, or the built-in demo model. The one place where models are
// made: serving and --check-config both call it. A repository model that fails to load is
// reported and listed UNAVAILABLE; the others serve.
absl::StatusOr<Models> BuildModels(ServerMetrics* metrics) {
  Models models;
  models.registry = std::make_unique<ModelRegistry>();
  const std::string root = absl::GetFlag(FLAGS_model_repository);
  if (root.empty()) {
    absl::StatusOr<std::unique_ptr<Backend>> backend = MakeBackend();
    if (!backend.ok()) return backend.status();
    absl::StatusOr<std::unique_ptr<ServedModel>> model =
        ServedModel::Create(ModelOptionsFromFlags(), *std::move(backend), metrics, Clock::Real());
    if (!model.ok()) return model.status();
    if (absl::Status s = models.registry->Add(*std::move(model)); !s.ok()) return s;
    return models;
  }
  ModelRepository::Options options;
  options.root = root;
  options.control_mode = ControlModeFromFlags();
  options.startup_models = absl::GetFlag(FLAGS_load_model);
  options.poll_interval = absl::Seconds(absl::GetFlag(FLAGS_repository_poll_secs));
  options.model_defaults = ModelOptionsFromFlags();
  options.config_limits.max_staging_bytes = absl::GetFlag(FLAGS_max_staging_bytes);
  options.allow_links_outside_root = absl::GetFlag(FLAGS_allow_links_outside_repository);
  options.backend_factory = TorchBackendFactory(TorchOptionsFromFlags());
  options.server_device = *ParseDevice(absl::GetFlag(FLAGS_device));
  options.visible_gpus = &TorchBackend::VisibleCudaDevices;
  // Through the logger, so that they carry its stamp and format (text or JSON).
  options.warn = [](const std::string& warning) { spdlog::warn("{}", warning); };
  options.error = [](const std::string& error) { spdlog::error("{}", error); };
  absl::StatusOr<std::unique_ptr<ModelRepository>> repository =
      ModelRepository::Create(options, models.registry.get(), metrics, Clock::Real());
  if (!repository.ok()) return repository.status();
  models.repository = *std::move(repository);
  for (const ModelRepository::IndexEntry& entry : models.repository->Index(false)) {
    if (entry.state == ModelRepository::State::kUnavailable) {
      spdlog::error("model {} is unavailable: {}", entry.name, entry.reason);
    }
  }
  return models;
}

std::string DescribeModel(const ServedModel& model) {
  const ModelMetadata& metadata = model.metadata();
  return absl::StrCat(metadata.name, " version ", metadata.version, ": ", metadata.platform,
                      " on ", model.backend().DeviceDescription(), ", max_batch_size ",
                      metadata.max_batch_size, ", ", model.num_workers(), " workers x ",
                      model.batches_per_worker(),
                      model.batches_per_worker() == 1 ? " batch" : " batches");
}

std::string DescribeModels(const ModelRegistry& registry) {
  std::vector<std::string> models;
  for (const auto& model : registry.models()) models.push_back(DescribeModel(*model));
  return absl::StrJoin(models, "; ");
}

std::string DescribeAuth() {
  const std::string file = absl::GetFlag(FLAGS_auth_token_file);
  if (file.empty()) return "off (no token required)";
  return absl::StrCat("bearer token from '", file,
                      "' required on inference calls; gRPC health checking open");
}

// --check-config: every check serving would make, one report line each, no port bound.
int CheckConfig() {
  int failures = 0;
  auto report = [&](absl::string_view check, const absl::Status& status,
                    absl::string_view detail) {
    if (!status.ok()) ++failures;
    std::printf("%-5s %s: %s\n", status.ok() ? "ok" : "FAIL", std::string(check).c_str(),
                std::string(status.ok() ? detail : status.message()).c_str());
  };
  std::vector<std::string> problems = FlagProblems();
  for (const std::string& problem : problems) {
    report("flags", absl::InvalidArgumentError(problem), "");
  }
  if (problems.empty()) report("flags", absl::OkStatus(), "all values valid");

  absl::StatusOr<TlsOptions> tls = TlsOptionsFromFlags();
  report("tls", tls.status(), tls.ok() ? DescribeTls(*tls) : "");
  absl::StatusOr<InferenceService::Authorizer> auth = AuthorizerFromFlags();
  report("auth", auth.status(), DescribeAuth());

  if (!problems.empty()) {
    std::printf("skip  models: not loaded while flags are invalid\n");
  } else {
    ServerMetrics metrics(std::make_shared<prometheus::Registry>());
    absl::StatusOr<Models> models = BuildModels(&metrics);
    if (!models.ok()) {
      report("models", models.status(), "");
    } else {
      for (const auto& model : models->registry->models()) {
        report("model", absl::OkStatus(), DescribeModel(*model));
      }
      if (models->repository != nullptr) {
        for (const auto& entry : models->repository->Index(false)) {
          if (entry.state == ModelRepository::State::kUnavailable) {
            report("model", absl::FailedPreconditionError(
                                absl::StrCat(entry.name, " is unavailable: ", entry.reason)),
                   "");
          }
        }
        models->repository.reset();
      }
      models->registry->ShutdownAll();
    }
  }
  std::printf("%s: configuration %s\n", kProgram,
              failures == 0 ? "ok" : absl::StrCat("has ", failures, " problem(s)").c_str());
  return failures == 0 ? 0 : 1;
}

void QuietProtobufLogs() {
  // Protobuf logs every string field with invalid UTF-8 at ERROR level: a client could make the
  // server write a line per request. Such a request is answered with an error anyway.
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel level, const char* file, int line,
                                     const std::string& message) {
    if (level >= google::protobuf::LOGLEVEL_FATAL) {
      spdlog::critical("protobuf {}:{}: {}", file, line, message);
    } else {
      spdlog::debug("protobuf {}:{}: {}", file, line, message);
    }
  });
}

// How much longer than --shutdown_delay + --drain_timeout the process may take to stop: gRPC's
// own shutdown, the models' last batches, the metrics endpoint. Past it, the watchdog ends it.
constexpr absl::Duration kShutdownMargin = absl::Seconds(5);

// The stop signals (SIGTERM, SIGINT), taken from start-up on by a thread of their own, so that
// one that arrives while models load is not left waiting for them. The first starts the shutdown
// watchdog and wakes Serve(); a second exits at once.
struct StopSignals {
  absl::Notification received;
  std::atomic<int> signal{0};
  std::unique_ptr<ShutdownWatchdog> watchdog;
};

// Blocks the stop signals in this thread and every thread started after (so only sigwait() takes
// them) and starts the thread that takes them. Lives as long as the process: the threads use it.
StopSignals* HandleStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  auto* stop = new StopSignals();
  ShutdownWatchdog::Options options;
  // Flags are valid here (main() checked), so the bound is positive and finite.
  options.bound = absl::GetFlag(FLAGS_shutdown_delay) + absl::GetFlag(FLAGS_drain_timeout) +
                  kShutdownMargin;
  options.progress = [] { return std::string("loading models (start-up)"); };
  stop->watchdog = *ShutdownWatchdog::Create(std::move(options));
  std::thread([signals, stop] {
    int signal = 0;
    sigwait(&signals, &signal);
    stop->signal.store(signal);
    stop->watchdog->Start();
    stop->received.Notify();
    // A second signal while draining means "now": exit at once, without waiting for the drain.
    sigwait(&signals, &signal);
    std::fprintf(stderr, "%s: second signal; exiting without draining\n", kProgram);
    std::_Exit(1);
  }).detach();
  return stop;
}

// SIGHUP, and a change of the files (--credential_check_interval), reload the TLS files and the
// token file. SIGHUP's default action would end the process, so main() blocks it first thing and
// a thread of its own takes it, and looks at the files between signals. Until the server serves
// there is nothing to reload: a reload asked for while starting is done once serving starts.
struct ReloadSignals {
  absl::Mutex mu;
  // What a reload runs; set while the server serves. It runs under `mu`, so that clearing it
  // waits for a reload in progress (a few small files read; nothing else takes `mu`).
  std::function<void()> reload ABSL_GUARDED_BY(mu);
  // A reload was asked for while starting.
  bool pending ABSL_GUARDED_BY(mu) = false;
  // Serving has ended: nothing will reload any more.
  bool stopped ABSL_GUARDED_BY(mu) = false;
};

// Blocks SIGHUP in this thread and every thread started after it, so that only sigwait() takes
// it. Call before any thread starts.
void BlockReloadSignal() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
}

// Reloads now, or once serving if still starting; `why` starts the log line.
void RequestReload(ReloadSignals* reloads, const std::string& why) {
  absl::MutexLock lock(&reloads->mu);
  if (reloads->reload) {
    spdlog::info("{}: reloading the TLS and token files", why);
    reloads->reload();
  } else if (reloads->stopped) {
    spdlog::info("{} while stopping: nothing reloaded", why);
  } else if (!reloads->pending) {
    reloads->pending = true;
    spdlog::info("{} while starting: the TLS and token files are reloaded once serving", why);
  }
}

// The files a reload reads.
std::vector<std::string> CredentialFiles() {
  return {absl::GetFlag(FLAGS_grpc_tls_cert), absl::GetFlag(FLAGS_grpc_tls_key),
          absl::GetFlag(FLAGS_grpc_tls_client_ca), absl::GetFlag(FLAGS_auth_token_file)};
}

// Starts the thread that takes SIGHUP and, every --credential_check_interval, looks at the
// credential files. Lives as long as the process: the thread uses it.
ReloadSignals* HandleReloadSignals() {
  auto* reloads = new ReloadSignals();
  const absl::Duration interval = absl::GetFlag(FLAGS_credential_check_interval);
  // The first look, before the server reads the files: a change made while it starts is not
  // missed.
  std::thread([reloads, interval, watch = FileChangeWatch(CredentialFiles())]() mutable {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGHUP);
    const bool watching = !watch.empty() && interval > absl::ZeroDuration();
    const timespec timeout = absl::ToTimespec(interval);
    while (true) {
      const int signal =
          watching ? sigtimedwait(&signals, nullptr, &timeout) : sigwaitinfo(&signals, nullptr);
      if (signal == SIGHUP) {
        watch.Reset();  // The reload reads them as they are now.
        RequestReload(reloads, "received SIGHUP");
      } else if (watching && errno == EAGAIN && watch.Changed()) {
        RequestReload(reloads, "TLS or token file changed");
      }
    }
  }).detach();
  return reloads;
}

// Makes `reload` what a reload runs, and runs it now for one asked for while starting.
void StartReloading(ReloadSignals* reloads, std::function<void()> reload) {
  absl::MutexLock lock(&reloads->mu);
  reloads->reload = std::move(reload);
  if (reloads->pending) {
    reloads->pending = false;
    spdlog::info("reloading the TLS and token files, as asked while starting");
    reloads->reload();
  }
}

// Reloads do nothing from here on; returns once a reload in progress is done.
void StopReloading(ReloadSignals* reloads) {
  absl::MutexLock lock(&reloads->mu);
  reloads->reload = nullptr;
  reloads->stopped = true;
}

// Re-reads the TLS files and the token file the flags name. Each part that reads and validates
// replaces what `server` serves; one that does not leaves the old one serving, and the log says
// why (never with the token). `token` is the authorizer whose token the server's copy shares;
// null without --auth_token_file.
void ReloadCredentials(Server& server, BearerTokenAuthorizer* token) {
  if (!absl::GetFlag(FLAGS_grpc_tls_cert).empty()) {
    absl::StatusOr<TlsOptions> tls = TlsOptionsFromFlags();
    absl::Status status = tls.ok() ? server.ReloadTls(*tls) : tls.status();
    if (status.ok()) {
      spdlog::info("TLS reloaded: {}; new connections get it within {} s, open ones keep theirs",
                   server.DescribeServedTls(), RotatingTlsCredentials::kRefreshSeconds);
    } else {
      spdlog::error("TLS not reloaded, still serving {}: {}", server.DescribeServedTls(),
                    std::string(status.message()));
    }
  }
  if (token != nullptr) {
    const std::string file = absl::GetFlag(FLAGS_auth_token_file);
    absl::StatusOr<std::string> read = BearerTokenAuthorizer::ReadTokenFile(file);
    absl::Status status = read.ok() ? token->ReplaceToken(*std::move(read)) : read.status();
    if (status.ok()) {
      spdlog::info("auth: token reloaded from '{}'", file);
    } else {
      spdlog::error("auth: token not reloaded, the previous one stays: {}",
                    std::string(status.message()));
    }
  }
}

// Exit status when the gRPC listener stopped accepting connections.
constexpr int kListenerDeadExit = 4;

// Watches the gRPC listener on `port` (--grpc_listener_check_interval; null when off or where it
// cannot be watched) and ends the process with kListenerDeadExit if it stops accepting.
std::unique_ptr<ListenerWatch> WatchListener(int port) {
  const absl::Duration interval = absl::GetFlag(FLAGS_grpc_listener_check_interval);
  if (interval == absl::ZeroDuration()) return nullptr;
  ListenerWatch::Options options;
  options.port = port;
  options.interval = interval;
  options.on_dead = [](const std::string& why) {
    spdlog::critical("{}; exiting with status {} for the supervisor to restart the server", why,
                     kListenerDeadExit);
    spdlog::default_logger()->flush();
    std::fprintf(stderr, "%s: %s\n", kProgram, why.c_str());
    std::_Exit(kListenerDeadExit);
  };
  absl::StatusOr<std::unique_ptr<ListenerWatch>> watch = ListenerWatch::Start(std::move(options));
  if (!watch.ok()) {
    spdlog::warn("gRPC listener not watched: {}", std::string(watch.status().message()));
    return nullptr;
  }
  return *std::move(watch);
}

// Gives the malloc heaps' free pages back every --malloc_trim_interval; null when off or where
// there is nothing to trim.
std::unique_ptr<MallocTrimmer> TrimMalloc() {
  MallocTrimmer::Options options;
  options.interval = absl::GetFlag(FLAGS_malloc_trim_interval);
  if (options.interval == absl::ZeroDuration()) {
    spdlog::info("malloc trim: off (--malloc_trim_interval=0)");
    return nullptr;
  }
  absl::StatusOr<std::unique_ptr<MallocTrimmer>> trimmer = MallocTrimmer::Start(options);
  if (!trimmer.ok()) {
    spdlog::info("malloc trim: off: {}", std::string(trimmer.status().message()));
    return nullptr;
  }
  spdlog::info("malloc trim: free heap pages given back every {} (--malloc_trim_interval)",
               absl::FormatDuration(options.interval));
  return *std::move(trimmer);
}

// Serves until SIGTERM or SIGINT, then drains. Returns the exit status.
int Serve() {
  // Before any thread starts, so that every thread takes its arena under the cap.
  const std::string arenas = CapMallocArenas(absl::GetFlag(FLAGS_malloc_arena_max));
  StopSignals* stop = HandleStopSignals();
  ReloadSignals* reloads = HandleReloadSignals();

  auto fail = [](const absl::Status& status) {
    spdlog::error("not serving: {}", std::string(status.message()));
    std::fprintf(stderr, "%s: %s\n", kProgram, status.ToString().c_str());
    return 1;
  };
  spdlog::info("starting {}", kProgram);
  spdlog::info("{}", arenas);
  std::unique_ptr<MallocTrimmer> trimmer = TrimMalloc();
  // Every client connection holds a descriptor: take all the hard limit allows.
  if (absl::StatusOr<FileDescriptorLimit> fds = RaiseFileDescriptorLimit(); fds.ok()) {
    spdlog::info("open file limit: {} (was {}, hard limit {})", fds->after, fds->before, fds->hard);
  } else {
    spdlog::warn("open file limit not raised: {}", std::string(fds.status().message()));
  }
  absl::StatusOr<Server::Options> options = ServerOptionsFromFlags();
  if (!options.ok()) return fail(options.status());
  if (CudaIpcAvailable()) options->cuda_ipc_opener = OpenCudaIpcMemory;
  spdlog::info("TLS: {}", DescribeTls(options->tls));
  spdlog::info("auth: {}", DescribeAuth());

  auto metrics = std::make_unique<ServerMetrics>(std::make_shared<prometheus::Registry>());
  absl::StatusOr<Models> models = BuildModels(metrics.get());
  if (!models.ok()) return fail(models.status());
  if (stop->received.HasBeenNotified()) {
    spdlog::info("stop signal received while loading models; exiting without serving");
    models->repository.reset();
    models->registry->ShutdownAll();
    stop->watchdog->Disarm();
    return 0;
  }
  spdlog::info("models loaded: {}", DescribeModels(*models->registry));

  absl::StatusOr<std::unique_ptr<Server>> server =
      Server::Start(*options, std::move(models->registry), std::move(metrics), Clock::Real(),
                    std::move(models->repository));
  if (!server.ok()) return fail(server.status());
  spdlog::info("serving gRPC on {} (port {}), metrics on http://{}/metrics (port {})",
               options->grpc_address, (*server)->grpc_port(), options->metrics_address,
               (*server)->metrics_port());

  std::unique_ptr<ListenerWatch> listener_watch = WatchListener((*server)->grpc_port());

  Server* serving = server->get();
  stop->watchdog->set_progress([serving] { return serving->ShutdownProgress(); });
  // The authorizer inside the options shares its token with the server's copy.
  BearerTokenAuthorizer* token = options->authorizer.target<BearerTokenAuthorizer>();
  StartReloading(reloads, [serving, token] { ReloadCredentials(*serving, token); });

  stop->received.WaitForNotification();
  StopReloading(reloads);
  spdlog::info("received {}", stop->signal.load() == SIGTERM ? "SIGTERM" : "SIGINT");
  spdlog::info("draining: readiness off, new calls UNAVAILABLE, calls in flight get up to {}; "
               "the process exits within {} whatever is stuck",
               absl::FormatDuration(absl::GetFlag(FLAGS_drain_timeout)),
               absl::FormatDuration(absl::GetFlag(FLAGS_shutdown_delay) +
                                    absl::GetFlag(FLAGS_drain_timeout) + kShutdownMargin));
  listener_watch.reset();  // Before gRPC closes the listening socket it reads.
  (*server)->Shutdown(absl::GetFlag(FLAGS_drain_timeout));
  // Before the server goes: the watchdog's report reads it.
  stop->watchdog->Disarm();
  if (trimmer != nullptr) {
    spdlog::info("malloc trim: {} trims, the longest {}", trimmer->trims(),
                 absl::FormatDuration(trimmer->longest()));
  }
  spdlog::info("stopped");
  return 0;
}

}  // namespace
}  // namespace coalesce

int main(int argc, char** argv) {
  using coalesce::kProgram;
  // Before anything else, so that SIGHUP never ends the process.
  coalesce::BlockReloadSignal();
  coalesce::ParseFlagsOrExit(
      argc, argv, kProgram,
      "Serves models over the Open Inference Protocol (KServe v2 gRPC) with adaptive batching.\n"
      "Example: coalesce-server --flagfile=config/server.flags [--check-config]");

  const bool check = absl::GetFlag(FLAGS_check_config);
  std::vector<std::string> problems = coalesce::FlagProblems();
  if (!problems.empty() && !check) coalesce::ExitWithUsageError(kProgram, problems.front());

  coalesce::LoggingOptions logging;
  logging.level = absl::GetFlag(FLAGS_log_level);
  logging.format = absl::GetFlag(FLAGS_log_format);
  // --check-config prints a report; load-time info lines would bury it.
  if (check && logging.level == "info") logging.level = "warn";
  if (!coalesce::ConfigureLogging(logging).ok()) logging.level = "info";
  coalesce::QuietProtobufLogs();
  // gRPC and the executor lock abseil mutexes on every call; Debian's abseil checks each lock
  // for deadlock cycles, which cost ~3% of the server's CPU in a profile. Off in production.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  return check ? coalesce::CheckConfig() : coalesce::Serve();
}
