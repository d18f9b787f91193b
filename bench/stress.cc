// coalesce-stress: hostile, mixed traffic against a live server, round after round, checking
// that every request is answered exactly once with the right answer or the right error.
//
//   coalesce-server --backend=echo --max_queue_size=64 --max_message_mib=4 &
//   coalesce-stress --check=echo --max_message_mib=4 --server_pid=$!
//   coalesce-stress --soak_s=600 --server_pid=$!      # constant load, memory growth per hour
//
// A round sends, with at most --concurrency calls in flight: valid single- and multi-sample
// requests (raw and typed contents), every kind of invalid request (wrong shape, dtype, byte
// size, missing or unknown inputs and outputs, unknown model and version, batch out of range),
// unparsable bytes, a message over --max_message_mib, calls cancelled mid-flight and calls with
// a 1 µs deadline. Then a burst of --channels connections that each send one request and close,
// then a flood of --flood requests at once, past the server's queue bound (each answered or
// refused RESOURCE_EXHAUSTED). It prints one line per round and exits non-zero if any round
// saw a wrong answer, a wrong error code, a lost or a duplicated answer, or the server died.
//
// Beside both, slow clients hold connections to the metrics endpoint (--metrics_address: a request
// sent a byte a second, and silent connections past the endpoint's connection cap) and to the
// gRPC port (an HTTP/2 preface sent a byte a second), while /metrics is scraped every 500 ms;
// a round (or a soak) with a failed scrape fails.
//
// --poison=N adds N poison requests to each round's mixed traffic: valid-shaped requests with a
// value the model fails on (--poison_values), each to be answered INTERNAL while every valid
// request batched with it is still answered right. It needs a model that fails on those values:
//
//   coalesce-poison-model --repository=/tmp/poison-repo      # bench/poison_model.cc
//   coalesce-server --model_repository=/tmp/poison-repo --max_queue_size=64 --max_message_mib=4 &
//   coalesce-stress --model=poison --max_batch_size=16 --max_message_mib=4 --poison=4 \
//     --server_pid=$!                                          # or bench/poison-stress.sh
//
// Through each round's mixed phase, two slow readers (--slow_reader_requests) send valid
// requests, one connection as unary calls and one on a single stream, and never read an answer;
// the server's resident memory may grow by at most --max_slow_reader_growth_mb meanwhile (with
// --server_pid), or the round fails.
//
// --soak_s=N instead runs constant load for N seconds, samples the server's resident memory
// every --sample_s, fits a line to the samples after --warmup_s, and exits non-zero if memory
// grows faster than --max_growth_mb_per_hour (or any answer was wrong or lost).
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/stress_poison.h"
#include "bench/stress_runner.h"
#include "bench/stress_slow_clients.h"
#include "bench/stress_slow_reader.h"
#include "bench/stress_traffic.h"
#include "common/flag_parsing.h"
#include "proto/inference.grpc.pb.h"

ABSL_FLAG(std::string, address, "127.0.0.1:8001", "Server address, host:port.");
ABSL_FLAG(std::string, model, "demo", "Model to send traffic to (FP32 tensors, fixed dims).");
ABSL_FLAG(int, server_pid, 0,
          "Server process id: its resident memory (VmRSS) is reported, and its death fails the "
          "run. 0: not watched.");
ABSL_FLAG(std::string, check, "reference",
          "How answers are checked. echo: each output equals its input (--backend=echo). "
          "reference: each output row is finite and matches the server's answer for the same "
          "input sent alone before the run, within --atol + --rtol * |reference|.");
ABSL_FLAG(double, atol, 1e-4, "Absolute tolerance of --check=reference.");
ABSL_FLAG(double, rtol, 1e-3, "Relative tolerance of --check=reference.");
ABSL_FLAG(int64_t, max_batch_size, 256, "The server's --max_batch_size.");
ABSL_FLAG(int64_t, max_message_mib, 64, "The server's --max_message_mib.");
ABSL_FLAG(int, rounds, 100, "Rounds of mixed traffic.");
ABSL_FLAG(int, concurrency, 8,
          "Calls in flight at once in a round's mixed phase; keep it at or below the server's "
          "--max_queue_size so that only the flood can fill the queue.");
ABSL_FLAG(int, valid, 24, "Valid single-sample requests per round.");
ABSL_FLAG(int, multi, 8, "Valid multi-sample requests (2..8 samples) per round.");
ABSL_FLAG(int, cancels, 4, "Calls cancelled mid-flight per round.");
ABSL_FLAG(int, deadlines, 2, "Calls with a 1 µs deadline per round.");
ABSL_FLAG(int, garbage, 4, "Unparsable messages per round.");
ABSL_FLAG(int, oversized, 1, "Messages over --max_message_mib per round.");
ABSL_FLAG(int, poison, 0,
          "Poison requests per round: a value from --poison_values in a valid-shaped request, "
          "answered INTERNAL by a model that fails on it (coalesce-poison-model writes one).");
ABSL_FLAG(std::string, poison_values, "-1000,1e7",
          "Values that make the model fail, comma-separated; poison requests take them in turn. "
          "coalesce-poison-model's model raises below -100 and allocates 2^50 bytes above 1e6.");
ABSL_FLAG(int, channels, 8, "Connections opened, used once and closed per round.");
ABSL_FLAG(int, flood, 512, "Requests sent at once per round, past the queue bound.");
ABSL_FLAG(bool, expect_exhausted, false,
          "Fail a round whose flood got no RESOURCE_EXHAUSTED (set it when the server runs with a "
          "--max_queue_size well below --flood).");
ABSL_FLAG(int, slow_reader_requests, 512,
          "Requests each of a round's two slow readers (a connection of unary calls, a stream) "
          "sends, as far as the server takes them, without reading an answer; 0: none.");
ABSL_FLAG(double, max_slow_reader_growth_mb, 256,
          "Fail a round in which the server's resident memory grows by more than this while the "
          "slow readers hold their connections. With the server's defaults (128 unread answers "
          "per connection, 64 requests pending per stream) and 8-row demo requests of 256 KiB "
          "they hold about 64 MB; the rest is headroom for the round's other traffic.");
ABSL_FLAG(int, round_timeout_s, 120, "A call not answered this long after its round's phase "
                                     "started counts as lost.");
ABSL_FLAG(int, pool_rows, 64, "Distinct input samples that requests are built from.");
ABSL_FLAG(uint64_t, seed, 1, "Seed of inputs and traffic mix.");
ABSL_FLAG(int, soak_s, 0, "Soak mode: constant load for this many seconds instead of rounds.");
ABSL_FLAG(int, soak_concurrency, 8, "Calls in flight during a soak.");
ABSL_FLAG(int, sample_s, 5, "Soak: seconds between memory samples.");
ABSL_FLAG(int, warmup_s, -1, "Soak: samples before this are left out of the fit; -1: a quarter "
                             "of --soak_s, at most 120.");
ABSL_FLAG(double, max_growth_mb_per_hour, 10, "Soak: fail above this resident memory growth.");
ABSL_FLAG(std::string, metrics_address, "127.0.0.1:8002",
          "The server's metrics endpoint: scraped every 500 ms beside the traffic (each scrape "
          "must answer within 5 s) and held by slow and silent clients. Empty: none of that.");
ABSL_FLAG(int, metrics_slowloris, 8,
          "Connections to the metrics endpoint that send a request a byte a second, never ending.");
ABSL_FLAG(int, metrics_silent, 96,
          "Connections to the metrics endpoint that send nothing (past its cap of 64 by default).");
ABSL_FLAG(int, grpc_slowloris, 4,
          "Raw TCP connections to --address that send the HTTP/2 preface a byte a second and stop "
          "one byte short.");

namespace coalesce::stress {
namespace {

using Stub = inference::GRPCInferenceService::Stub;

// Resident memory of the watched server, in MB; -1 when not watched, -2 once it is gone.
double ServerRssMb() {
  int pid = absl::GetFlag(FLAGS_server_pid);
  if (pid <= 0) return -1;
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  if (!status) return -2;
  std::string line;
  bool zombie = false;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "State:") && absl::StrContains(line, "zombie")) zombie = true;
    if (absl::StartsWith(line, "VmRSS:")) {
      std::vector<std::string> parts = absl::StrSplit(line, ' ', absl::SkipWhitespace());
      double kb = 0;
      if (parts.size() >= 2 && absl::SimpleAtod(parts[1], &kb)) return kb / 1024;
    }
  }
  return zombie ? -2 : -1;
}

// Tally of judged calls.
struct Tally {
  int64_t requests = 0, answered = 0, expected_errors = 0, exhausted = 0, cancelled = 0;
  int64_t poison = 0;  // Poison requests answered with the model's error.
  int64_t wrong = 0, lost = 0, duplicated = 0;
  bool clean() const { return wrong == 0 && lost == 0 && duplicated == 0; }
};

struct Context {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<Stub> stub;
  const ModelShape* model;
  const SamplePool* pool;
  Check check;
  double atol, rtol;
  SlowClients* slow_clients = nullptr;
  std::vector<float> poison_values;
};

void Count(const Context& ctx, const Call& call, Tally& tally) {
  std::string why;
  ++tally.requests;
  switch (Judge(call, *ctx.model, *ctx.pool, ctx.check, ctx.atol, ctx.rtol, &why)) {
    case Verdict::kAnswered: ++tally.answered; return;
    case Verdict::kExpectedError:
      ++tally.expected_errors;
      if (call.kind == "flood" &&
          call.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
        ++tally.exhausted;
      }
      if (call.status.error_code() == grpc::StatusCode::CANCELLED) ++tally.cancelled;
      if (IsPoison(call)) ++tally.poison;
      return;
    case Verdict::kWrong: ++tally.wrong; break;
    case Verdict::kLost: ++tally.lost; break;
    case Verdict::kDuplicated: ++tally.duplicated; break;
  }
  if (tally.wrong + tally.lost + tally.duplicated <= 5) std::fprintf(stderr, "  %s\n", why.c_str());
}

// Runs `calls` (at most `limit` in flight), waits for them, and judges them. Calls that never
// finished are cancelled and leaked on purpose: gRPC may still answer them.
void RunPhase(Context& ctx, Runner& runner, std::vector<std::unique_ptr<Call>> calls, int limit,
              Tally& tally, std::vector<std::unique_ptr<Stub>>* stubs = nullptr) {
  const absl::Duration timeout = absl::Seconds(absl::GetFlag(FLAGS_round_timeout_s));
  const absl::Time deadline = absl::Now() + timeout;
  for (size_t i = 0; i < calls.size(); ++i) {
    if (limit > 0) runner.WaitInFlightBelow(limit, deadline - absl::Now());
    runner.Launch(calls[i].get(), stubs != nullptr ? (*stubs)[i].get() : nullptr);
  }
  if (stubs != nullptr) stubs->clear();  // Close the burst's channels while calls may fly.
  bool all = runner.WaitAll(deadline - absl::Now());
  runner.TakeFinished();
  for (auto& call : calls) {
    Count(ctx, *call, tally);
    if (!all && call->answers.load() == 0) {
      call->context.TryCancel();
      call.release();  // NOLINT: may still be answered; must outlive gRPC's callback.
    }
  }
}

// The slow readers of a round and the server's memory before they started.
struct SlowReaderRound {
  std::unique_ptr<SlowReaders> readers;
  double rss_before_mb = -1;
};

// Largest growth of the server's memory seen while slow readers held their connections.
double max_slow_reader_growth_mb = 0;

// Starts the round's slow readers (none with --slow_reader_requests=0) with requests of `rows`.
SlowReaderRound StartSlowReaders(TrafficBuilder& traffic, int rows) {
  SlowReaderRound round;
  const int requests = absl::GetFlag(FLAGS_slow_reader_requests);
  if (requests <= 0) return round;
  round.rss_before_mb = ServerRssMb();
  const std::string request = traffic.Valid(rows)->request.SerializeAsString();
  absl::StatusOr<std::unique_ptr<SlowReaders>> readers =
      SlowReaders::Start(absl::GetFlag(FLAGS_address), request, requests);
  if (!readers.ok()) {
    std::fprintf(stderr, "  slow readers: %s\n", readers.status().ToString().c_str());
  } else {
    round.readers = *std::move(readers);
  }
  return round;
}

// Counts a wrong answer in `tally` if the slow readers could not start or the server grew past
// --max_slow_reader_growth_mb while they held on; then closes their connections.
void CheckSlowReaders(SlowReaderRound& round, Tally& tally) {
  if (absl::GetFlag(FLAGS_slow_reader_requests) <= 0) return;
  if (round.readers == nullptr) {
    ++tally.wrong;
    return;
  }
  const double rss = ServerRssMb();
  if (rss > 0 && round.rss_before_mb > 0) {
    const double growth = rss - round.rss_before_mb;
    max_slow_reader_growth_mb = std::max(max_slow_reader_growth_mb, growth);
    if (growth > absl::GetFlag(FLAGS_max_slow_reader_growth_mb)) {
      std::fprintf(stderr,
                   "  server grew %.1f MB (bound %.1f) while slow readers held %ld unary and %ld "
                   "stream requests unread\n",
                   growth, absl::GetFlag(FLAGS_max_slow_reader_growth_mb),
                   round.readers->unary_sent(), round.readers->stream_sent());
      ++tally.wrong;
    }
  }
  round.readers.reset();
}

Tally RunRound(Context& ctx, TrafficBuilder& traffic, std::mt19937_64& rng) {
  Tally tally;
  auto owned_runner = std::make_unique<Runner>(ctx.channel);
  Runner& runner = *owned_runner;
  std::vector<std::unique_ptr<Call>> mixed;
  const int most_rows = static_cast<int>(std::clamp<int64_t>(
      absl::GetFlag(FLAGS_max_batch_size), 1, 8));
  for (int i = 0; i < absl::GetFlag(FLAGS_valid); ++i) mixed.push_back(traffic.Valid(1));
  for (int i = 0; i < absl::GetFlag(FLAGS_multi); ++i) {
    mixed.push_back(traffic.Valid(most_rows < 2 ? 1 : 2 + rng() % (most_rows - 1)));
  }
  mixed.push_back(traffic.Valid(1 + rng() % most_rows, /*typed=*/true));
  for (auto& call : traffic.Invalid()) mixed.push_back(std::move(call));
  for (int i = 0; i < absl::GetFlag(FLAGS_garbage); ++i) mixed.push_back(traffic.Garbage());
  for (int i = 0; i < absl::GetFlag(FLAGS_oversized); ++i) mixed.push_back(traffic.Oversized());
  for (int i = 0; i < absl::GetFlag(FLAGS_deadlines); ++i) {
    mixed.push_back(traffic.ImpossibleDeadline());
  }
  for (int i = 0; i < absl::GetFlag(FLAGS_cancels); ++i) {
    static constexpr int64_t kAfterUs[] = {0, 200, 1000, 3000};
    mixed.push_back(traffic.Cancelled(kAfterUs[i % 4]));
  }
  for (int i = 0; i < absl::GetFlag(FLAGS_poison); ++i) {
    const float value = ctx.poison_values[i % ctx.poison_values.size()];
    mixed.push_back(PoisonRequest(traffic, 1 + rng() % most_rows, value, rng));
  }
  std::shuffle(mixed.begin(), mixed.end(), rng);
  SlowReaderRound slow = StartSlowReaders(traffic, most_rows);
  RunPhase(ctx, runner, std::move(mixed), absl::GetFlag(FLAGS_concurrency), tally);
  CheckSlowReaders(slow, tally);

  // A burst of connections: each its own TCP connection (no shared subchannel), one call each,
  // closed as soon as the call is started.
  std::vector<std::unique_ptr<Call>> burst;
  std::vector<std::unique_ptr<Stub>> stubs;
  for (int i = 0; i < absl::GetFlag(FLAGS_channels); ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    stubs.push_back(inference::GRPCInferenceService::NewStub(grpc::CreateCustomChannel(
        absl::GetFlag(FLAGS_address), grpc::InsecureChannelCredentials(), args)));
    burst.push_back(traffic.Valid(1));
  }
  RunPhase(ctx, runner, std::move(burst), 0, tally, &stubs);

  std::vector<std::unique_ptr<Call>> flood;
  for (int i = 0; i < absl::GetFlag(FLAGS_flood); ++i) flood.push_back(traffic.Flood());
  int64_t exhausted_before = tally.exhausted;
  RunPhase(ctx, runner, std::move(flood), 0, tally);
  if (absl::GetFlag(FLAGS_expect_exhausted) && tally.exhausted == exhausted_before) {
    std::fprintf(stderr, "  flood of %d got no RESOURCE_EXHAUSTED\n", absl::GetFlag(FLAGS_flood));
    ++tally.wrong;
  }
  // A lost call may still be answered, into the runner: keep it alive too.
  if (tally.lost > 0) owned_runner.release();  // NOLINT
  return tally;
}

int RunRounds(Context& ctx, TrafficBuilder& traffic, std::mt19937_64& rng) {
  std::printf("%5s %8s %8s %8s %9s %9s %6s %6s %5s %5s %8s %7s\n", "round", "requests", "ok",
              "exp.err", "flood_rej", "cancelled", "poison", "wrong", "lost", "dup", "rss_mb",
              "secs");
  Tally total;
  int passed = 0;
  double first_rss = ServerRssMb(), last_rss = first_rss;
  const int rounds = absl::GetFlag(FLAGS_rounds);
  for (int round = 1; round <= rounds; ++round) {
    absl::Time start = absl::Now();
    Tally t = RunRound(ctx, traffic, rng);
    last_rss = ServerRssMb();
    std::printf("%5d %8ld %8ld %8ld %9ld %9ld %6ld %6ld %5ld %5ld %8.1f %7.2f\n", round,
                t.requests, t.answered, t.expected_errors, t.exhausted, t.cancelled, t.poison,
                t.wrong, t.lost, t.duplicated, last_rss,
                absl::ToDoubleSeconds(absl::Now() - start));
    std::fflush(stdout);
    total.requests += t.requests, total.answered += t.answered;
    total.expected_errors += t.expected_errors, total.exhausted += t.exhausted;
    total.cancelled += t.cancelled, total.wrong += t.wrong, total.lost += t.lost;
    total.poison += t.poison;
    total.duplicated += t.duplicated;
    const bool scrapes_clean = ctx.slow_clients == nullptr || ctx.slow_clients->Clean();
    if (t.clean() && scrapes_clean) ++passed;
    if (last_rss == -2) {
      std::printf("server (pid %d) died during round %d\n", absl::GetFlag(FLAGS_server_pid),
                  round);
      break;
    }
  }
  bool died = last_rss == -2;
  std::printf(
      "rounds passed: %d of %d; server crashes: %d; requests %ld: ok %ld, expected errors %ld "
      "(flood refused %ld, cancelled %ld, poison %ld), wrong %ld, lost %ld, duplicated %ld; "
      "server RSS %.1f -> %.1f MB\n",
      passed, rounds, died ? 1 : 0, total.requests, total.answered, total.expected_errors,
      total.exhausted, total.cancelled, total.poison, total.wrong, total.lost, total.duplicated,
      first_rss, last_rss);
  if (ctx.slow_clients != nullptr) std::printf("%s\n", ctx.slow_clients->Summary().c_str());
  if (absl::GetFlag(FLAGS_slow_reader_requests) > 0 && first_rss > 0) {
    std::printf("slow readers: server RSS grew at most %.1f MB in a round (bound %.1f MB)\n",
                max_slow_reader_growth_mb, absl::GetFlag(FLAGS_max_slow_reader_growth_mb));
  }
  return passed == rounds && !died ? 0 : 1;
}

// Least-squares slope of y over x.
double Slope(const std::vector<std::pair<double, double>>& points) {
  double n = points.size(), sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (auto [x, y] : points) sx += x, sy += y, sxx += x * x, sxy += x * y;
  double denominator = n * sxx - sx * sx;
  return denominator == 0 ? 0 : (n * sxy - sx * sy) / denominator;
}

int Soak(Context& ctx, TrafficBuilder& traffic, std::mt19937_64& rng) {
  const int soak_s = absl::GetFlag(FLAGS_soak_s);
  int warmup_s = absl::GetFlag(FLAGS_warmup_s);
  if (warmup_s < 0) warmup_s = std::min(120, soak_s / 4);
  const absl::Duration sample_every = absl::Seconds(absl::GetFlag(FLAGS_sample_s));
  const int concurrency = absl::GetFlag(FLAGS_soak_concurrency);
  auto owned_runner = std::make_unique<Runner>(ctx.channel);
  Runner& runner = *owned_runner;
  Tally tally;
  std::vector<std::pair<double, double>> samples;  // (hours since start, MB) after warm-up.
  std::deque<std::pair<absl::Time, std::unique_ptr<Call>>> retired;
  std::vector<std::unique_ptr<Call>> invalid;
  const absl::Time start = absl::Now(), end = start + absl::Seconds(soak_s);
  absl::Time next_sample = start;
  int64_t launched = 0;
  bool died = false;
  std::printf("%8s %10s %10s %8s %6s %5s %8s\n", "t_s", "requests", "ok", "exp.err", "wrong",
              "lost", "rss_mb");
  // Calls are owned by `owned` until they finish, then retired for 2 s (so that a duplicate
  // answer would be counted, not written to freed memory) and judged when freed.
  std::vector<std::unique_ptr<Call>> owned;
  auto launch_one = [&] {
    std::unique_ptr<Call> call;
    if (launched % 64 == 63) {
      call = traffic.Garbage();
    } else if (launched % 16 == 15) {
      if (invalid.empty()) invalid = traffic.Invalid();
      call = std::move(invalid.back());
      invalid.pop_back();
    } else {
      call = traffic.Valid(1 + rng() % 4);
    }
    ++launched;
    runner.Launch(call.get());
    owned.push_back(std::move(call));
  };
  auto retire = [&](absl::Time before) {
    while (!retired.empty() && retired.front().first < before) {
      Count(ctx, *retired.front().second, tally);
      retired.pop_front();
    }
  };
  while (absl::Now() < end && !died) {
    while (runner.in_flight() < concurrency) launch_one();
    runner.WaitAny(absl::Milliseconds(100));
    for (Call* done : runner.TakeFinished()) {
      auto it = std::find_if(owned.begin(), owned.end(),
                             [done](const auto& c) { return c.get() == done; });
      retired.emplace_back(absl::Now(), std::move(*it));
      *it = std::move(owned.back());
      owned.pop_back();
    }
    retire(absl::Now() - absl::Seconds(2));
    if (absl::Now() >= next_sample) {
      double rss = ServerRssMb();
      died = rss == -2;
      double t = absl::ToDoubleSeconds(absl::Now() - start);
      std::printf("%8.0f %10ld %10ld %8ld %6ld %5ld %8.1f\n", t, tally.requests, tally.answered,
                  tally.expected_errors, tally.wrong, tally.lost, rss);
      std::fflush(stdout);
      if (t >= warmup_s && rss > 0) samples.emplace_back(t / 3600, rss);
      next_sample += sample_every;
    }
  }
  bool all = runner.WaitAll(absl::Seconds(absl::GetFlag(FLAGS_round_timeout_s)));
  runner.TakeFinished();
  for (auto& [when, call] : retired) Count(ctx, *call, tally);
  for (auto& call : owned) {
    Count(ctx, *call, tally);
    if (!all && call->answers.load() == 0) call.release();  // NOLINT: see RunPhase().
  }
  if (!all) owned_runner.release();  // NOLINT: see RunRound().
  double growth = Slope(samples);
  const bool scrapes_clean = ctx.slow_clients == nullptr || ctx.slow_clients->Clean();
  bool ok = tally.clean() && !died && samples.size() >= 2 && scrapes_clean &&
            growth <= absl::GetFlag(FLAGS_max_growth_mb_per_hour);
  if (ctx.slow_clients != nullptr) std::printf("%s\n", ctx.slow_clients->Summary().c_str());
  std::printf(
      "soak %d s (warm-up %d s, %zu samples fitted): requests %ld, ok %ld, expected errors %ld, "
      "wrong %ld, lost %ld, duplicated %ld; server %s; RSS growth %.2f MB/hour (bound %.1f): "
      "%s\n",
      soak_s, warmup_s, samples.size(), tally.requests, tally.answered, tally.expected_errors,
      tally.wrong, tally.lost, tally.duplicated, died ? "DIED" : "alive", growth,
      absl::GetFlag(FLAGS_max_growth_mb_per_hour), ok ? "PASS" : "FAIL");
  if (samples.size() < 2) std::printf("too few samples after warm-up to fit a growth rate\n");
  return ok ? 0 : 1;
}

absl::StatusOr<std::unique_ptr<SlowClients>> StartSlowClients() {
  SlowClients::Options options;
  options.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  options.grpc_address = absl::GetFlag(FLAGS_address);
  options.metrics_slowloris = absl::GetFlag(FLAGS_metrics_slowloris);
  options.metrics_silent = absl::GetFlag(FLAGS_metrics_silent);
  options.grpc_slowloris = absl::GetFlag(FLAGS_grpc_slowloris);
  return SlowClients::Start(options);
}

int Main() {
  Context ctx;
  ctx.channel = grpc::CreateChannel(absl::GetFlag(FLAGS_address),
                                    grpc::InsecureChannelCredentials());
  ctx.stub = inference::GRPCInferenceService::NewStub(ctx.channel);
  inference::ModelMetadataResponse metadata;
  {
    grpc::ClientContext context;
    context.set_wait_for_ready(true);
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    inference::ModelMetadataRequest request;
    request.set_name(absl::GetFlag(FLAGS_model));
    grpc::Status status = ctx.stub->ModelMetadata(&context, request, &metadata);
    if (!status.ok()) {
      std::fprintf(stderr, "ModelMetadata(%s) at %s failed: %d %s\n",
                   absl::GetFlag(FLAGS_model).c_str(), absl::GetFlag(FLAGS_address).c_str(),
                   status.error_code(), status.error_message().c_str());
      return 2;
    }
  }
  absl::StatusOr<ModelShape> model = ModelShape::FromMetadata(metadata);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 2;
  }
  const std::string check = absl::GetFlag(FLAGS_check);
  if (check != "echo" && check != "reference") {
    std::fprintf(stderr, "--check must be echo or reference, got '%s'\n", check.c_str());
    return 2;
  }
  ctx.check = check == "echo" ? Check::kEcho : Check::kReference;
  ctx.atol = absl::GetFlag(FLAGS_atol);
  ctx.rtol = absl::GetFlag(FLAGS_rtol);
  if (absl::GetFlag(FLAGS_poison) > 0) {
    absl::StatusOr<std::vector<float>> values =
        ParsePoisonValues(absl::GetFlag(FLAGS_poison_values));
    if (!values.ok()) {
      std::fprintf(stderr, "%s\n", std::string(values.status().message()).c_str());
      return 2;
    }
    ctx.poison_values = *std::move(values);
  }
  SamplePool pool(*model, absl::GetFlag(FLAGS_pool_rows), absl::GetFlag(FLAGS_seed));
  if (absl::Status s = pool.Prepare(ctx.check, *ctx.stub); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 2;
  }
  ctx.model = &*model;
  ctx.pool = &pool;
  TrafficBuilder traffic(*model, pool, absl::GetFlag(FLAGS_max_batch_size),
                         absl::GetFlag(FLAGS_max_message_mib) << 20,
                         absl::GetFlag(FLAGS_seed) + 1);
  std::mt19937_64 rng(absl::GetFlag(FLAGS_seed) + 2);
  absl::StatusOr<std::unique_ptr<SlowClients>> slow_clients = StartSlowClients();
  if (!slow_clients.ok()) {
    std::fprintf(stderr, "%s\n", slow_clients.status().ToString().c_str());
    return 2;
  }
  ctx.slow_clients = slow_clients->get();
  std::printf("model %s at %s, check %s, server pid %d\n", model->name.c_str(),
              absl::GetFlag(FLAGS_address).c_str(), check.c_str(),
              absl::GetFlag(FLAGS_server_pid));
  return absl::GetFlag(FLAGS_soak_s) > 0 ? Soak(ctx, traffic, rng) : RunRounds(ctx, traffic, rng);
}

}  // namespace
}  // namespace coalesce::stress

int main(int argc, char** argv) {
  coalesce::ParseFlagsOrExit(
      argc, argv, "coalesce-stress",
      "Stress and soak tests a live coalesce server with mixed, hostile traffic.\n"
      "Example: coalesce-stress --check=echo --server_pid=$(pidof coalesce-server)");
  return coalesce::stress::Main();
}
