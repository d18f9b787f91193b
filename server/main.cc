// coalesce-server: serves models over the Open Inference Protocol (gRPC) and exposes Prometheus
// metrics. With no model repository it serves the built-in demo model.
//
//   coalesce-server --flagfile=config/server.flags
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "google/protobuf/stubs/logging.h"
#include "core/demo_model.h"
#include "core/echo_backend.h"
#include "core/model_registry.h"
#include "core/torch/torch_backend.h"
#include "server/server.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, grpc_address, "127.0.0.1:8001",
          "host:port for the gRPC endpoint. Loopback by default; 0.0.0.0:8001 serves every "
          "interface.");
ABSL_FLAG(std::string, metrics_address, "127.0.0.1:8002",
          "host:port for the Prometheus endpoint (GET /metrics).");
ABSL_FLAG(std::string, backend, "torch",
          "torch: the demo model run by LibTorch. echo: a demo-shaped model that returns its "
          "input (measures everything but the model).");
ABSL_FLAG(std::string, device, "auto", "auto (MPS, then CUDA, then CPU), mps, cuda or cpu.");
ABSL_FLAG(std::string, precision, "auto",
          "auto (fp16 on MPS/CUDA, fp32 on CPU), fp16, bf16 or fp32. The wire stays FP32; "
          "inputs are converted on the device.");
ABSL_FLAG(double, max_precision_error, 1e-2,
          "Refuse to serve if the model on its device and precision differs from its fp32 CPU "
          "reference by more than this (max |difference| / max |reference|, random inputs).");
ABSL_FLAG(int, workers, 2, "Executor worker threads per model, each running one batch at a time.");
ABSL_FLAG(int64_t, max_batch_size, 256, "Largest batch, in samples, of the demo model.");
ABSL_FLAG(std::string, batch_policy, "deadline",
          "deadline: batches sized by a latency model to meet each request's deadline, started "
          "as soon as a worker is free, hopeless requests shed. fixed: the classic rule, close "
          "when full or when the oldest request waited --max_queue_delay_us.");
ABSL_FLAG(int64_t, max_queue_delay_us, 0,
          "Longest a request waits for others to join its batch, in microseconds. 0: no "
          "waiting beyond a free worker (deadline policy only).");
ABSL_FLAG(std::vector<std::string>, preferred_batch_sizes, {},
          "Comma-separated batch sizes to close early at while waiting (deadline policy with "
          "--max_queue_delay_us > 0).");
ABSL_FLAG(int64_t, default_timeout_us, 0,
          "Deadline of requests that carry neither a gRPC deadline nor a 'timeout' parameter, in "
          "microseconds. 0: none (latency target only).");
ABSL_FLAG(int, priority_levels, 1,
          "Priority levels; a request's 'priority' parameter is 1 (highest) .. this.");
ABSL_FLAG(int, default_priority, 1, "Priority of requests without a 'priority' parameter.");
ABSL_FLAG(int64_t, max_queue_size, 4096,
          "Requests queued per model before new ones are refused with RESOURCE_EXHAUSTED.");
ABSL_FLAG(int, max_message_mib, 64, "Largest gRPC message accepted or sent, in MiB.");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(30),
          "On SIGTERM/SIGINT, how long calls in flight may take to finish before they are "
          "cancelled.");
ABSL_FLAG(std::string, log_level, "info", "trace, debug, info, warn, error or off.");

namespace coalesce {
namespace {

absl::StatusOr<std::unique_ptr<Backend>> MakeBackend() {
  const std::string backend = absl::GetFlag(FLAGS_backend);
  const int64_t max_batch = absl::GetFlag(FLAGS_max_batch_size);
  if (backend == "echo") {
    auto echo = EchoBackend::Create(DemoModel::Metadata(max_batch));
    if (!echo.ok()) return echo.status();
    return std::unique_ptr<Backend>(*std::move(echo));
  }
  if (backend == "torch") {
    TorchBackend::Options options;
    options.device = absl::GetFlag(FLAGS_device);
    options.precision = absl::GetFlag(FLAGS_precision);
    options.num_workers = absl::GetFlag(FLAGS_workers);
    options.max_precision_error = absl::GetFlag(FLAGS_max_precision_error);
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

absl::StatusOr<std::unique_ptr<Server>> StartServer() {
  auto metrics = std::make_unique<ServerMetrics>(std::make_shared<prometheus::Registry>());
  absl::StatusOr<std::unique_ptr<Backend>> backend = MakeBackend();
  if (!backend.ok()) return backend.status();
  spdlog::info("model demo: {} backend on {}, max_batch_size {}", absl::GetFlag(FLAGS_backend),
               (*backend)->DeviceDescription(), (*backend)->metadata().max_batch_size);

  ServedModel::Options model_options;
  model_options.num_workers = absl::GetFlag(FLAGS_workers);
  model_options.max_queue_size = absl::GetFlag(FLAGS_max_queue_size);
  model_options.batch_policy = absl::GetFlag(FLAGS_batch_policy);
  model_options.max_queue_delay = absl::Microseconds(absl::GetFlag(FLAGS_max_queue_delay_us));
  for (const std::string& size : absl::GetFlag(FLAGS_preferred_batch_sizes)) {
    int64_t value;
    if (!absl::SimpleAtoi(size, &value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--preferred_batch_sizes: '", size, "' is not an integer"));
    }
    model_options.preferred_batch_sizes.push_back(value);
  }
  int64_t timeout_us = absl::GetFlag(FLAGS_default_timeout_us);
  model_options.scheduling.default_timeout =
      timeout_us > 0 ? absl::Microseconds(timeout_us) : absl::InfiniteDuration();
  model_options.scheduling.priority_levels = absl::GetFlag(FLAGS_priority_levels);
  model_options.scheduling.default_priority = absl::GetFlag(FLAGS_default_priority);
  absl::StatusOr<std::unique_ptr<ServedModel>> model =
      ServedModel::Create(model_options, *std::move(backend), metrics.get(), Clock::Real());
  if (!model.ok()) return model.status();
  auto registry = std::make_unique<ModelRegistry>();
  if (absl::Status s = registry->Add(*std::move(model)); !s.ok()) return s;

  Server::Options options;
  options.grpc_address = absl::GetFlag(FLAGS_grpc_address);
  options.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_mib) << 20;
  return Server::Start(options, std::move(registry), std::move(metrics), Clock::Real());
}

}  // namespace
}  // namespace coalesce

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Serves models over the Open Inference Protocol (KServe v2 gRPC) with adaptive batching.\n"
      "Example: coalesce-server --flagfile=config/server.flags");
  // --help lists this file's flags (abseil's default looks for a file named after the binary).
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "server/main.cc");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);
  absl::ParseCommandLine(argc, argv);
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
  // gRPC and the executor lock abseil mutexes on every call; Debian's abseil checks each lock
  // for deadlock cycles, which cost ~3% of the server's CPU in a profile. Off in production.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  spdlog::set_level(spdlog::level::from_str(absl::GetFlag(FLAGS_log_level)));

  // Signals are taken synchronously by sigwait() below; block them before any thread starts so
  // that every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<coalesce::Server>> server = coalesce::StartServer();
  if (!server.ok()) {
    std::fprintf(stderr, "coalesce-server: %s\n", server.status().ToString().c_str());
    return 1;
  }
  spdlog::info("serving gRPC on {} (port {}), metrics on http://{}/metrics (port {})",
               absl::GetFlag(FLAGS_grpc_address), (*server)->grpc_port(),
               absl::GetFlag(FLAGS_metrics_address), (*server)->metrics_port());

  int signal = 0;
  sigwait(&signals, &signal);
  // A second signal while draining means "now": exit at once, without waiting for the drain.
  std::thread([signals] {
    int again = 0;
    sigwait(&signals, &again);
    std::fprintf(stderr, "coalesce-server: second signal; exiting without draining\n");
    std::_Exit(1);
  }).detach();
  spdlog::info("received {}; draining for up to {}", signal == SIGTERM ? "SIGTERM" : "SIGINT",
               absl::FormatDuration(absl::GetFlag(FLAGS_drain_timeout)));
  (*server)->Shutdown(absl::GetFlag(FLAGS_drain_timeout));
  spdlog::info("stopped");
  return 0;
}
