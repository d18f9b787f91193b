// coalesce-bench: a load generator for any server that speaks the Open Inference Protocol
// (KServe v2 gRPC), in the spirit of Triton's perf_analyzer.
//
//   coalesce-bench --address=127.0.0.1:8001 --model=demo --concurrency=1,8,64,256
//   coalesce-bench --rate=500,1000,2000 --deadline_ms=100 --csv --label=coalesce-b32
//   coalesce-bench --model=encoder --variable_dim=16:256 --concurrency=64   # mixed lengths
//
// Each level (a concurrency or a rate) gets a warm-up and a measurement window; one row per
// level goes to stdout as a table, CSV or JSON. Exit status: 0 when the run completed (even if
// calls failed; failures are counted by code), 2 for bad flags, 1 when the server cannot be
// reached or the model's metadata cannot be read.
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "client/arrival_schedule.h"
#include "client/client_security_flags.h"
#include "client/length_range.h"
#include "client/level_list.h"
#include "client/load_generator.h"
#include "client/result_writer.h"
#include "common/flag_parsing.h"

ABSL_FLAG(std::string, address, "127.0.0.1:8001", "Server address, host:port.");
ABSL_FLAG(std::string, model, "demo", "Model name.");
ABSL_FLAG(std::string, model_version, "", "Model version; empty lets the server choose.");
ABSL_FLAG(int64_t, batch, 1, "Samples per request: the size of each input's first -1 dimension.");
ABSL_FLAG(std::string, variable_dim, "1",
          "Size of every later -1 dimension of the inputs: a token input's length, for example. "
          "N: every request N. MIN:MAX (e.g. 16:256): each request's size drawn uniformly from "
          "MIN..MAX, both included, from --seed; one request per length is built up front, "
          "at most 1024 lengths. A range cannot go with --shared_memory or --write_request, "
          "which carry one request shape.");
ABSL_FLAG(std::string, concurrency, "",
          "Closed loop: comma-separated numbers of outstanding requests, one level each, e.g. "
          "1,8,64,256. Give exactly one of --concurrency and --rate.");
ABSL_FLAG(std::string, rate, "",
          "Open loop: comma-separated mean request rates per second, one level each, with "
          "Poisson arrivals, e.g. 100,1000. Give exactly one of --concurrency and --rate.");
ABSL_FLAG(double, warmup_s, 2, "Seconds of load before each level's measurement window.");
ABSL_FLAG(double, duration_s, 5,
          "Seconds of each level's measurement window; only calls completing inside it count.");
ABSL_FLAG(int64_t, deadline_ms, 0, "gRPC deadline of each request in milliseconds; 0 = none.");
ABSL_FLAG(int, channels, 0,
          "gRPC channels (each its own TCP connection) that requests are spread over; 0 chooses "
          "per level as h2load's wrapper (bench/h2load_grpc.sh) does: min(concurrency, 16), "
          "or 16 with --rate.");
ABSL_FLAG(int, threads, 0,
          "Client threads receiving completions (one completion queue each); with --rate, as "
          "many again send on schedule. 0 chooses per level: min(channels, 8).");
ABSL_FLAG(uint64_t, seed, 1, "Seed of the input values and of the open-loop arrival times.");
ABSL_FLAG(bool, json, false, "Print one JSON array instead of the table.");
ABSL_FLAG(bool, csv, false, "Print CSV (a header, then one line per level) instead of the table.");
ABSL_FLAG(std::string, label, "",
          "Name of this configuration, printed in every row so scripts can join runs "
          "(default: the model name).");
ABSL_FLAG(bool, shared_memory, false,
          "Send inputs and receive outputs through system shared memory (Triton's extension) "
          "instead of the message: each request in flight its own slice of one /dev/shm "
          "region, registered before each level and unregistered after it. The server must run "
          "on this machine.");
ABSL_FLAG(std::string, write_request, "",
          "Write the request every call sends, as a gRPC-framed message body, to this file "
          "after connecting (e.g. for h2load -d, so both generators send the same bytes). "
          "Without --concurrency or --rate, exit after writing it.");
ABSL_FLAG(int, max_requests_in_flight, 1024,
          "Open loop: a send due while this many requests are outstanding is skipped and "
          "counted in the 'skipped' column.");

namespace {

using coalesce::LevelResult;
using coalesce::LoadGenerator;
using coalesce::LoadMode;
using coalesce::ResultWriter;

constexpr int kExitBadFlags = 2;
constexpr int kExitServerFailed = 1;

struct Plan {
  LoadMode mode = LoadMode::kConcurrency;
  std::vector<double> levels;
  LoadGenerator::Options options;
  ResultWriter::Format format = ResultWriter::Format::kTable;
  std::string label;
  std::string write_request;
};

absl::StatusOr<Plan> PlanFromFlags() {
  Plan plan;
  const std::string concurrency = absl::GetFlag(FLAGS_concurrency);
  const std::string rate = absl::GetFlag(FLAGS_rate);
  plan.write_request = absl::GetFlag(FLAGS_write_request);
  const bool only_write = concurrency.empty() && rate.empty() && !plan.write_request.empty();
  if (concurrency.empty() == rate.empty() && !only_write) {
    return absl::InvalidArgumentError(
        "give exactly one of --concurrency (closed loop, e.g. --concurrency=1,8,64) and --rate "
        "(open loop, requests/s, e.g. --rate=100,1000)");
  }
  plan.mode = concurrency.empty() ? LoadMode::kRate : LoadMode::kConcurrency;
  if (!only_write) {
    absl::StatusOr<std::vector<double>> levels =
        plan.mode == LoadMode::kConcurrency
            ? coalesce::ParseLevelList("concurrency", concurrency, /*integers=*/true)
            : coalesce::ParseLevelList("rate", rate, /*integers=*/false);
    if (!levels.ok()) return levels.status();
    plan.levels = *std::move(levels);
  }
  if (!plan.write_request.empty() && absl::GetFlag(FLAGS_shared_memory)) {
    return absl::InvalidArgumentError(
        "--write_request writes the request with its tensors in the message; drop "
        "--shared_memory");
  }
  absl::StatusOr<coalesce::LengthRange> variable_dim =
      coalesce::ParseLengthRange("variable_dim", absl::GetFlag(FLAGS_variable_dim));
  if (!variable_dim.ok()) return variable_dim.status();
  if (!plan.write_request.empty() && !variable_dim->single()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--write_request writes one request, of one length; give --variable_dim one length, "
        "not ", coalesce::LengthRangeText(*variable_dim)));
  }

  if (absl::GetFlag(FLAGS_json) && absl::GetFlag(FLAGS_csv)) {
    return absl::InvalidArgumentError("give at most one of --json and --csv");
  }
  if (absl::GetFlag(FLAGS_json)) plan.format = ResultWriter::Format::kJson;
  if (absl::GetFlag(FLAGS_csv)) plan.format = ResultWriter::Format::kCsv;

  LoadGenerator::Options& o = plan.options;
  o.address = absl::GetFlag(FLAGS_address);
  absl::StatusOr<coalesce::ClientSecurity> loaded =
      coalesce::ClientSecurity::Load(coalesce::ClientSecurityOptionsFromFlags());
  if (!loaded.ok()) return loaded.status();
  o.security = std::make_shared<const coalesce::ClientSecurity>(*std::move(loaded));
  o.model = absl::GetFlag(FLAGS_model);
  o.model_version = absl::GetFlag(FLAGS_model_version);
  o.batch = absl::GetFlag(FLAGS_batch);
  o.variable_dim = *variable_dim;
  o.channels = absl::GetFlag(FLAGS_channels);
  o.threads = absl::GetFlag(FLAGS_threads);
  o.seed = absl::GetFlag(FLAGS_seed);
  o.max_requests_in_flight = absl::GetFlag(FLAGS_max_requests_in_flight);
  o.shared_memory = absl::GetFlag(FLAGS_shared_memory);
  const double warmup_s = absl::GetFlag(FLAGS_warmup_s);
  const double duration_s = absl::GetFlag(FLAGS_duration_s);
  if (!(warmup_s >= 0) || warmup_s > 86400) {
    return absl::InvalidArgumentError(
        absl::StrCat("--warmup_s must be in [0, 86400]; got ", warmup_s));
  }
  if (!(duration_s > 0) || duration_s > 86400) {
    return absl::InvalidArgumentError(
        absl::StrCat("--duration_s must be in (0, 86400]; got ", duration_s));
  }
  o.warmup = absl::Seconds(warmup_s);
  o.duration = absl::Seconds(duration_s);
  const int64_t deadline_ms = absl::GetFlag(FLAGS_deadline_ms);
  if (deadline_ms < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--deadline_ms must be >= 0 (0 = none); got ", deadline_ms));
  }
  o.deadline = absl::Milliseconds(deadline_ms);
  // The remaining options carry their flag's name, so the message names the flag.
  if (absl::Status status = LoadGenerator::ValidateOptions(o); !status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--", status.message()));
  }
  if (plan.mode == LoadMode::kRate) {
    const int64_t most = coalesce::ArrivalSchedule::Options().max_expected_arrivals;
    for (double rate : plan.levels) {
      if (rate * (warmup_s + duration_s) > static_cast<double>(most)) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "--rate=%g over --warmup_s + --duration_s = %g s needs more than %d send times; "
            "shorten the run or lower the rate",
            rate, warmup_s + duration_s, most));
      }
    }
  }
  plan.label = absl::GetFlag(FLAGS_label);
  if (plan.label.empty()) plan.label = o.model;
  return plan;
}

// Progress on stderr: a redrawn bar on a terminal, otherwise one line per finished level.
class ProgressReporter {
 public:
  ProgressReporter() : tty_(isatty(STDERR_FILENO) == 1) {}

  void Update(const LoadGenerator::Progress& p) {
    if (!tty_) return;
    const double elapsed_s = absl::ToDoubleSeconds(p.elapsed);
    double rps = 0;
    if (elapsed_s > last_elapsed_s_ && p.completed >= last_completed_) {
      rps = (p.completed - last_completed_) / (elapsed_s - last_elapsed_s_);
    }
    last_elapsed_s_ = elapsed_s;
    last_completed_ = p.completed;
    const double total_s = absl::ToDoubleSeconds(p.total);
    constexpr int kWidth = 30;
    const int filled =
        total_s > 0 ? static_cast<int>(std::min(1.0, elapsed_s / total_s) * kWidth) : kWidth;
    const char* phase = p.phase == LoadGenerator::Progress::Phase::kWarmup    ? "warmup "
                        : p.phase == LoadGenerator::Progress::Phase::kMeasure ? "measure"
                                                                              : "drain  ";
    std::fprintf(stderr, "\r\033[K%s %g %s [%s%s] %5.1f/%.1f s %10.0f req/s",
                 coalesce::LoadModeName(p.mode), p.level, phase, std::string(filled, '#').c_str(),
                 std::string(kWidth - filled, '.').c_str(), elapsed_s, total_s, rps);
    std::fflush(stderr);
  }

  // Called when a level has finished, before its row is printed.
  void LevelDone(const LevelResult& r) {
    last_elapsed_s_ = 0;
    last_completed_ = 0;
    if (tty_) {
      std::fprintf(stderr, "\r\033[K");
    } else {
      std::fprintf(stderr, "coalesce-bench: %s %g: %.1f req/s, %lld ok, %lld errors\n",
                   coalesce::LoadModeName(r.mode), r.level, r.requests_per_s(),
                   static_cast<long long>(r.statuses.ok()),
                   static_cast<long long>(r.statuses.errors()));
    }
    std::fflush(stderr);
  }

 private:
  const bool tty_;
  double last_elapsed_s_ = 0;
  int64_t last_completed_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  coalesce::ParseFlagsOrExit(
      argc, argv, "coalesce-bench",
      "Load generator for servers that speak the Open Inference Protocol (KServe v2 gRPC).\n"
      "Closed loop: coalesce-bench --address=127.0.0.1:8001 --model=demo --concurrency=1,8,64\n"
      "Open loop:   coalesce-bench --rate=100,1000 --deadline_ms=100 --csv\n"
      "Mixed token lengths: coalesce-bench --model=encoder --variable_dim=16:256 "
      "--concurrency=64\n"
      "Per level: req/s and the latency percentiles count the OK calls that completed inside "
      "the measurement window; errors are counted by gRPC code; cpu is the client's own CPU "
      "use in cores. Exit status 0 when the run completed, 2 for bad flags, 1 when the server "
      "or the model's metadata cannot be reached.");
  absl::StatusOr<Plan> plan = PlanFromFlags();
  if (!plan.ok()) {
    std::cerr << "coalesce-bench: " << plan.status().message() << "\n";
    return kExitBadFlags;
  }

  // Debian's abseil is built with assertions, which turns on absl::Mutex deadlock detection;
  // gRPC locks absl mutexes on every call, and the cycle bookkeeping cost ~3% of the client's
  // CPU in a profile against the echo server. A load generator wants none of it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // gRPC reads each response into fresh buffers of tens of KiB and frees them right away. With
  // glibc's defaults a thread's heap gives those pages back (madvise) as soon as its top is
  // free and faults them in again on the next read: TLB flushes and page faults were the
  // largest items of the client's profile against the echo server. A load generator keeps its
  // memory instead (the setting is process-wide, every arena included).
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  mallopt(M_MMAP_THRESHOLD, 32 << 20);

  ProgressReporter progress;
  plan->options.on_progress = [&progress](const LoadGenerator::Progress& p) { progress.Update(p); };
  absl::StatusOr<std::unique_ptr<LoadGenerator>> generator = LoadGenerator::Create(plan->options);
  if (!generator.ok()) {
    std::cerr << "coalesce-bench: " << generator.status().message() << "\n";
    return kExitServerFailed;
  }

  if (!plan->write_request.empty()) {
    std::ofstream out(plan->write_request, std::ios::binary | std::ios::trunc);
    out << (*generator)->GrpcFramedRequest();
    out.close();
    if (!out) {
      std::cerr << "coalesce-bench: cannot write --write_request=" << plan->write_request << "\n";
      return kExitBadFlags;
    }
    if (plan->levels.empty()) return 0;
  }

  ResultWriter::Options writer_options;
  writer_options.format = plan->format;
  writer_options.out = &std::cout;
  std::unique_ptr<ResultWriter> writer = *ResultWriter::Create(writer_options);
  for (double level : plan->levels) {
    absl::StatusOr<LevelResult> result = (*generator)->Run(plan->mode, level);
    if (!result.ok()) {
      // PlanFromFlags() checked every level, so this is not expected.
      std::cerr << "\ncoalesce-bench: " << result.status().message() << "\n";
      writer->Finish();
      return kExitBadFlags;
    }
    result->label = plan->label;
    progress.LevelDone(*result);
    if (result->generator_behind()) {
      std::cerr << absl::StrFormat(
          "coalesce-bench: warning: at rate %g the sender fell behind its schedule by %.3f ms "
          "at p99; the client or its machine, not the server, limited this level (a busy "
          "machine, too few --threads, or too high a --rate)\n",
          level, absl::ToDoubleMilliseconds(result->send_lateness->p99));
    }
    writer->Write(*result);
  }
  writer->Finish();
  return 0;
}
