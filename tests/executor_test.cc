#include "execution/executor.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "serving/metrics.h"
#include "tests/fake_clock.h"
#include "tests/metric_value.h"

namespace coalesce {
namespace {

ModelMetadata OneFloatModel() {
  ModelMetadata m;
  m.name = "affine";
  m.max_batch_size = 8;
  m.inputs.push_back({"IN", DataType::kFp32, {2}});
  m.outputs.push_back({"OUT", DataType::kFp32, {2}});
  m.outputs.push_back({"ROW", DataType::kFp32, {1}});
  return m;
}

// OUT = 2 * IN + 1 elementwise; ROW = the row's index within the batch. Fails on demand: every
// batch (`fail`), or a batch holding the value `poison` (with `poison_code`).
class AffineBackend : public Backend {
 public:
  const ModelMetadata& metadata() const override { return metadata_; }
  absl::Status Execute(int worker, int64_t rows, absl::Span<const char* const> inputs,
                       absl::Span<char* const> outputs) override {
    {
      absl::MutexLock lock(&mu_);
      max_in_backend_ = std::max(max_in_backend_, ++in_backend_);
      if (worker < 0 || worker >= kMaxWorkers) {
        bad_worker_ = true;
        worker = 0;
      }
      max_in_worker_ = std::max(max_in_worker_, ++in_worker_[worker]);
      ++calls_of_[worker];
    }
    absl::Status status = Compute(rows, inputs, outputs);
    absl::MutexLock lock(&mu_);
    --in_backend_;
    --in_worker_[worker];
    return status;
  }
  absl::Status Compute(int64_t rows, absl::Span<const char* const> inputs,
                       absl::Span<char* const> outputs) {
    if (gate != nullptr) gate->WaitForNotification();
    if (before_compute) before_compute(reinterpret_cast<const float*>(inputs[0])[0]);
    {
      absl::MutexLock lock(&mu_);
      batch_sizes_.push_back(rows);
    }
    if (fail) return absl::InternalError("injected failure");
    const float* values = reinterpret_cast<const float*>(inputs[0]);
    if (std::find(values, values + 2 * rows, poison) != values + 2 * rows) {
      return absl::Status(poison_code, "poison value in the batch");
    }
    {
      absl::MutexLock lock(&mu_);
      input_buffers_.push_back(inputs[0]);
    }
    const float* in = reinterpret_cast<const float*>(inputs[0]);
    float* out = reinterpret_cast<float*>(outputs[0]);
    float* row = reinterpret_cast<float*>(outputs[1]);
    for (int64_t r = 0; r < rows; ++r) {
      out[2 * r] = 2 * in[2 * r] + 1;
      out[2 * r + 1] = 2 * in[2 * r + 1] + 1;
      row[r] = static_cast<float>(r);
    }
    return absl::OkStatus();
  }
  std::string DeviceDescription() const override { return "test"; }
  const StagingLayout& InputStaging(int i) const override {
    return layout != nullptr ? *layout : StagingLayout::Wire();
  }
  const StagingLayout& OutputStaging(int o) const override {
    return layout != nullptr ? *layout : StagingLayout::Wire();
  }
  // Reports `stages` for every batch it ran, failed or not (the executor must take them only
  // from successful ones).
  std::optional<DeviceStages> TakeDeviceStages(int worker) override { return stages; }
  std::shared_ptr<char> AllocateStaging(int64_t bytes) override {
    absl::MutexLock lock(&mu_);
    ++allocations_;
    return Backend::AllocateStaging(bytes);
  }

  int allocations() {
    absl::MutexLock lock(&mu_);
    return allocations_;
  }
  std::vector<const char*> input_buffers() {
    absl::MutexLock lock(&mu_);
    return input_buffers_;
  }

  std::vector<int64_t> batch_sizes() {
    absl::MutexLock lock(&mu_);
    return batch_sizes_;
  }
  // Calls inside Execute() now, and the most there were at once.
  int in_backend() {
    absl::MutexLock lock(&mu_);
    return in_backend_;
  }
  int max_in_backend() {
    absl::MutexLock lock(&mu_);
    return max_in_backend_;
  }
  // Calls inside Execute() now for `worker`, the most there were for one worker at once, the
  // calls each worker index got, and whether any index was outside 0 .. kMaxWorkers-1.
  static constexpr int kMaxWorkers = 4;
  int in_worker(int worker) {
    absl::MutexLock lock(&mu_);
    return in_worker_[worker];
  }
  int max_in_worker() {
    absl::MutexLock lock(&mu_);
    return max_in_worker_;
  }
  std::vector<int> calls_of() {
    absl::MutexLock lock(&mu_);
    return std::vector<int>(calls_of_, calls_of_ + kMaxWorkers);
  }
  bool bad_worker() {
    absl::MutexLock lock(&mu_);
    return bad_worker_;
  }
  // Waits until at least `n` calls are inside Execute() at once; false if that did not happen
  // within 10 s (a test that would otherwise hang fails instead).
  bool AwaitInBackend(int n) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n] { return in_backend_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), absl::Seconds(10));
  }

  bool fail = false;
  float poison = std::numeric_limits<float>::quiet_NaN();  // NaN: none (it equals nothing).
  absl::StatusCode poison_code = absl::StatusCode::kInternal;
  std::optional<DeviceStages> stages;
  // When set, the staging layout of every input and output (else as on the wire).
  const StagingLayout* layout = nullptr;
  // When set, Execute() waits for it, so a test can look at the executor mid-batch.
  absl::Notification* gate = nullptr;
  // When set, called inside Execute() with the batch's first input value (to hold one batch).
  std::function<void(float)> before_compute;

 private:
  const ModelMetadata metadata_ = OneFloatModel();
  absl::Mutex mu_;
  std::vector<int64_t> batch_sizes_ ABSL_GUARDED_BY(mu_);
  std::vector<const char*> input_buffers_ ABSL_GUARDED_BY(mu_);
  int allocations_ ABSL_GUARDED_BY(mu_) = 0;
  int in_backend_ ABSL_GUARDED_BY(mu_) = 0;
  int max_in_backend_ ABSL_GUARDED_BY(mu_) = 0;
  int in_worker_[kMaxWorkers] ABSL_GUARDED_BY(mu_) = {};
  int max_in_worker_ ABSL_GUARDED_BY(mu_) = 0;
  int calls_of_[kMaxWorkers] ABSL_GUARDED_BY(mu_) = {};
  bool bad_worker_ ABSL_GUARDED_BY(mu_) = false;
};

// Floats staged negated, so that a test can tell whether the executor copied through the layout;
// or, with `copies` off, not copied at all (as bench/engine_bench.cc leaves out a copy).
class NegatingLayout : public StagingLayout {
 public:
  explicit NegatingLayout(bool copies = true) : copies_(copies) {}
  absl::Status Fits(const TensorSpec& spec) const override { return absl::OkStatus(); }
  DataType StagedType(DataType wire) const override { return wire; }
  int64_t StagedBytes(int64_t wire_bytes) const override { return wire_bytes; }
  int64_t WireBytes(int64_t staged_bytes) const override { return staged_bytes; }
  bool keeps_wire_bytes() const override { return false; }
  void Stage(absl::string_view wire, char* staged, bool streaming) const override {
    if (!copies_) return;
    std::vector<float> values(wire.size() / sizeof(float));
    std::memcpy(values.data(), wire.data(), wire.size());
    for (float& value : values) value = -value;
    std::memcpy(staged, values.data(), wire.size());
  }
  void Unstage(const char* staged, int64_t staged_bytes, char* wire) const override {
    if (!copies_) return;
    std::vector<float> values(staged_bytes / sizeof(float));
    std::memcpy(values.data(), staged, staged_bytes);
    for (float& value : values) value = -value;
    std::memcpy(wire, values.data(), staged_bytes);
  }

 private:
  const bool copies_;
};

// One request's input, output buffers and answer.
struct Call {
  explicit Call(std::vector<float> in) : input(std::move(in)) {}
  std::vector<float> input;
  std::string out;
  std::string row;
  // Point at `out` and `row` once the call lies where it stays (set where its request is made).
  StringOutput out_buffer{nullptr};
  StringOutput row_buffer{nullptr};
  absl::Status status;
  int answers = 0;
};

std::unique_ptr<InferRequest> MakeCall(Call& call, absl::BlockingCounter& counter,
                                       bool want_row = true,
                                       absl::Time deadline = absl::InfiniteFuture(),
                                       const std::atomic<bool>* cancelled = nullptr) {
  InferRequest::Options options;
  options.deadline = deadline;
  options.cancelled = cancelled;
  options.rows = static_cast<int64_t>(call.input.size() / 2);
  options.inputs.emplace_back(reinterpret_cast<const char*>(call.input.data()),
                              call.input.size() * sizeof(float));
  call.out_buffer = StringOutput(&call.out);
  call.row_buffer = StringOutput(&call.row);
  options.outputs = {&call.out_buffer, want_row ? &call.row_buffer : nullptr};
  return std::make_unique<InferRequest>(std::move(options), [&call, &counter](absl::Status s) {
    call.status = std::move(s);
    ++call.answers;
    counter.DecrementCount();
  });
}

Executor::Options Workers(int n, std::function<void()> on_idle = nullptr) {
  Executor::Options options;
  options.num_workers = n;
  options.on_worker_idle = std::move(on_idle);
  return options;
}

std::vector<float> Floats(const std::string& bytes) {
  std::vector<float> v(bytes.size() / sizeof(float));
  std::memcpy(v.data(), bytes.data(), bytes.size());
  return v;
}

class ExecutorTest : public ::testing::Test {
 protected:
  ServerMetrics metrics_{std::make_shared<prometheus::Registry>()};
  std::unique_ptr<ModelMetrics> model_metrics_ = metrics_.ForModel("affine", "1");
  FakeClock clock_;
  AffineBackend backend_;

  // Count and sum of coalesce_batch_stage_duration_seconds{model="affine", stage=`stage`}.
  std::pair<uint64_t, double> StageHistogram(const std::string& stage) {
    for (const prometheus::MetricFamily& family : metrics_.registry()->Collect()) {
      if (family.name != "coalesce_batch_stage_duration_seconds") continue;
      for (const prometheus::ClientMetric& metric : family.metric) {
        for (const auto& label : metric.label) {
          if (label.name == "stage" && label.value == stage) {
            return {metric.histogram.sample_count, metric.histogram.sample_sum};
          }
        }
      }
    }
    return {0, -1};
  }

  // Dispatches `calls` (each asking for both outputs) as one batch, without waiting; each answer
  // counts `counter` down.
  static void DispatchBatch(Executor& executor, const std::vector<Call*>& calls,
                            absl::BlockingCounter& counter) {
    Batch batch;
    for (Call* call : calls) {
      batch.requests.push_back(MakeCall(*call, counter));
      batch.rows += static_cast<int64_t>(call->input.size() / 2);
    }
    executor.Dispatch(std::move(batch));
  }

  // Runs `calls` (each asking for both outputs) as one batch and waits for every answer.
  static void RunBatch(Executor& executor, const std::vector<Call*>& calls) {
    absl::BlockingCounter counter(static_cast<int>(calls.size()));
    DispatchBatch(executor, calls, counter);
    counter.Wait();
  }

  // Runs one batch of one request and waits for its answer.
  static void RunOneBatch(Executor& executor) {
    Call a({1, 2});
    RunBatch(executor, {&a});
  }

  // coalesce_staging_pool_total{model="affine", result=`result`}.
  double StagingCount(const std::string& result) {
    return MetricValue(*metrics_.registry(), "coalesce_staging_pool_total",
                       {{"model", "affine"}, {"version", "1"}, {"result", result}})
        .value_or(-1);
  }

  // Waits up to 10 s for the staging pool's hits to reach `hits` (threads reserve their output
  // buffers after their gather, just before the backend), then returns the count.
  double AwaitStagingHits(double hits) {
    const absl::Time give_up = absl::Now() + absl::Seconds(10);
    while (StagingCount("hit") < hits && absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    return StagingCount("hit");
  }

  // 20 rounds of `batches` two-request batches dispatched at once; every request of every round
  // is answered exactly once with its exact result.
  static void RunConcurrentRounds(Executor& executor, int batches) {
    for (int round = 0; round < 20; ++round) {
      std::vector<Call> calls;
      for (int i = 0; i < 2 * batches; ++i) {
        calls.emplace_back(std::vector<float>{float(round), float(i)});
      }
      absl::BlockingCounter counter(2 * batches);
      for (int b = 0; b < batches; ++b) {
        DispatchBatch(executor, {&calls[2 * b], &calls[2 * b + 1]}, counter);
      }
      counter.Wait();
      for (int i = 0; i < 2 * batches; ++i) {
        EXPECT_EQ(calls[i].answers, 1);
        EXPECT_EQ(Floats(calls[i].out), (std::vector<float>{2.0f * round + 1, 2.0f * i + 1}))
            << "round " << round << ", request " << i;
      }
    }
  }
};

TEST_F(ExecutorTest, DeadRequestsGetTheSharedAnswerAndTheRestRuns) {
  auto executor = *Executor::Create(Workers(1), &backend_, model_metrics_.get(), &clock_);
  Call gone({1, 2}), live({3, 4}), late({5, 6});
  std::atomic<bool> cancelled{true};
  absl::BlockingCounter counter(3);
  Batch batch;
  batch.requests.push_back(MakeCall(gone, counter, true, absl::InfiniteFuture(), &cancelled));
  batch.requests.push_back(MakeCall(live, counter));
  batch.requests.push_back(MakeCall(late, counter, true, clock_.Now()));
  batch.rows = 3;
  executor->Dispatch(std::move(batch));
  counter.Wait();
  EXPECT_EQ(gone.status, absl::CancelledError("request was not run: the client cancelled it"));
  EXPECT_EQ(late.status, absl::DeadlineExceededError("request was not run: its deadline passed"));
  ASSERT_TRUE(live.status.ok()) << live.status;
  EXPECT_EQ(Floats(live.out), (std::vector<float>{7, 9}));
  EXPECT_EQ(backend_.batch_sizes(), (std::vector<int64_t>{1}));
}

TEST_F(ExecutorTest, GathersRowsInOrderAndScattersEachRequestsRows) {
  auto executor = *Executor::Create(Workers(2), &backend_, model_metrics_.get(), &clock_);
  Call a({1, 2}), b({3, 4, 5, 6}), c({7, 8});
  absl::BlockingCounter counter(3);
  Batch batch;
  batch.requests.push_back(MakeCall(a, counter));
  batch.requests.push_back(MakeCall(b, counter, /*want_row=*/false));
  batch.requests.push_back(MakeCall(c, counter));
  batch.rows = 4;
  EXPECT_EQ(executor->idle_workers(), 2);
  executor->Dispatch(std::move(batch));
  counter.Wait();

  EXPECT_EQ(backend_.batch_sizes(), std::vector<int64_t>{4});
  for (Call* call : {&a, &b, &c}) {
    EXPECT_TRUE(call->status.ok()) << call->status;
    EXPECT_EQ(call->answers, 1);
  }
  EXPECT_EQ(Floats(a.out), (std::vector<float>{3, 5}));
  EXPECT_EQ(Floats(b.out), (std::vector<float>{7, 9, 11, 13}));
  EXPECT_EQ(Floats(c.out), (std::vector<float>{15, 17}));
  // ROW tells where each request sat in the batch: a at 0, c at 3 (after b's two rows).
  EXPECT_EQ(Floats(a.row), (std::vector<float>{0}));
  EXPECT_TRUE(b.row.empty());  // Not requested, not written.
  EXPECT_EQ(Floats(c.row), (std::vector<float>{3}));
}

TEST_F(ExecutorTest, BackendErrorFailsEveryRequestOfTheBatchOnce) {
  backend_.fail = true;
  auto executor = *Executor::Create(Workers(1), &backend_, model_metrics_.get(), &clock_);
  Call a({1, 2}), b({3, 4});
  RunBatch(*executor, {&a, &b});
  for (Call* call : {&a, &b}) {
    EXPECT_EQ(call->answers, 1);
    EXPECT_EQ(call->status.code(), absl::StatusCode::kInternal);
    EXPECT_EQ(call->status.message(), "injected failure");
    EXPECT_TRUE(call->out.empty());
  }
}

TEST_F(ExecutorTest, RecordsTheDeviceStagesTheBackendTimed) {
  auto executor = *Executor::Create(Workers(1), &backend_, model_metrics_.get(), &clock_);
  RunOneBatch(*executor);  // The backend times nothing yet: no stage is recorded.
  EXPECT_EQ(StageHistogram("copy_in").first, 0u);
  backend_.stages = Backend::DeviceStages{absl::Milliseconds(1), absl::Milliseconds(2),
                                          absl::Milliseconds(4)};
  RunOneBatch(*executor);
  RunOneBatch(*executor);
  backend_.fail = true;  // A failed batch's stages are not taken.
  RunOneBatch(*executor);
  executor->Stop();
  EXPECT_EQ(StageHistogram("copy_in"), std::make_pair(uint64_t{2}, 0.002));
  EXPECT_EQ(StageHistogram("forward"), std::make_pair(uint64_t{2}, 0.004));
  EXPECT_EQ(StageHistogram("copy_out"), std::make_pair(uint64_t{2}, 0.008));
  // The executor's own stages count every batch.
  EXPECT_EQ(StageHistogram("gather").first, 4u);
}

TEST_F(ExecutorTest, CopiesEveryRowThroughTheBackendsStagingLayout) {
  NegatingLayout negating;
  backend_.layout = &negating;
  auto executor = *Executor::Create(Workers(1), &backend_, model_metrics_.get(), &clock_);
  // The backend computes 2x + 1 on the staged -x, and its answer is negated back: -(2(-x) + 1).
  Call a({1, 2}), b({3, 4, 5, 6}), lone({7, 8});
  RunBatch(*executor, {&a, &b});
  RunBatch(*executor, {&lone});  // Staged too: the layout does not keep the wire bytes.
  EXPECT_EQ(Floats(a.out), (std::vector<float>{1, 3}));
  EXPECT_EQ(Floats(b.out), (std::vector<float>{5, 7, 9, 11}));
  EXPECT_EQ(Floats(lone.out), (std::vector<float>{13, 15}));
  EXPECT_EQ(Floats(a.row), (std::vector<float>{0}));
  EXPECT_EQ(Floats(b.row), (std::vector<float>{-1, -2}));
  // The lone request's rows reached the backend from staging, not from the request.
  ASSERT_EQ(backend_.input_buffers().size(), 2u);
  EXPECT_NE(backend_.input_buffers()[1], reinterpret_cast<const char*>(lone.input.data()));
}

TEST_F(ExecutorTest, ALayoutThatCopiesNothingLeavesTheResponsesEmptyAndAnswersEveryRequest) {
  // What bench/engine_bench.cc's variants without the gather or the scatter rely on.
  NegatingLayout copies_nothing(/*copies=*/false);
  backend_.layout = &copies_nothing;
  auto executor = *Executor::Create(Workers(1), &backend_, model_metrics_.get(), &clock_);
  Call a({1, 2}), b({3, 4});
  RunBatch(*executor, {&a, &b});
  for (Call* call : {&a, &b}) {
    EXPECT_TRUE(call->status.ok()) << call->status;
    EXPECT_EQ(call->answers, 1);
    // The backend ran; the answer's memory was allocated (StringOutput zeroes it) and nothing
    // was copied into it.
    EXPECT_EQ(call->out, std::string(2 * sizeof(float), '\0'));
  }
  EXPECT_EQ(backend_.batch_sizes(), (std::vector<int64_t>{2}));
}

TEST_F(ExecutorTest, WorkerReportsIdleAfterEachBatch) {
  absl::Mutex mu;
  int idle_calls = 0;
  auto on_idle = [&] {
    absl::MutexLock lock(&mu);
    ++idle_calls;
  };
  absl::Notification gate;
  backend_.gate = &gate;
  auto executor = *Executor::Create(Workers(1, on_idle), &backend_, model_metrics_.get(), &clock_);
  Call a({1, 2});
  absl::BlockingCounter counter(1);
  DispatchBatch(*executor, {&a}, counter);
  EXPECT_EQ(executor->idle_workers(), 0);  // Reserved until the batch is done.
  gate.Notify();
  executor->Stop();  // Runs what was dispatched, then joins.
  EXPECT_EQ(a.answers, 1);
  EXPECT_EQ(executor->idle_workers(), 1);
  absl::MutexLock lock(&mu);
  EXPECT_EQ(idle_calls, 1);
}

TEST_F(ExecutorTest, WorkersOverlapTheirBackendCallsByDefault) {
  absl::Notification gate;
  backend_.gate = &gate;
  auto executor = *Executor::Create(Workers(2), &backend_, model_metrics_.get(), &clock_);
  Call a({1, 2}), b({3, 4});
  absl::BlockingCounter counter(2);
  for (Call* call : {&a, &b}) DispatchBatch(*executor, {call}, counter);
  const bool both_in = backend_.AwaitInBackend(2);  // Both batches in the backend at once.
  gate.Notify();
  ASSERT_TRUE(both_in);
  counter.Wait();
  EXPECT_EQ(backend_.max_in_backend(), 2);
  EXPECT_EQ(Floats(b.out), (std::vector<float>{7, 9}));
  executor->Stop();
  EXPECT_EQ(StageHistogram("backend_wait").first, 0u);  // Nobody waits for the backend.
}

TEST_F(ExecutorTest, ExclusiveBackendLetsOneWorkerAtATimeIntoTheBackend) {
  absl::Notification gate;
  backend_.gate = &gate;
  Executor::Options options = Workers(2);
  options.exclusive_backend = true;
  auto executor = *Executor::Create(options, &backend_, model_metrics_.get(), &clock_);
  const double hits_before = StagingCount("hit");
  Call a({1, 2}), b({3, 4});
  absl::BlockingCounter counter(2);
  for (Call* call : {&a, &b}) DispatchBatch(*executor, {call}, counter);
  const bool one_in = backend_.AwaitInBackend(1);
  // The other worker has reserved its two output buffers (pool hits) after its gather: it is at
  // the backend's door. Given time, it must not get in while the first batch is there (a wait
  // for something that must not happen: without the lock it gets in at once).
  const double hits = AwaitStagingHits(hits_before + 4);
  absl::SleepFor(absl::Milliseconds(100));
  const int in_backend = backend_.in_backend();
  gate.Notify();
  ASSERT_TRUE(one_in);
  ASSERT_EQ(hits, hits_before + 4);
  EXPECT_EQ(in_backend, 1);
  counter.Wait();
  EXPECT_EQ(Floats(a.out), (std::vector<float>{3, 5}));
  EXPECT_EQ(Floats(b.out), (std::vector<float>{7, 9}));
  // More rounds of two batches at once: never two in the backend, every answer right.
  RunConcurrentRounds(*executor, 2);
  EXPECT_EQ(backend_.max_in_backend(), 1);
  // Every batch's wait for the backend is its own stage (2 + 20 * 2 batches).
  executor->Stop();
  EXPECT_EQ(StageHistogram("backend_wait").first, 42u);
}

TEST_F(ExecutorTest, TwoBatchesPerWorkerTakeTurnsOnTheirWorkersModel) {
  absl::Notification gate;
  backend_.gate = &gate;
  Executor::Options options = Workers(2);
  options.batches_per_worker = 2;
  auto executor = *Executor::Create(options, &backend_, model_metrics_.get(), &clock_);
  EXPECT_EQ(executor->idle_workers(), 4);  // A batch for each thread.
  const double hits_before = StagingCount("hit");
  std::vector<Call> first;
  for (int i = 0; i < 4; ++i) first.emplace_back(std::vector<float>{float(i), 1});
  absl::BlockingCounter counter(4);
  for (Call& call : first) DispatchBatch(*executor, {&call}, counter);
  // The first two batches go to different workers (a batch goes to the model with the fewest
  // batches bound for it), so both models run at once.
  const bool two_in = backend_.AwaitInBackend(2);
  // The other two threads have gathered theirs (4 batches x 2 outputs reserved: pool hits) and
  // wait at their workers' doors. Given time, neither gets in (without the per-worker lock both
  // do at once).
  const double hits = AwaitStagingHits(hits_before + 8);
  absl::SleepFor(absl::Milliseconds(100));
  const int in_backend = backend_.in_backend();
  const int in_worker0 = backend_.in_worker(0), in_worker1 = backend_.in_worker(1);
  gate.Notify();
  ASSERT_TRUE(two_in);
  ASSERT_EQ(hits, hits_before + 8);
  EXPECT_EQ(in_backend, 2);
  EXPECT_EQ(in_worker0, 1);
  EXPECT_EQ(in_worker1, 1);
  counter.Wait();
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(first[i].answers, 1);
    EXPECT_EQ(Floats(first[i].out), (std::vector<float>{2.0f * i + 1, 3})) << i;
  }
  // More rounds of four batches at once: never two calls on one worker, every answer right.
  RunConcurrentRounds(*executor, 4);
  executor->Stop();
  EXPECT_EQ(backend_.max_in_worker(), 1);
  EXPECT_FALSE(backend_.bad_worker());  // The backend saw worker indices 0 and 1 only.
  const std::vector<int> calls = backend_.calls_of();
  EXPECT_EQ(calls[0] + calls[1], 4 + 20 * 4);
  EXPECT_GE(calls[0], 2);  // Both workers' threads ran batches (the first four: two each).
  EXPECT_GE(calls[1], 2);
  EXPECT_EQ(calls[2] + calls[3], 0);
  // Every batch's wait for its worker is its own stage.
  EXPECT_EQ(StageHistogram("backend_wait").first, 84u);
  EXPECT_EQ(executor->idle_workers(), 4);
}

TEST_F(ExecutorTest, ABatchGoesToTheWorkerWhoseModelFreesUpFirst) {
  // A is held on one worker's model; B runs on the other's and is answered (so it is out of the
  // backend). C must then go to B's worker, whose model is free, not to the free thread of A's
  // worker, which would wait behind A.
  absl::Notification release_a, release_b;
  backend_.before_compute = [&](float first) {
    if (first == 100 || first == 300) release_a.WaitForNotification();
    if (first == 200) release_b.WaitForNotification();
  };
  Executor::Options options = Workers(2);
  options.batches_per_worker = 2;
  auto executor = *Executor::Create(options, &backend_, model_metrics_.get(), &clock_);
  Call a({100, 0}), b({200, 0}), c({300, 0});
  absl::BlockingCounter a_done(1), b_done(1), c_done(1);
  DispatchBatch(*executor, {&a}, a_done);
  const bool a_in = backend_.AwaitInBackend(1);
  DispatchBatch(*executor, {&b}, b_done);
  const bool b_in = backend_.AwaitInBackend(2);
  if (!a_in || !b_in) {  // B queued behind A: release both rather than hang.
    release_a.Notify();
    release_b.Notify();
    a_done.Wait();
    b_done.Wait();
    FAIL() << "A and B did not run on two models at once";
  }
  release_b.Notify();
  b_done.Wait();
  DispatchBatch(*executor, {&c}, c_done);
  const bool c_in = backend_.AwaitInBackend(2);
  const int in_worker0 = backend_.in_worker(0), in_worker1 = backend_.in_worker(1);
  release_a.Notify();
  a_done.Wait();
  c_done.Wait();
  EXPECT_TRUE(c_in);
  EXPECT_EQ(in_worker0, 1);
  EXPECT_EQ(in_worker1, 1);
  EXPECT_EQ(Floats(c.out), (std::vector<float>{601, 1}));
}

TEST_F(ExecutorTest, EveryThreadOfAWorkerHasItsOwnStaging) {
  Executor::Options options = Workers(2);
  options.batches_per_worker = 2;
  auto executor = *Executor::Create(options, &backend_, model_metrics_.get(), &clock_);
  executor->Stop();  // All four threads have started (and reserved) once Stop() has joined them.
  EXPECT_EQ(backend_.allocations(), 4 * 3);
  EXPECT_EQ(StagingCount("miss"), 4 * 3);
}

TEST_F(ExecutorTest, ReusesTheSameStagingMemoryForEveryBatch) {
  auto executor = *Executor::Create(Workers(1), &backend_, model_metrics_.get(), &clock_);
  for (int round = 0; round < 5; ++round) {
    Call a({1, 2}), b({3, 4, 5, 6});  // Sizes vary: 3 rows, then ...
    Call c({float(round), 0});
    RunBatch(*executor, round % 2 == 0 ? std::vector<Call*>{&a, &b}
                                       : std::vector<Call*>{&a, &b, &c});
    EXPECT_EQ(Floats(b.out), (std::vector<float>{7, 9, 11, 13})) << round;
  }
  // One staging buffer per input and output, allocated when the worker started, never again.
  EXPECT_EQ(backend_.allocations(), 3);
  std::vector<const char*> buffers = backend_.input_buffers();
  ASSERT_EQ(buffers.size(), 5u);
  for (const char* buffer : buffers) EXPECT_EQ(buffer, buffers[0]);
  // The pool's counters say the same: 1 worker x 3 tensors missed at start-up, and each of the
  // 5 batches (at most max_batch_size rows, several requests) hit for all 3 tensors.
  EXPECT_EQ(StagingCount("miss"), 1 * 3);
  EXPECT_EQ(StagingCount("hit"), 5 * 3);
}

TEST_F(ExecutorTest, EveryWorkerReservesItsStagingOnceAtStartUp) {
  auto executor = *Executor::Create(Workers(2), &backend_, model_metrics_.get(), &clock_);
  executor->Stop();  // Both workers have started (and reserved) once Stop() has joined them.
  EXPECT_EQ(backend_.allocations(), 2 * 3);
  EXPECT_EQ(StagingCount("miss"), 2 * 3);
  EXPECT_EQ(StagingCount("hit"), 0);
}

TEST_F(ExecutorTest, UnpooledStagingAllocatesForEveryBatch) {
  Executor::Options options = Workers(1);
  options.pool_staging = false;
  auto executor = *Executor::Create(options, &backend_, model_metrics_.get(), &clock_);
  constexpr int kBatches = 4;
  for (int round = 0; round < kBatches; ++round) {
    Call a({1, 2}), b({3, 4});
    RunBatch(*executor, {&a, &b});
    EXPECT_EQ(Floats(b.out), (std::vector<float>{7, 9})) << round;
  }
  // Nothing at start-up; every batch allocates its input and both outputs.
  EXPECT_EQ(backend_.allocations(), kBatches * 3);
  EXPECT_EQ(StagingCount("miss"), kBatches * 3);
  EXPECT_EQ(StagingCount("hit"), 0);
}

TEST_F(ExecutorTest, DeviceBusyCountsOverlappingBackendCallsOnceThroughTheExecutor) {
  // Two workers, a batch on each, held in the backend until the test lets it go, while the fake
  // clock moves: A is in the backend 0 .. 20 ms, B 10 .. 30 ms, then the device idles 20 ms.
  ServerMetrics metrics(std::make_shared<prometheus::Registry>(), &clock_);
  Executor::Options options = Workers(2);
  options.device_busy = metrics.Device("cpu");
  absl::Notification a_in, b_in, release_a, release_b;
  backend_.before_compute = [&](float value) {
    (value == 1 ? a_in : b_in).Notify();
    (value == 1 ? release_a : release_b).WaitForNotification();
  };
  auto executor = *Executor::Create(options, &backend_, model_metrics_.get(), &clock_);
  Call a({1, 1}), b({2, 2});
  absl::BlockingCounter a_done(1), b_done(1);
  DispatchBatch(*executor, {&a}, a_done);
  a_in.WaitForNotification();
  clock_.Advance(absl::Milliseconds(10));
  DispatchBatch(*executor, {&b}, b_done);
  b_in.WaitForNotification();
  clock_.Advance(absl::Milliseconds(10));
  release_a.Notify();
  a_done.Wait();  // A is answered only once it is out of the backend.
  clock_.Advance(absl::Milliseconds(10));
  release_b.Notify();
  b_done.Wait();
  clock_.Advance(absl::Milliseconds(20));
  metrics.SampleDevices();
  // Busy 30 of 50 ms (the calls' sum, 40 ms, would say 0.8).
  EXPECT_DOUBLE_EQ(
      *MetricValue(*metrics.registry(), "coalesce_device_busy_seconds_total", {{"device", "cpu"}}),
      0.030);
  EXPECT_DOUBLE_EQ(
      *MetricValue(*metrics.registry(), "coalesce_device_busy_ratio", {{"device", "cpu"}}), 0.6);
  EXPECT_EQ(a.answers, 1);
  EXPECT_EQ(b.answers, 1);
}

// Split and retry of a failed batch (the class comment of Executor).
class ExecutorSplitTest : public ExecutorTest {
 protected:
  static constexpr float kPoison = -1000;

  // One single-row request per value pair {i, i}, the one at `poisoned` (if any) sending kPoison.
  static std::vector<Call> Calls(int n, std::vector<int> poisoned = {}) {
    std::vector<Call> calls;
    for (int i = 0; i < n; ++i) {
      const bool poison = std::find(poisoned.begin(), poisoned.end(), i) != poisoned.end();
      calls.emplace_back(poison ? std::vector<float>{kPoison, 0}
                                : std::vector<float>{float(i), float(i)});
    }
    return calls;
  }
  static std::vector<Call*> Pointers(std::vector<Call>& calls) {
    std::vector<Call*> pointers;
    for (Call& call : calls) pointers.push_back(&call);
    return pointers;
  }
  // coalesce_split_batches_total and coalesce_split_retry_executions_total of the model.
  double SplitBatches() {
    return MetricValue(*metrics_.registry(), "coalesce_split_batches_total",
                       {{"model", "affine"}, {"version", "1"}})
        .value_or(-1);
  }
  double RetryExecutions() {
    return MetricValue(*metrics_.registry(), "coalesce_split_retry_executions_total",
                       {{"model", "affine"}, {"version", "1"}})
        .value_or(-1);
  }
  // Every call but those at `poisoned` answered once with its right answer; those once with
  // `code`.
  static void ExpectAnswers(const std::vector<Call>& calls, std::vector<int> poisoned,
                            absl::StatusCode code = absl::StatusCode::kInternal) {
    for (size_t i = 0; i < calls.size(); ++i) {
      EXPECT_EQ(calls[i].answers, 1) << "request " << i;
      if (std::find(poisoned.begin(), poisoned.end(), i) != poisoned.end()) {
        EXPECT_EQ(calls[i].status.code(), code) << "request " << i << ": " << calls[i].status;
        EXPECT_TRUE(calls[i].out.empty()) << "request " << i;
      } else {
        EXPECT_TRUE(calls[i].status.ok()) << "request " << i << ": " << calls[i].status;
        EXPECT_EQ(Floats(calls[i].out), (std::vector<float>{2.0f * i + 1, 2.0f * i + 1}))
            << "request " << i;
      }
    }
  }
};

TEST_F(ExecutorSplitTest, OnlyThePoisonRequestOfAFailedBatchGetsTheError) {
  backend_.poison = kPoison;
  auto executor = *Executor::Create(Workers(1), &backend_, model_metrics_.get(), &clock_);
  std::vector<Call> calls = Calls(8, {5});
  RunBatch(*executor, Pointers(calls));
  ExpectAnswers(calls, {5});
  EXPECT_EQ(calls[5].status.message(), "poison value in the batch");
  // Bisection: the failing half of each level is split again, 2 * log2(8) retries in all.
  EXPECT_EQ(backend_.batch_sizes(), (std::vector<int64_t>{8, 4, 4, 2, 2, 1, 1}));
  EXPECT_EQ(SplitBatches(), 1);
  EXPECT_EQ(RetryExecutions(), 6);
}

TEST_F(ExecutorSplitTest, EveryRequestThatFailsAloneIsIsolated) {
  backend_.poison = kPoison;
  auto executor = *Executor::Create(Workers(1), &backend_, model_metrics_.get(), &clock_);
  std::vector<Call> calls = Calls(8, {0, 6});
  RunBatch(*executor, Pointers(calls));
  ExpectAnswers(calls, {0, 6});
  EXPECT_EQ(RetryExecutions(), 2 + 4 + 4);  // Two failing parts on each level below the top.
}

TEST_F(ExecutorSplitTest, ABatchThatAlwaysFailsCostsAtMostTheRetryBudget) {
  backend_.fail = true;
  Executor::Options options = Workers(1);
  options.max_retry_executions = 6;
  auto executor = *Executor::Create(options, &backend_, model_metrics_.get(), &clock_);
  std::vector<Call> calls = Calls(16);
  RunBatch(*executor, Pointers(calls));
  for (const Call& call : calls) {
    EXPECT_EQ(call.answers, 1);
    EXPECT_EQ(call.status.message(), "injected failure");
  }
  // The budget is spent level by level: both halves, then the four quarters; the quarters that
  // fail again are answered with their error, unsplit.
  EXPECT_EQ(backend_.batch_sizes(), (std::vector<int64_t>{16, 8, 8, 4, 4, 4, 4}));
  EXPECT_EQ(RetryExecutions(), 6);
}

TEST_F(ExecutorSplitTest, ABudgetTooSmallFailsTheUnsplitPartWithItsError) {
  backend_.poison = kPoison;
  Executor::Options options = Workers(1);
  options.max_retry_executions = 2;
  auto executor = *Executor::Create(options, &backend_, model_metrics_.get(), &clock_);
  std::vector<Call> calls = Calls(8, {5});
  RunBatch(*executor, Pointers(calls));
  // The half without the poison request is answered; the other half fails whole.
  ExpectAnswers(calls, {4, 5, 6, 7});
  EXPECT_EQ(backend_.batch_sizes(), (std::vector<int64_t>{8, 4, 4}));
}

TEST_F(ExecutorSplitTest, NoRetryBudgetFailsTheWholeBatch) {
  backend_.poison = kPoison;
  Executor::Options options = Workers(1);
  options.max_retry_executions = 0;
  auto executor = *Executor::Create(options, &backend_, model_metrics_.get(), &clock_);
  std::vector<Call> calls = Calls(4, {1});
  RunBatch(*executor, Pointers(calls));
  ExpectAnswers(calls, {0, 1, 2, 3});
  EXPECT_EQ(backend_.batch_sizes(), (std::vector<int64_t>{4}));
  EXPECT_EQ(SplitBatches(), 0);
}

TEST_F(ExecutorSplitTest, AnErrorThatIsNotTheInputsFailsTheBatchWithoutRetries) {
  backend_.poison = kPoison;
  backend_.poison_code = absl::StatusCode::kUnavailable;  // As a backend whose device is lost.
  auto executor = *Executor::Create(Workers(1), &backend_, model_metrics_.get(), &clock_);
  std::vector<Call> calls = Calls(4, {1});
  RunBatch(*executor, Pointers(calls));
  ExpectAnswers(calls, {0, 1, 2, 3}, absl::StatusCode::kUnavailable);
  EXPECT_EQ(backend_.batch_sizes(), (std::vector<int64_t>{4}));
  EXPECT_EQ(RetryExecutions(), 0);
}

TEST_F(ExecutorSplitTest, ARequestThatExpiresDuringRetriesIsAnsweredDeadlineExceededOnce) {
  backend_.poison = kPoison;
  std::atomic<int> calls_in{0};
  // The first (failing) batch takes 2 s, past request 3's deadline.
  backend_.before_compute = [&](float) {
    if (calls_in++ == 0) clock_.Advance(absl::Seconds(2));
  };
  auto executor = *Executor::Create(Workers(1), &backend_, model_metrics_.get(), &clock_);
  std::vector<Call> calls = Calls(4, {2});
  absl::BlockingCounter counter(4);
  Batch batch;
  for (int i = 0; i < 4; ++i) {
    const absl::Time deadline =
        i == 3 ? clock_.Now() + absl::Seconds(1) : absl::InfiniteFuture();
    batch.requests.push_back(MakeCall(calls[i], counter, /*want_row=*/true, deadline));
  }
  batch.rows = 4;
  executor->Dispatch(std::move(batch));
  counter.Wait();
  ExpectAnswers(std::vector<Call>(calls.begin(), calls.begin() + 3), {2});
  EXPECT_EQ(calls[3].answers, 1);
  EXPECT_EQ(calls[3].status.code(), absl::StatusCode::kDeadlineExceeded) << calls[3].status;
  // Requests 0 and 1 succeed as a half; request 3 is dropped from the other before it runs.
  EXPECT_EQ(backend_.batch_sizes(), (std::vector<int64_t>{4, 2, 1}));
  EXPECT_EQ(MetricValue(*metrics_.registry(), "coalesce_expired_requests_total",
                        {{"model", "affine"}, {"version", "1"}})
                .value_or(-1),
            1);
}

TEST_F(ExecutorSplitTest, RetriesKeepEveryAnswerRightUnderConcurrentBatches) {
  backend_.poison = kPoison;
  Executor::Options options = Workers(2);
  options.batches_per_worker = 2;
  auto executor = *Executor::Create(options, &backend_, model_metrics_.get(), &clock_);
  for (int round = 0; round < 20; ++round) {
    std::vector<std::vector<Call>> batches;
    for (int b = 0; b < 4; ++b) batches.push_back(Calls(8, {(round + b) % 8}));
    absl::BlockingCounter counter(32);
    for (auto& calls : batches) DispatchBatch(*executor, Pointers(calls), counter);
    counter.Wait();
    for (int b = 0; b < 4; ++b) ExpectAnswers(batches[b], {(round + b) % 8});
  }
  executor->Stop();
  EXPECT_EQ(SplitBatches(), 80);
  EXPECT_EQ(RetryExecutions(), 80 * 6);
}

TEST_F(ExecutorTest, CreateRejectsNegativeRetryBudget) {
  Executor::Options options = Workers(1);
  options.max_retry_executions = -1;
  absl::Status status =
      Executor::Create(options, &backend_, model_metrics_.get(), &clock_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("max_retry_executions"), std::string::npos) << status;
}

TEST_F(ExecutorTest, CreateRejectsZeroWorkers) {
  EXPECT_EQ(Executor::Create(Workers(0), &backend_, model_metrics_.get(), &clock_)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ExecutorTest, CreateRejectsZeroBatchesPerWorker) {
  Executor::Options options = Workers(2);
  options.batches_per_worker = 0;
  absl::Status status =
      Executor::Create(options, &backend_, model_metrics_.get(), &clock_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("batches_per_worker"), std::string::npos) << status;
}

}  // namespace
}  // namespace coalesce
