#include "server/flags.h"

#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "server/bearer_token_authorizer.h"
#include "server/file_contents.h"
#include "server/logging.h"
#include "server/tls.h"

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
ABSL_FLAG(std::string, model_repository, "",
          "A Triton-style model repository: DIR/<model>/config.pbtxt and "
          "DIR/<model>/<version>/model.pt. Empty: serve the built-in demo model ('demo').");
ABSL_FLAG(std::string, model_control_mode, "none",
          "none: load every model of --model_repository at start. explicit: load --load_model "
          "at start, then RepositoryModelLoad/Unload decide. poll: load every model and rescan "
          "every --repository_poll_secs.");
ABSL_FLAG(std::vector<std::string>, load_model, {},
          "Models to load at start in explicit mode (comma-separated; '*' for all).");
ABSL_FLAG(int, repository_poll_secs, 15, "Seconds between repository scans in poll mode.");
ABSL_FLAG(bool, allow_links_outside_repository, false,
          "Follow symbolic links in --model_repository that lead outside it (a version folder or "
          "model file linked to a shared store). Off: such a model fails to load, naming the "
          "link.");
ABSL_FLAG(int64_t, max_staging_bytes, int64_t{4} << 30,
          "A repository model whose max_batch_size x bytes of one sample (inputs and outputs of "
          "fixed dims) exceeds this is refused at load: each executor thread allocates that much "
          "staging up front (a model has --workers x --batches_per_worker threads).");
ABSL_FLAG(int, workers, 2,
          "Workers per model: copies of the model, each running one batch at a time.");
ABSL_FLAG(int, batches_per_worker, 0,
          "Batches each worker holds at once, each on a thread with buffers of its own: with 2, "
          "one batch's copies overlap the other's time on the model. 0: the device's choice (2 "
          "on CUDA, 1 on CPU and MPS).");
ABSL_FLAG(bool, exclusive_backend, false,
          "One worker of a model in its backend at a time: the others gather and scatter "
          "meanwhile. Helps a compute-bound model limited to few workers (each holds a copy of "
          "the weights); slows a model whose time is mostly copies. See docs/engine.md.");
ABSL_FLAG(bool, stage_fp16, true,
          "CUDA in fp16 only: FP32 tensors cross PCIe as FP16, narrowed and widened on the host "
          "while gathering and scattering (the same rounding the device applied). false: as "
          "FP32, converted on the device.");
ABSL_FLAG(bool, cuda_graphs, true,
          "CUDA only: run each batch size's copy-in, forward and copy-out from a CUDA graph "
          "captured after its first two batches (one launch instead of one per operation). A "
          "model that cannot be captured runs without graphs (logged).");
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
ABSL_FLAG(int, malloc_arena_max, 2,
          "glibc malloc arenas at most (0: glibc's default of 8 per core); MALLOC_ARENA_MAX in "
          "the environment wins. Few arenas keep resident memory from creeping on many cores.");
ABSL_FLAG(absl::Duration, malloc_trim_interval, absl::Seconds(10),
          "How often the free pages of glibc's malloc heaps are given back to the system "
          "(malloc_trim), so that resident memory follows what is in use instead of creeping "
          "up as free memory piles up in the heaps. 0: never (glibc's own policy).");
ABSL_FLAG(int, max_message_mib, 64, "Largest gRPC message accepted or sent, in MiB.");
ABSL_FLAG(int, max_shared_memory_regions, 64,
          "Most shared-memory regions (Triton's system and CUDA shared-memory extensions) "
          "registered at once; 0 turns the extension off.");
ABSL_FLAG(int, grpc_max_concurrent_streams, 128,
          "Calls in progress at once on one client connection (HTTP/2 streams); more wait in "
          "the client. Bounds the answers a client that does not read can make one connection "
          "hold.");
ABSL_FLAG(int, max_pending_per_stream, 64,
          "Requests of one ModelStreamInfer stream read but not yet answered on the wire; at "
          "this many the server reads no more from the stream until answers are written.");
ABSL_FLAG(absl::Duration, grpc_max_connection_idle, absl::Minutes(5),
          "Close a client connection with no call in progress for this long (clients reconnect "
          "when they next call). inf: never.");
ABSL_FLAG(absl::Duration, grpc_max_connection_age, absl::InfiniteDuration(),
          "Close a client connection after this long (calls in progress get 30s to finish), so "
          "that clients spread over replicas again. inf: never.");
ABSL_FLAG(absl::Duration, grpc_keepalive_time, absl::Minutes(1),
          "Ping a client connection quiet for this long; close it if the ping is not answered "
          "within --grpc_keepalive_timeout. inf: never.");
ABSL_FLAG(absl::Duration, grpc_keepalive_timeout, absl::Seconds(20),
          "How long a keepalive ping may go unanswered before the connection is closed.");
ABSL_FLAG(absl::Duration, grpc_listener_check_interval, absl::Seconds(1),
          "How often the gRPC listener's accept queue is read; connections left waiting for 10 "
          "readings in a row end the process with status 4 for its supervisor to restart it "
          "(gRPC 1.51 stops accepting for good after running out of file descriptors). 0: off.");
ABSL_FLAG(absl::Duration, grpc_handshake_timeout, absl::Seconds(20),
          "Close a client connection that has not completed its TLS and HTTP/2 handshake this "
          "long after it was accepted (a client sending a byte at a time, or nothing).");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(30),
          "On SIGTERM/SIGINT, how long calls in flight may take to finish (after "
          "--shutdown_delay) before they are cancelled.");
ABSL_FLAG(absl::Duration, shutdown_delay, absl::ZeroDuration(),
          "On SIGTERM/SIGINT, how long the gRPC endpoint keeps accepting calls (answering "
          "inference with UNAVAILABLE, health with NOT_SERVING) before its listener closes, so "
          "that load balancers stop routing here first. 5s suits Kubernetes.");
ABSL_FLAG(std::string, log_level, "info", "trace, debug, info, warn, error, critical or off.");
ABSL_FLAG(std::string, log_format, "text",
          "text: human-readable lines. json: one JSON object per line (time, level, logger, "
          "msg) for log collectors.");
ABSL_FLAG(std::string, trace_file, "",
          "File that request traces are appended to, one JSON line each, once TraceSetting turns "
          "tracing on (Triton's trace extension). Empty: tracing cannot be turned on.");
ABSL_FLAG(std::string, grpc_tls_cert, "",
          "PEM certificate chain of the gRPC endpoint. With --grpc_tls_key, serves TLS only.");
ABSL_FLAG(std::string, grpc_tls_key, "", "PEM private key of --grpc_tls_cert.");
ABSL_FLAG(std::string, grpc_tls_client_ca, "",
          "PEM CA certificates. Set: mutual TLS, every client must present a certificate signed "
          "by one of them (requires --grpc_tls_cert).");
ABSL_FLAG(std::string, auth_token_file, "",
          "File holding a secret token (surrounding whitespace ignored). Set: every inference "
          "call must carry the metadata 'authorization: Bearer <token>'; gRPC health checking "
          "stays open.");
ABSL_FLAG(absl::Duration, credential_check_interval, absl::Seconds(10),
          "How often the files of --grpc_tls_cert, --grpc_tls_key, --grpc_tls_client_ca and "
          "--auth_token_file are looked at (stat: inode, size, modification time); once a change "
          "has held for one more look they are reloaded as on SIGHUP. 0: only SIGHUP reloads.");
ABSL_FLAG(bool, check_config, false,
          "Also --check-config. Validate the flags, read the TLS and token files and load the "
          "models as serving would, bind no port, print a report and exit: 0 if all is well, "
          "1 otherwise.");

namespace coalesce {
namespace {

// host:port with a port in 0..65535 (a bracketed IPv6 host is fine); gRPC also takes
// unix:/path when `allow_unix`.
bool IsHostPort(const std::string& address, bool allow_unix) {
  if (allow_unix && absl::StartsWith(address, "unix:")) return address.size() > 5;
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  std::string host = address.substr(0, colon);
  if (host.find(':') != std::string::npos && !(host.front() == '[' && host.back() == ']')) {
    return false;
  }
  int port;
  return absl::SimpleAtoi(address.substr(colon + 1), &port) && port >= 0 && port <= 65535;
}

std::string OneOf(absl::string_view flag, const std::string& value,
                  absl::Span<const absl::string_view> allowed) {
  for (absl::string_view a : allowed) {
    if (value == a) return "";
  }
  std::string list;
  for (absl::string_view a : allowed) absl::StrAppend(&list, list.empty() ? "" : ", ", a);
  return absl::StrCat("--", flag, " must be one of ", list, "; got '", value, "'");
}

// How a flag spells one value of the option it sets.
template <typename T>
struct Spelling {
  absl::string_view text;
  T value;
};

constexpr Spelling<BatchPolicyKind> kBatchPolicies[] = {{"deadline", BatchPolicyKind::kDeadline},
                                                        {"fixed", BatchPolicyKind::kFixed}};
constexpr Spelling<ModelRepository::ControlMode> kControlModes[] = {
    {"none", ModelRepository::ControlMode::kNone},
    {"explicit", ModelRepository::ControlMode::kExplicit},
    {"poll", ModelRepository::ControlMode::kPoll}};

// The value `text` spells among `spellings`, or the problem in OneOf()'s words.
template <typename T, size_t N>
absl::StatusOr<T> Parse(absl::string_view flag, const std::string& text,
                        const Spelling<T> (&spellings)[N]) {
  std::vector<absl::string_view> allowed;
  for (const Spelling<T>& spelling : spellings) {
    if (spelling.text == text) return spelling.value;
    allowed.push_back(spelling.text);
  }
  return absl::InvalidArgumentError(OneOf(flag, text, allowed));
}

// The problem with a parsed flag, or "".
template <typename T>
std::string Problem(const absl::StatusOr<T>& parsed) {
  return parsed.ok() ? "" : std::string(parsed.status().message());
}

template <typename T>
std::string AtLeast(absl::string_view flag, T value, T minimum) {
  if (value >= minimum) return "";
  return absl::StrCat("--", flag, " must be >= ", minimum, ", got ", value);
}

// A positive duration; "inf" too when `infinite_allowed`.
std::string DurationPositive(absl::string_view flag, absl::Duration value, bool infinite_allowed) {
  if (value > absl::ZeroDuration() && (infinite_allowed || value != absl::InfiniteDuration())) {
    return "";
  }
  return absl::StrCat("--", flag, " must be a positive duration", infinite_allowed ? " or inf" : "",
                      " (like 5m), got ", absl::FormatDuration(value));
}

std::string DurationAtLeastZero(absl::string_view flag, absl::Duration value) {
  if (value >= absl::ZeroDuration() && value != absl::InfiniteDuration()) return "";
  return absl::StrCat("--", flag, " must be a finite duration >= 0 (like 30s), got ",
                      absl::FormatDuration(value));
}

}  // namespace

std::vector<std::string> FlagProblems() {
  std::vector<std::string> problems;
  auto add = [&](std::string problem) {
    if (!problem.empty()) problems.push_back(std::move(problem));
  };
  for (const char* flag : {"grpc_address", "metrics_address"}) {
    std::string value = flag == std::string("grpc_address") ? absl::GetFlag(FLAGS_grpc_address)
                                                            : absl::GetFlag(FLAGS_metrics_address);
    if (!IsHostPort(value, flag == std::string("grpc_address"))) {
      add(absl::StrCat("--", flag, " must be host:port with a port in 0..65535, got '", value,
                       "'"));
    }
  }
  add(OneOf("backend", absl::GetFlag(FLAGS_backend), {"torch", "echo"}));
  const absl::StatusOr<ModelRepository::ControlMode> control_mode =
      Parse("model_control_mode", absl::GetFlag(FLAGS_model_control_mode), kControlModes);
  add(Problem(control_mode));
  add(AtLeast("repository_poll_secs", absl::GetFlag(FLAGS_repository_poll_secs), 1));
  add(AtLeast<int64_t>("max_staging_bytes", absl::GetFlag(FLAGS_max_staging_bytes), 1));
  if (absl::GetFlag(FLAGS_model_repository).empty() &&
      (absl::GetFlag(FLAGS_model_control_mode) != "none" ||
       !absl::GetFlag(FLAGS_load_model).empty())) {
    add("--model_control_mode and --load_model need --model_repository, got none");
  }
  if (!absl::GetFlag(FLAGS_model_repository).empty() && absl::GetFlag(FLAGS_backend) != "torch") {
    add(absl::StrCat("--model_repository serves TorchScript models: --backend must be torch, got '",
                     absl::GetFlag(FLAGS_backend), "'"));
  }
  add(OneOf("device", absl::GetFlag(FLAGS_device), {"auto", "mps", "cuda", "cpu"}));
  add(OneOf("precision", absl::GetFlag(FLAGS_precision), {"auto", "fp16", "bf16", "fp32"}));
  if (!(absl::GetFlag(FLAGS_max_precision_error) > 0)) {
    add(absl::StrCat("--max_precision_error must be > 0, got ",
                     absl::GetFlag(FLAGS_max_precision_error)));
  }
  add(AtLeast("workers", absl::GetFlag(FLAGS_workers), 1));
  add(AtLeast("batches_per_worker", absl::GetFlag(FLAGS_batches_per_worker), 0));
  const int64_t max_batch = absl::GetFlag(FLAGS_max_batch_size);
  add(AtLeast<int64_t>("max_batch_size", max_batch, 1));
  add(Problem(Parse("batch_policy", absl::GetFlag(FLAGS_batch_policy), kBatchPolicies)));
  add(AtLeast<int64_t>("max_queue_delay_us", absl::GetFlag(FLAGS_max_queue_delay_us), 0));
  for (const std::string& size : absl::GetFlag(FLAGS_preferred_batch_sizes)) {
    int64_t value;
    if (!absl::SimpleAtoi(size, &value) || value < 1 || value > max_batch) {
      add(absl::StrCat("--preferred_batch_sizes must hold integers in 1..--max_batch_size (",
                       max_batch, "), got '", size, "'"));
    }
  }
  add(AtLeast<int64_t>("default_timeout_us", absl::GetFlag(FLAGS_default_timeout_us), 0));
  const int levels = absl::GetFlag(FLAGS_priority_levels);
  add(AtLeast("priority_levels", levels, 1));
  const int priority = absl::GetFlag(FLAGS_default_priority);
  if (priority < 1 || priority > levels) {
    add(absl::StrCat("--default_priority must be in 1..--priority_levels (", levels, "), got ",
                     priority));
  }
  add(AtLeast<int64_t>("max_queue_size", absl::GetFlag(FLAGS_max_queue_size), 1));
  add(AtLeast("malloc_arena_max", absl::GetFlag(FLAGS_malloc_arena_max), 0));
  const int mib = absl::GetFlag(FLAGS_max_message_mib);
  if (mib < 1 || mib > 2047) {
    add(absl::StrCat("--max_message_mib must be in 1..2047, got ", mib));
  }
  const int regions = absl::GetFlag(FLAGS_max_shared_memory_regions);
  if (regions < 0 || regions > 65536) {
    add(absl::StrCat("--max_shared_memory_regions must be in 0..65536, got ", regions));
  }
  add(AtLeast("grpc_max_concurrent_streams", absl::GetFlag(FLAGS_grpc_max_concurrent_streams), 1));
  add(AtLeast("max_pending_per_stream", absl::GetFlag(FLAGS_max_pending_per_stream), 1));
  add(DurationPositive("grpc_max_connection_idle", absl::GetFlag(FLAGS_grpc_max_connection_idle),
                       true));
  add(DurationPositive("grpc_max_connection_age", absl::GetFlag(FLAGS_grpc_max_connection_age),
                       true));
  add(DurationPositive("grpc_keepalive_time", absl::GetFlag(FLAGS_grpc_keepalive_time), true));
  add(DurationPositive("grpc_keepalive_timeout", absl::GetFlag(FLAGS_grpc_keepalive_timeout),
                       false));
  if (const absl::Duration check = absl::GetFlag(FLAGS_grpc_listener_check_interval);
      check != absl::ZeroDuration() && check < absl::Milliseconds(100)) {
    // 10 readings make the window: shorter, a burst of connections could look like a dead
    // listener.
    add(absl::StrCat("--grpc_listener_check_interval must be 0 (off) or at least 100ms, got ",
                     absl::FormatDuration(check)));
  }
  add(DurationPositive("grpc_handshake_timeout", absl::GetFlag(FLAGS_grpc_handshake_timeout),
                       false));
  add(DurationAtLeastZero("drain_timeout", absl::GetFlag(FLAGS_drain_timeout)));
  add(DurationAtLeastZero("malloc_trim_interval", absl::GetFlag(FLAGS_malloc_trim_interval)));
  add(DurationAtLeastZero("credential_check_interval",
                          absl::GetFlag(FLAGS_credential_check_interval)));
  add(DurationAtLeastZero("shutdown_delay", absl::GetFlag(FLAGS_shutdown_delay)));
  if (absl::Status s = ValidateLogLevel(absl::GetFlag(FLAGS_log_level)); !s.ok()) {
    add(std::string(s.message()));
  }
  if (absl::Status s = ValidateLogFormat(absl::GetFlag(FLAGS_log_format)); !s.ok()) {
    add(std::string(s.message()));
  }
  const bool cert = !absl::GetFlag(FLAGS_grpc_tls_cert).empty();
  const bool key = !absl::GetFlag(FLAGS_grpc_tls_key).empty();
  if (cert && !key) add("--grpc_tls_cert needs --grpc_tls_key (its private key), got none");
  if (key && !cert) add("--grpc_tls_key needs --grpc_tls_cert (its certificate), got none");
  if (!absl::GetFlag(FLAGS_grpc_tls_client_ca).empty() && !cert) {
    add("--grpc_tls_client_ca (mutual TLS) needs --grpc_tls_cert and --grpc_tls_key, got "
        "neither");
  }
  return problems;
}

ServedModel::Options ModelOptionsFromFlags() {
  ServedModel::Options options;
  options.num_workers = absl::GetFlag(FLAGS_workers);
  options.batches_per_worker = absl::GetFlag(FLAGS_batches_per_worker);
  options.exclusive_backend = absl::GetFlag(FLAGS_exclusive_backend);
  options.max_queue_size = absl::GetFlag(FLAGS_max_queue_size);
  options.batch_policy = *Parse("batch_policy", absl::GetFlag(FLAGS_batch_policy), kBatchPolicies);
  options.max_queue_delay = absl::Microseconds(absl::GetFlag(FLAGS_max_queue_delay_us));
  for (const std::string& size : absl::GetFlag(FLAGS_preferred_batch_sizes)) {
    int64_t value = 0;
    if (absl::SimpleAtoi(size, &value)) options.preferred_batch_sizes.push_back(value);
  }
  const int64_t timeout_us = absl::GetFlag(FLAGS_default_timeout_us);
  options.scheduling.default_timeout =
      timeout_us > 0 ? absl::Microseconds(timeout_us) : absl::InfiniteDuration();
  options.scheduling.priority_levels = absl::GetFlag(FLAGS_priority_levels);
  options.scheduling.default_priority = absl::GetFlag(FLAGS_default_priority);
  return options;
}

ModelRepository::ControlMode ControlModeFromFlags() {
  return *Parse("model_control_mode", absl::GetFlag(FLAGS_model_control_mode), kControlModes);
}

absl::StatusOr<TlsOptions> TlsOptionsFromFlags() {
  TlsOptions tls;
  struct PemFlag {
    const char* flag;
    std::string path;
    std::string* pem;
  };
  for (const PemFlag& f :
       {PemFlag{"--grpc_tls_cert", absl::GetFlag(FLAGS_grpc_tls_cert), &tls.cert_chain_pem},
        PemFlag{"--grpc_tls_key", absl::GetFlag(FLAGS_grpc_tls_key), &tls.private_key_pem},
        PemFlag{"--grpc_tls_client_ca", absl::GetFlag(FLAGS_grpc_tls_client_ca),
                &tls.client_ca_pem}}) {
    if (f.path.empty()) continue;
    absl::StatusOr<std::string> pem = ReadFileContents(f.path, f.flag);
    if (!pem.ok()) return pem.status();
    if (pem->empty()) {
      return absl::InvalidArgumentError(absl::StrCat(f.flag, ": '", f.path, "' is empty"));
    }
    *f.pem = *std::move(pem);
  }
  if (absl::Status s = ValidateTls(tls); !s.ok()) {
    std::string files = absl::StrCat("--grpc_tls_cert '", absl::GetFlag(FLAGS_grpc_tls_cert),
                                     "', --grpc_tls_key '", absl::GetFlag(FLAGS_grpc_tls_key), "'");
    if (tls.mutual()) {
      absl::StrAppend(&files, ", --grpc_tls_client_ca '", absl::GetFlag(FLAGS_grpc_tls_client_ca),
                      "'");
    }
    return absl::Status(s.code(), absl::StrCat(s.message(), " (", files, ")"));
  }
  return tls;
}

absl::StatusOr<InferenceService::Authorizer> AuthorizerFromFlags() {
  const std::string token_file = absl::GetFlag(FLAGS_auth_token_file);
  if (token_file.empty()) return InferenceService::Authorizer();
  absl::StatusOr<std::string> token = BearerTokenAuthorizer::ReadTokenFile(token_file);
  if (!token.ok()) return token.status();
  absl::StatusOr<BearerTokenAuthorizer> authorizer =
      BearerTokenAuthorizer::Create(*std::move(token));
  if (!authorizer.ok()) return authorizer.status();
  return InferenceService::Authorizer(*std::move(authorizer));
}

absl::StatusOr<Server::Options> ServerOptionsFromFlags() {
  Server::Options options;
  options.grpc_address = absl::GetFlag(FLAGS_grpc_address);
  options.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_mib) << 20;
  options.shutdown_delay = absl::GetFlag(FLAGS_shutdown_delay);
  options.connections.max_concurrent_streams = absl::GetFlag(FLAGS_grpc_max_concurrent_streams);
  options.connections.max_pending_per_stream = absl::GetFlag(FLAGS_max_pending_per_stream);
  options.connections.max_connection_idle = absl::GetFlag(FLAGS_grpc_max_connection_idle);
  options.connections.max_connection_age = absl::GetFlag(FLAGS_grpc_max_connection_age);
  options.connections.keepalive_time = absl::GetFlag(FLAGS_grpc_keepalive_time);
  options.connections.keepalive_timeout = absl::GetFlag(FLAGS_grpc_keepalive_timeout);
  options.connections.handshake_timeout = absl::GetFlag(FLAGS_grpc_handshake_timeout);
  options.trace.file = absl::GetFlag(FLAGS_trace_file);
  options.max_shared_memory_regions = absl::GetFlag(FLAGS_max_shared_memory_regions);
  absl::StatusOr<TlsOptions> tls = TlsOptionsFromFlags();
  if (!tls.ok()) return tls.status();
  options.tls = *std::move(tls);
  absl::StatusOr<InferenceService::Authorizer> authorizer = AuthorizerFromFlags();
  if (!authorizer.ok()) return authorizer.status();
  options.authorizer = *std::move(authorizer);
  return options;
}

}  // namespace coalesce
