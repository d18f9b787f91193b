#include "client/load_generator.h"

#include <sys/resource.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "client/arrival_schedule.h"
#include "client/request_builder.h"
#include "client/shared_memory_slots.h"
#include "client/status_counts.h"

namespace coalesce {
namespace {

// The load generator measures real elapsed time; nothing here is unit-tested against a clock.
using Clock = std::chrono::steady_clock;

constexpr char kModelInferMethod[] = "/inference.GRPCInferenceService/ModelInfer";
constexpr int kMaxConcurrency = 1'000'000;
// Lengths drawn per range: a sequence long enough that every level of a run sees the range's
// distribution, short enough to draw at Create() (256 KiB of indexes).
constexpr int64_t kLengthDraws = 1 << 16;

double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec * 1e-6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

absl::Status FromGrpc(const grpc::Status& status, absl::string_view what) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(what, " failed: ", GrpcCodeName(status.error_code()), ": ",
                                   status.error_message()));
}

std::chrono::system_clock::time_point SystemDeadline(absl::Duration from_now) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(
             absl::ToChronoNanoseconds(from_now));
}

}  // namespace

// One outstanding call. Owned by its Level; between a Start() and its completion it belongs to
// the completion-queue thread `worker`, otherwise to whoever took it from the free list.
struct LoadGenerator::Call {
  Level* level = nullptr;
  int channel = 0;
  int worker = 0;
  Clock::time_point sent;
  std::unique_ptr<grpc::ClientContext> context;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> reader;
  // What this call sends: the shared request, or its slot's with shared memory.
  grpc::ByteBuffer request;
  grpc::ByteBuffer response;
  grpc::Status status;
};

// What one completion-queue thread measured in one level; written only by that thread.
// Aligned so that two threads' counters never share a cache line.
struct alignas(64) LoadGenerator::WorkerStats {
  LatencyRecorder latency;
  StatusCounts statuses;
};

// The state of one running level. It holds one reference per outstanding call plus one for
// whoever is still sending (Run() in closed loop, the sender thread in open loop); the last
// Release() notifies `done`, after which no other thread touches the level.
struct LoadGenerator::Level {
  // Constant once calls start.
  LoadMode mode = LoadMode::kConcurrency;
  Spread spread;
  Clock::time_point start;
  Clock::time_point window_begin;
  Clock::time_point window_end;
  Clock::time_point hard_stop;
  std::vector<std::unique_ptr<Call>> calls;
  std::vector<WorkerStats> stats;

  std::atomic<int64_t> references{1};
  std::atomic<int64_t> completed{0};
  // Calls sent so far; with a range of lengths, the next call's place in the drawn sequence.
  std::atomic<uint64_t> calls_sent{0};
  absl::Notification done;

  // Open loop: calls not in flight.
  absl::Mutex free_mu;
  std::vector<Call*> free_calls ABSL_GUARDED_BY(free_mu);
};

absl::Status LoadGenerator::ValidateOptions(const Options& o) {
  auto bad = [](absl::string_view field, const auto& value, absl::string_view expected) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must be ", expected, "; got ", value));
  };
  if (o.address.empty()) return bad("address", "''", "host:port");
  if (o.model.empty()) return bad("model", "''", "a model name");
  if (o.batch < 1) return bad("batch", o.batch, ">= 1");
  if (o.variable_dim.min < 1 || o.variable_dim.max < o.variable_dim.min) {
    return bad("variable_dim", LengthRangeText(o.variable_dim),
               ">= 1, or MIN:MAX with 1 <= MIN <= MAX");
  }
  if (o.variable_dim.count() > kMaxLengthsInRange) {
    return bad("variable_dim", LengthRangeText(o.variable_dim),
               absl::StrCat("a range of at most ", kMaxLengthsInRange, " lengths"));
  }
  if (o.shared_memory && !o.variable_dim.single()) {
    // Each slot holds one request's inputs and outputs, sized by one probe.
    return bad("variable_dim", LengthRangeText(o.variable_dim),
               "a single length with shared_memory, whose slots hold one request shape");
  }
  if (o.channels < 0 || o.channels > 1024) {
    return bad("channels", o.channels, "in [1, 1024] (0 = per level)");
  }
  if (o.threads < 0 || o.threads > 1024) {
    return bad("threads", o.threads, "in [1, 1024] (0 = per level)");
  }
  if (o.warmup < absl::ZeroDuration()) {
    return bad("warmup", absl::FormatDuration(o.warmup), ">= 0");
  }
  if (o.duration <= absl::ZeroDuration()) {
    return bad("duration", absl::FormatDuration(o.duration), "> 0");
  }
  if (o.deadline < absl::ZeroDuration()) {
    return bad("deadline", absl::FormatDuration(o.deadline), ">= 0 (0 = none)");
  }
  if (o.drain_timeout < absl::ZeroDuration()) {
    return bad("drain_timeout", absl::FormatDuration(o.drain_timeout), ">= 0");
  }
  if (o.connect_timeout <= absl::ZeroDuration()) {
    return bad("connect_timeout", absl::FormatDuration(o.connect_timeout), "> 0");
  }
  if (o.max_requests_in_flight < 1) {
    return bad("max_requests_in_flight", o.max_requests_in_flight, ">= 1");
  }
  if (o.progress_interval <= absl::ZeroDuration()) {
    return bad("progress_interval", absl::FormatDuration(o.progress_interval), "> 0");
  }
  return absl::OkStatus();
}

LoadGenerator::Spread LoadGenerator::LevelSpread(const Options& options, LoadMode mode,
                                                 double level) {
  Spread spread;
  spread.channels = options.channels;
  if (spread.channels == 0) {
    spread.channels = mode == LoadMode::kConcurrency
                          ? static_cast<int>(std::min<double>(level, kAutoChannels))
                          : kAutoChannels;
  }
  spread.threads = options.threads;
  if (spread.threads == 0) spread.threads = std::min(spread.channels, kAutoThreads);
  return spread;
}

absl::StatusOr<std::unique_ptr<LoadGenerator>> LoadGenerator::Create(const Options& options) {
  if (absl::Status status = ValidateOptions(options); !status.ok()) return status;
  std::unique_ptr<LoadGenerator> generator(new LoadGenerator(options));
  if (absl::Status status = generator->Connect(); !status.ok()) return status;
  // The most any level uses: the spread of an open-loop level, the widest there is.
  const int threads = LevelSpread(options, LoadMode::kRate, 1).threads;
  for (int i = 0; i < threads; ++i) {
    generator->cqs_.push_back(std::make_unique<grpc::CompletionQueue>());
  }
  for (int i = 0; i < threads; ++i) {
    generator->workers_.emplace_back([g = generator.get(), i] { g->WorkerLoop(i); });
  }
  return generator;
}

LoadGenerator::LoadGenerator(const Options& options)
    : options_(options), method_(kModelInferMethod) {}

LoadGenerator::~LoadGenerator() {
  for (auto& cq : cqs_) cq->Shutdown();
  for (std::thread& worker : workers_) worker.join();
}

absl::Status LoadGenerator::Connect() {
  const int num_channels = LevelSpread(options_, LoadMode::kRate, 1).channels;
  for (int i = 0; i < num_channels; ++i) {
    grpc::ChannelArguments args;
    // Without these, channels with equal arguments share one subchannel, i.e. one TCP
    // connection, and the "channels" would all queue behind one HTTP/2 connection.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("coalesce.bench_channel_index", i);
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    channels_.push_back(
        grpc::CreateCustomChannel(options_.address,
                                  options_.security != nullptr
                                      ? options_.security->credentials()
                                      : grpc::InsecureChannelCredentials(),
                                  args));
    stubs_.push_back(std::make_unique<grpc::GenericStub>(channels_.back()));
  }
  control_stub_ = inference::GRPCInferenceService::NewStub(channels_[0]);
  auto& stub = control_stub_;
  const absl::Time deadline = absl::Now() + options_.connect_timeout;

  inference::ModelMetadataRequest metadata_request;
  metadata_request.set_name(options_.model);
  metadata_request.set_version(options_.model_version);
  {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(deadline));
    if (options_.security != nullptr) options_.security->Apply(context);
    grpc::Status status = stub->ModelMetadata(&context, metadata_request, &metadata_);
    if (!status.ok()) {
      return FromGrpc(status, absl::StrCat("ModelMetadata of model '", options_.model, "' at ",
                                           options_.address));
    }
  }

  RequestSpec spec;
  spec.model_name = options_.model;
  spec.model_version = options_.model_version;
  spec.batch = options_.batch;
  spec.seed = options_.seed;
  absl::StatusOr<std::vector<inference::ModelInferRequest>> requests =
      BuildInferRequests(metadata_, spec, options_.variable_dim);
  if (!requests.ok()) return requests.status();
  // The longest and the shortest request, so that a server refusing either end of the range
  // fails Create() rather than a share of every level's calls; the shortest last, so that
  // probe_response_ answers probe_request_.
  const LengthRange& lengths = options_.variable_dim;
  for (int64_t length : {lengths.max, lengths.min}) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(deadline));
    if (options_.security != nullptr) options_.security->Apply(context);
    grpc::Status status =
        stub->ModelInfer(&context, (*requests)[length - lengths.min], &probe_response_);
    if (!status.ok()) {
      return FromGrpc(status, lengths.single() ? std::string("the probe ModelInfer")
                                               : absl::StrCat("the probe ModelInfer at "
                                                              "variable_dim ", length));
    }
    if (lengths.single()) break;
  }
  probe_request_ = requests->front();
  if (options_.shared_memory) {
    if (absl::Status s = ProbeSharedMemory(deadline); !s.ok()) return s;
  }
  request_serialized_ = probe_request_.SerializeAsString();
  request_bytes_ = static_cast<int64_t>(request_serialized_.size());
  grpc::Slice slice(request_serialized_);
  request_ = grpc::ByteBuffer(&slice, 1);
  if (requests->size() > 1) {
    for (const inference::ModelInferRequest& request : *requests) {
      const std::string bytes = request.SerializeAsString();
      grpc::Slice length_slice(bytes);
      requests_by_length_.emplace_back(&length_slice, 1);
    }
    for (int64_t length : DrawLengths(options_.variable_dim, kLengthDraws, options_.seed)) {
      draws_.push_back(static_cast<int32_t>(length - options_.variable_dim.min));
    }
  }

  for (int i = 1; i < num_channels; ++i) {
    if (!channels_[i]->WaitForConnected(absl::ToChronoTime(deadline))) {
      return absl::UnavailableError(absl::StrCat("channel ", i, " to ", options_.address,
                                                 " did not connect within ",
                                                 absl::FormatDuration(options_.connect_timeout)));
    }
  }
  return absl::OkStatus();
}

std::string LoadGenerator::GrpcFramedRequest() const {
  // gRPC's length-prefixed message: a compressed flag of 0, then the length, big-endian.
  const uint32_t size = static_cast<uint32_t>(request_serialized_.size());
  std::string framed(5, '\0');
  for (int i = 0; i < 4; ++i) framed[1 + i] = static_cast<char>((size >> (8 * (3 - i))) & 0xff);
  return framed + request_serialized_;
}

absl::Status LoadGenerator::ProbeSharedMemory(absl::Time deadline) {
  SharedMemorySlots::Options slot_options;
  slot_options.slots = 1;
  absl::StatusOr<std::unique_ptr<SharedMemorySlots>> slots =
      SharedMemorySlots::Create(slot_options, *control_stub_, options_.security.get(),
                                probe_request_, probe_response_);
  if (!slots.ok()) return slots.status();
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(deadline));
  if (options_.security != nullptr) options_.security->Apply(context);
  inference::ModelInferResponse response;
  grpc::Status status = control_stub_->ModelInfer(&context, (*slots)->request(0), &response);
  if (!status.ok()) return FromGrpc(status, "the probe ModelInfer through shared memory");
  return absl::OkStatus();
}

void LoadGenerator::WorkerLoop(int worker) {
  void* tag = nullptr;
  bool ok = false;
  // A unary call's Finish always completes with ok == true; its outcome is in the status.
  while (cqs_[worker]->Next(&tag, &ok)) OnComplete(static_cast<Call*>(tag), worker);
}

void LoadGenerator::Start(Call* call) {
  const Level& level = *call->level;
  call->reader.reset();
  call->context = std::make_unique<grpc::ClientContext>();
  const Clock::time_point now = Clock::now();
  absl::Duration budget = absl::FromChrono(level.hard_stop - now);
  if (options_.deadline > absl::ZeroDuration()) budget = std::min(budget, options_.deadline);
  call->context->set_deadline(SystemDeadline(budget));
  if (options_.security != nullptr) options_.security->Apply(*call->context);
  call->response.Clear();
  call->sent = now;
  const grpc::ByteBuffer* request = &call->request;
  if (!draws_.empty()) {
    const uint64_t n = call->level->calls_sent.fetch_add(1, std::memory_order_relaxed);
    request = &requests_by_length_[draws_[n % draws_.size()]];
  }
  call->reader = stubs_[call->channel]->PrepareUnaryCall(call->context.get(), method_, *request,
                                                         cqs_[call->worker].get());
  call->reader->StartCall();
  call->reader->Finish(&call->response, &call->status, call);
}

void LoadGenerator::OnComplete(Call* call, int worker) {
  const Clock::time_point now = Clock::now();
  Level& level = *call->level;
  level.completed.fetch_add(1, std::memory_order_relaxed);
  if (now >= level.window_begin && now < level.window_end) {
    WorkerStats& stats = level.stats[worker];
    stats.statuses.Add(call->status.error_code());
    if (call->status.ok()) stats.latency.Record(absl::FromChrono(now - call->sent));
  }
  if (level.mode == LoadMode::kConcurrency) {
    if (now < level.window_end) {
      Start(call);  // keeps the level's reference
      return;
    }
  } else {
    absl::MutexLock lock(&level.free_mu);
    level.free_calls.push_back(call);
  }
  Release(level);
}

void LoadGenerator::Release(Level& level) {
  if (level.references.fetch_sub(1, std::memory_order_acq_rel) == 1) level.done.Notify();
}

void LoadGenerator::SendOnSchedule(Level& level, const ArrivalSchedule& schedule, int sender,
                                   LatencyRecorder* lateness, int64_t* skipped) {
  const int num_senders = level.spread.threads;
#ifdef __linux__
  // The default 50 us timer slack would show up as lateness of every send.
  prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
#endif
  for (int64_t i = sender; i < schedule.size(); i += num_senders) {
    const Clock::time_point due = level.start + std::chrono::duration_cast<Clock::duration>(
                                                    absl::ToChronoNanoseconds(schedule.offset(i)));
    if (due >= level.window_end) break;
    std::this_thread::sleep_until(due);
    const Clock::time_point now = Clock::now();
    const bool in_window = due >= level.window_begin;
    if (in_window) lateness->Record(absl::FromChrono(now - due));
    Call* call = nullptr;
    {
      absl::MutexLock lock(&level.free_mu);
      if (!level.free_calls.empty()) {
        call = level.free_calls.back();
        level.free_calls.pop_back();
      }
    }
    if (call == nullptr) {
      if (in_window) ++*skipped;
      continue;
    }
    call->channel = static_cast<int>(i % level.spread.channels);
    call->worker = call->channel % level.spread.threads;
    level.references.fetch_add(1, std::memory_order_relaxed);
    Start(call);
  }
  Release(level);
}

double LoadGenerator::WaitForLevel(Level& level, double level_value) {
  std::optional<double> cpu_begin;
  std::optional<double> cpu_end;
  const auto interval = absl::ToChronoNanoseconds(options_.progress_interval);
  while (true) {
    const Clock::time_point now = Clock::now();
    if (!cpu_begin && now >= level.window_begin) cpu_begin = ProcessCpuSeconds();
    if (!cpu_end && now >= level.window_end) cpu_end = ProcessCpuSeconds();
    if (options_.on_progress) {
      Progress progress;
      progress.mode = level.mode;
      progress.level = level_value;
      progress.phase = now < level.window_begin ? Progress::Phase::kWarmup
                       : now < level.window_end ? Progress::Phase::kMeasure
                                                : Progress::Phase::kDrain;
      progress.elapsed = absl::FromChrono(now - level.start);
      progress.total = options_.warmup + options_.duration;
      progress.completed = level.completed.load(std::memory_order_relaxed);
      options_.on_progress(progress);
    }
    Clock::time_point wake = now + std::chrono::duration_cast<Clock::duration>(interval);
    if (!cpu_begin) {
      wake = std::min(wake, level.window_begin);
    } else if (!cpu_end) {
      wake = std::min(wake, level.window_end);
    }
    if (level.done.WaitForNotificationWithTimeout(absl::FromChrono(wake - now))) break;
  }
  const double begin = cpu_begin.value_or(ProcessCpuSeconds());
  const double end = cpu_end.value_or(ProcessCpuSeconds());
  return (end - begin) / absl::ToDoubleSeconds(options_.duration);
}

absl::StatusOr<LevelResult> LoadGenerator::Run(LoadMode mode, double level_value) {
  const bool closed = mode == LoadMode::kConcurrency;
  if (closed && (level_value < 1 || level_value > kMaxConcurrency ||
                 level_value != std::floor(level_value))) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "concurrency must be an integer in [1, %d]; got %g", kMaxConcurrency, level_value));
  }
  std::unique_ptr<ArrivalSchedule> schedule;
  if (!closed) {
    ArrivalSchedule::Options schedule_options;
    schedule_options.rate_per_s = level_value;
    schedule_options.span = options_.warmup + options_.duration;
    schedule_options.seed = options_.seed;
    absl::StatusOr<std::unique_ptr<ArrivalSchedule>> created =
        ArrivalSchedule::Create(schedule_options);
    if (!created.ok()) return created.status();
    schedule = *std::move(created);
  }

  Level level;
  level.mode = mode;
  level.spread = LevelSpread(options_, mode, level_value);
  level.stats.resize(level.spread.threads);
  const int num_calls = closed ? static_cast<int>(level_value) : options_.max_requests_in_flight;
  // With shared memory, each call its own slot, registered for this level only (destroyed,
  // hence unregistered, after every call has completed).
  std::unique_ptr<SharedMemorySlots> slots;
  if (options_.shared_memory) {
    SharedMemorySlots::Options slot_options;
    slot_options.slots = num_calls;
    absl::StatusOr<std::unique_ptr<SharedMemorySlots>> created = SharedMemorySlots::Create(
        slot_options, *control_stub_, options_.security.get(), probe_request_, probe_response_);
    if (!created.ok()) return created.status();
    slots = *std::move(created);
  }
  for (int i = 0; i < num_calls; ++i) {
    auto call = std::make_unique<Call>();
    call->level = &level;
    // A channel's calls all complete on one thread, so that one thread reads each connection.
    call->channel = i % level.spread.channels;
    call->worker = call->channel % level.spread.threads;
    if (slots != nullptr) {
      const std::string bytes = slots->request(i).SerializeAsString();
      grpc::Slice slice(bytes);
      call->request = grpc::ByteBuffer(&slice, 1);
    } else {
      call->request = request_;
    }
    level.calls.push_back(std::move(call));
  }
  level.start = Clock::now();
  level.window_begin = level.start + absl::ToChronoNanoseconds(options_.warmup);
  level.window_end = level.window_begin + absl::ToChronoNanoseconds(options_.duration);
  level.hard_stop = level.window_end + absl::ToChronoNanoseconds(options_.drain_timeout);

  // Open loop: one sender per completion thread; they share the schedule round robin (arrival
  // i goes to sender i % threads), since starting a call costs the sending thread gRPC's send
  // path.
  const int num_senders = closed ? 0 : level.spread.threads;
  std::vector<LatencyRecorder> lateness(num_senders);
  std::vector<int64_t> skipped(num_senders, 0);
  std::vector<std::thread> senders;
  if (closed) {
    // Run() holds the level's first reference until every call is out.
    for (auto& call : level.calls) {
      level.references.fetch_add(1, std::memory_order_relaxed);
      Start(call.get());
    }
    Release(level);
  } else {
    {
      absl::MutexLock lock(&level.free_mu);
      for (auto& call : level.calls) level.free_calls.push_back(call.get());
    }
    // Each sender thread holds one of the level's references until its share is sent.
    level.references.fetch_add(num_senders - 1, std::memory_order_relaxed);
    for (int i = 0; i < num_senders; ++i) {
      senders.emplace_back(
          [&, i] { SendOnSchedule(level, *schedule, i, &lateness[i], &skipped[i]); });
    }
  }
  const double cpu_cores = WaitForLevel(level, level_value);
  for (std::thread& sender : senders) sender.join();

  LevelResult result;
  result.mode = mode;
  result.level = level_value;
  result.batch = options_.batch;
  result.window = options_.duration;
  LatencyRecorder latency;
  for (const WorkerStats& stats : level.stats) {
    latency.Merge(stats.latency);
    result.statuses.Merge(stats.statuses);
  }
  result.latency = latency.Summarize();
  if (!closed) {
    LatencyRecorder all_lateness;
    for (const LatencyRecorder& recorder : lateness) all_lateness.Merge(recorder);
    result.send_lateness = all_lateness.Summarize();
    for (int64_t n : skipped) result.skipped += n;
  }
  result.client_cpu_cores = cpu_cores;
  result.channels = level.spread.channels;
  result.threads = level.spread.threads;
  return result;
}

}  // namespace coalesce
