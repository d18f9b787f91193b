#ifndef COALESCE_CLIENT_LOAD_GENERATOR_H_
#define COALESCE_CLIENT_LOAD_GENERATOR_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/client_security.h"
#include "client/latency_recorder.h"
#include "client/length_range.h"
#include "client/level_result.h"
#include "proto/inference.grpc.pb.h"
#include "proto/inference.pb.h"

namespace coalesce {

class ArrivalSchedule;

// LoadGenerator drives one model of a server that speaks the Open Inference Protocol (KServe v2
// gRPC) and measures what comes back, in the manner of Triton's perf_analyzer.
//
// Create() connects over gRPC channels (each with its own subchannel pool, hence its own TCP
// connection), reads the model's metadata, builds one ModelInferRequest from it (one per length
// when Options::variable_dim is a range), serialises it once and sends it once as a probe (the
// shortest and the longest, for a range). Every later call sends those same bytes through the
// generic stub (for a range, the request of the next length in a sequence drawn once from the
// seed), so the generator neither builds nor serialises anything per call, and does not
// parse responses (only their status counts). Calls use gRPC's asynchronous completion-queue
// API: threads that each own one completion queue receive every completion, so 256
// outstanding calls need no thread each. In closed loop the thread that receives a completion
// sends the next call; in open loop as many sender threads share the precomputed Poisson
// schedule and record how late each send left. How many connections and threads a level uses
// is LevelSpread(): by default as many as h2load would open for the same load, since fewer
// connections than that queue the calls behind each other's HTTP/2 frames.
//
// Run() measures one level: a warm-up, then a measurement window, then a drain. Only calls that
// complete inside the window count, whatever their status. Every call's gRPC deadline is at
// most window end + drain_timeout, so a level always ends by then; calls cut off that way
// completed outside the window and are not counted.
//
// Thread-safety: Run() must not be called concurrently with itself (one level at a time);
// `on_progress` runs on the thread that called Run(). The destructor must not race with Run().
class LoadGenerator {
 public:
  // A snapshot of the running level, handed to Options::on_progress.
  struct Progress {
    enum class Phase { kWarmup, kMeasure, kDrain };
    LoadMode mode = LoadMode::kConcurrency;
    double level = 0;
    Phase phase = Phase::kWarmup;
    // Time since the level started, and warm-up + measurement window.
    absl::Duration elapsed;
    absl::Duration total;
    // Calls completed since the level started, with any status.
    int64_t completed = 0;
  };

  struct Options {
    // Server address, host:port.
    std::string address = "127.0.0.1:8001";
    // TLS and bearer token (client/client_security.h); null: plaintext, no token.
    std::shared_ptr<const ClientSecurity> security;
    std::string model = "demo";
    // Empty lets the server choose.
    std::string model_version;
    // Samples per request (the model's first -1 dimension). >= 1.
    int64_t batch = 1;
    // The size of every later -1 dimension of the model's inputs (RequestSpec::variable_dim):
    // one size, or for each call a size drawn uniformly from the range (at most
    // kMaxLengthsInRange sizes; a single size with `shared_memory`).
    LengthRange variable_dim;
    // gRPC channels that calls are spread over, round robin; each has its own connection. In
    // [1, 1024], or 0: per level, see LevelSpread().
    int channels = 0;
    // Threads that receive completions (one completion queue each); in open loop, as many
    // again send on schedule. In [1, 1024], or 0: per level, see LevelSpread().
    int threads = 0;
    // Per level: time before the measurement window (>= 0), and the window itself (> 0).
    absl::Duration warmup = absl::Seconds(2);
    absl::Duration duration = absl::Seconds(5);
    // gRPC deadline of each call; zero means none (the level's drain bound still applies).
    absl::Duration deadline = absl::ZeroDuration();
    // How long after the window calls may still run before their deadline cancels them. >= 0.
    absl::Duration drain_timeout = absl::Seconds(1);
    // Bound on connecting, the metadata call and the probe call in Create().
    absl::Duration connect_timeout = absl::Seconds(10);
    // Seed of the input values and of the open-loop arrival times.
    uint64_t seed = 1;
    // Send inputs and receive outputs through system shared memory (Triton's extension)
    // instead of the message: before each level, one /dev/shm region with a slot per call that
    // can be in flight is registered, and unregistered after the level. The server must run on
    // this machine. Create() checks that the server accepts it with one probe call.
    bool shared_memory = false;
    // Open loop only: sends due while this many calls are outstanding are skipped (and counted
    // as such) rather than queued, so an overloaded server cannot make the client pile up.
    int max_requests_in_flight = 1024;
    // If set, called about every `progress_interval` while a level runs.
    std::function<void(const Progress&)> on_progress;
    absl::Duration progress_interval = absl::Milliseconds(200);
  };

  // Returns InvalidArgument naming the first bad field and its value; touches no network.
  static absl::Status ValidateOptions(const Options& options);

  // The connections and completion threads one level uses.
  struct Spread {
    int channels = 1;
    int threads = 1;
  };
  // Options::channels and Options::threads where set (non-zero). Where 0, chosen as
  // bench/h2load_grpc.sh chooses h2load's for the same load: min(concurrency, kAutoChannels)
  // connections in closed loop (kAutoChannels in open loop, whose in-flight count is not
  // known ahead), and min(channels, kAutoThreads) threads. `level` must be valid for `mode`.
  static constexpr int kAutoChannels = 16;
  static constexpr int kAutoThreads = 8;
  static Spread LevelSpread(const Options& options, LoadMode mode, double level);

  // Validates `options` (InvalidArgument), then connects and prepares the request. A server
  // that cannot be reached gives UNAVAILABLE or DEADLINE_EXCEEDED; a failed metadata or probe
  // call gives that call's code with the server's message; a model whose inputs cannot be
  // generated gives InvalidArgument naming the input.
  static absl::StatusOr<std::unique_ptr<LoadGenerator>> Create(const Options& options);

  // Stops the completion-queue threads. No level may be running.
  ~LoadGenerator();

  LoadGenerator(const LoadGenerator&) = delete;
  LoadGenerator& operator=(const LoadGenerator&) = delete;

  // Runs one level: `level` outstanding calls (kConcurrency, a positive integer) or `level`
  // calls per second on average with Poisson arrivals (kRate). Blocks for warm-up + window +
  // at most drain_timeout. Returns InvalidArgument for a bad level; the result's `label` is
  // left empty for the caller.
  absl::StatusOr<LevelResult> Run(LoadMode mode, double level);

  const inference::ModelMetadataResponse& metadata() const { return metadata_; }
  // Size of the serialised request every call sends; with a range of lengths, the shortest's.
  int64_t request_bytes() const { return request_bytes_; }
  // That request as a gRPC message on the wire (the 5-byte length prefix, uncompressed, then
  // the bytes), so that another HTTP/2 generator (h2load -d) can send exactly what this one
  // sends (with a range of lengths, the shortest only). With Options::shared_memory it is the
  // request with the tensors in the message, which the calls do not send.
  std::string GrpcFramedRequest() const;

 private:
  struct Call;
  struct Level;
  struct WorkerStats;

  explicit LoadGenerator(const Options& options);

  absl::Status Connect();
  // With Options::shared_memory: one call through a one-slot region, so that a server without
  // the extension fails Create() rather than every call of a level.
  absl::Status ProbeSharedMemory(absl::Time deadline);
  void WorkerLoop(int worker);
  // Sends `call` (channel and worker already chosen) for its level.
  void Start(Call* call);
  void OnComplete(Call* call, int worker);
  // Drops one reference to the level; the last one marks it done.
  static void Release(Level& level);
  // Open loop: sends arrivals sender, sender + num_senders, ... of `schedule` on time, or
  // counts them as skipped when every call is in flight.
  void SendOnSchedule(Level& level, const ArrivalSchedule& schedule, int sender,
                      LatencyRecorder* lateness, int64_t* skipped);
  // Waits for the level to finish, reporting progress; returns the client's CPU cores used
  // during the window.
  double WaitForLevel(Level& level, double level_value);

  // Constant after Create().
  const Options options_;
  const std::string method_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs_;
  inference::ModelMetadataResponse metadata_;
  // The request every call sends (or, with Options::shared_memory, the one the slots copy; with
  // a range of lengths, the shortest), and the server's answer to it.
  inference::ModelInferRequest probe_request_;
  inference::ModelInferResponse probe_response_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> control_stub_;
  std::string request_serialized_;
  grpc::ByteBuffer request_;
  int64_t request_bytes_ = 0;
  // With a range of lengths: the serialised request of each length, shortest first, and the
  // sequence of indexes into it that a level's calls take in turn (the n-th call sent takes
  // draws_[n % size]); both empty for a single length.
  std::vector<grpc::ByteBuffer> requests_by_length_;
  std::vector<int32_t> draws_;

  // One completion queue per worker thread; worker i alone calls Next() on cqs_[i]. There are
  // as many channels and workers as the largest level can use; a level uses the first ones.
  std::vector<std::unique_ptr<grpc::CompletionQueue>> cqs_;
  std::vector<std::thread> workers_;
};

}  // namespace coalesce

#endif  // COALESCE_CLIENT_LOAD_GENERATOR_H_
