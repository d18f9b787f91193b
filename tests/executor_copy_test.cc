// The executor's gather, scatter and answers split over its copy threads
// (Executor::Options::copy_threads): the same bytes, at the same offsets, as the worker thread
// copying alone, and every request answered once.
#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "execution/executor.h"
#include "execution/half.h"
#include "execution/model_statistics.h"
#include "gtest/gtest.h"
#include "serving/metrics.h"
#include "tests/fake_clock.h"

namespace coalesce {
namespace {

constexpr int kWidth = 1024;  // Floats per row: 4 KiB rows, so a few rows pass copy_split_bytes.

// OUT = 2 * IN + 1 elementwise; ROW = the row's index within the batch. Keeps a copy of every
// gathered input. `width` floats per row.
class WideBackend : public Backend {
 public:
  explicit WideBackend(int width = kWidth) : width_(width) {
    metadata_.name = "wide";
    metadata_.max_batch_size = 64;
    metadata_.inputs.push_back({"IN", DataType::kFp32, {width}});
    metadata_.outputs.push_back({"OUT", DataType::kFp32, {width}});
    metadata_.outputs.push_back({"ROW", DataType::kFp32, {1}});
  }
  const ModelMetadata& metadata() const override { return metadata_; }
  // With `half`, IN and OUT are staged as FP16 (ROW stays FP32), as a GPU backend computing in
  // fp16 asks; OUT = 2 * IN + 1 computed on the widened values and narrowed again.
  const StagingLayout& InputStaging(int i) const override {
    return half ? StagingLayout::Fp16() : StagingLayout::Wire();
  }
  const StagingLayout& OutputStaging(int o) const override {
    return half && o == 0 ? StagingLayout::Fp16() : StagingLayout::Wire();
  }
  absl::Status Execute(int worker, int64_t rows, absl::Span<const char* const> inputs,
                       absl::Span<char* const> outputs) override {
    if (half) {
      const uint16_t* in = reinterpret_cast<const uint16_t*>(inputs[0]);
      uint16_t* out = reinterpret_cast<uint16_t*>(outputs[0]);
      float* row = reinterpret_cast<float*>(outputs[1]);
      for (int64_t i = 0; i < rows * width_; ++i) {
        out[i] = FloatToHalf(2 * HalfToFloat(in[i]) + 1);
      }
      for (int64_t r = 0; r < rows; ++r) row[r] = static_cast<float>(r);
      return absl::OkStatus();
    }
    const float* in = reinterpret_cast<const float*>(inputs[0]);
    float* out = reinterpret_cast<float*>(outputs[0]);
    float* row = reinterpret_cast<float*>(outputs[1]);
    for (int64_t i = 0; i < rows * width_; ++i) out[i] = 2 * in[i] + 1;
    for (int64_t r = 0; r < rows; ++r) row[r] = static_cast<float>(r);
    absl::MutexLock lock(&mu_);
    gathered_.emplace_back(in, in + rows * width_);
    addresses_.push_back(inputs[0]);
    return absl::OkStatus();
  }
  std::string DeviceDescription() const override { return "test"; }

  bool half = false;

  std::vector<std::vector<float>> gathered() {
    absl::MutexLock lock(&mu_);
    return gathered_;
  }
  // Where each batch's IN lay when Execute() read it.
  std::vector<const char*> addresses() {
    absl::MutexLock lock(&mu_);
    return addresses_;
  }

 private:
  const int width_;
  ModelMetadata metadata_;
  absl::Mutex mu_;
  std::vector<std::vector<float>> gathered_ ABSL_GUARDED_BY(mu_);
  std::vector<const char*> addresses_ ABSL_GUARDED_BY(mu_);
};

// One request of `rows` rows whose values start at `first` and count up; its answers.
struct Call {
  Call(int64_t rows, float first, int width) : width(width), input(rows * width) {
    for (size_t i = 0; i < input.size(); ++i) input[i] = first + static_cast<float>(i);
  }
  int64_t rows() const { return static_cast<int64_t>(input.size()) / width; }
  int width;
  std::vector<float> input;
  std::string out;
  std::string row;
  // Point at `out` and `row` once the call lies where it stays (set where its request is made).
  StringOutput out_buffer{nullptr};
  StringOutput row_buffer{nullptr};
  absl::Status status;
  int answers = 0;  // Written by whichever thread answers; read after the counter says all did.
};

// The requests' row counts: different sizes, so a wrong offset shows.
const std::vector<int64_t> kRows = {1, 3, 2, 5, 1, 4, 2, 6, 1, 7, 3, 1, 2, 8, 1, 2};

std::vector<std::unique_ptr<Call>> MakeCalls(float first, int width = kWidth) {
  std::vector<std::unique_ptr<Call>> calls;
  for (int64_t rows : kRows) {
    calls.push_back(std::make_unique<Call>(rows, first, width));
    first += static_cast<float>(rows * width);
  }
  return calls;
}

// Each request's done callback runs `on_answer` (if set), then records the answer.
Batch MakeBatch(std::vector<std::unique_ptr<Call>>& calls, absl::BlockingCounter& counter,
                std::function<void()> on_answer = nullptr) {
  Batch batch;
  for (auto& call : calls) {
    InferRequest::Options options;
    options.rows = call->rows();
    options.inputs.emplace_back(reinterpret_cast<const char*>(call->input.data()),
                                call->input.size() * sizeof(float));
    call->out_buffer = StringOutput(&call->out);
    call->row_buffer = StringOutput(&call->row);
    options.outputs = {&call->out_buffer, &call->row_buffer};
    Call* c = call.get();
    batch.requests.push_back(std::make_unique<InferRequest>(
        std::move(options), [c, &counter, on_answer](absl::Status s) {
          if (on_answer) on_answer();
          c->status = std::move(s);
          ++c->answers;
          counter.DecrementCount();
        }));
    batch.rows += call->rows();
  }
  return batch;
}

// The threads that answered. The first answer waits until another thread has answered, so a
// split answer stage always shows two threads, and answers all on one thread time out (a
// failure, not a hang).
class AnswerThreads {
 public:
  void Answered() {
    bool first, second;
    {
      absl::MutexLock lock(&mu_);
      first = threads_.empty();
      second = threads_.insert(std::this_thread::get_id()).second && threads_.size() == 2;
    }
    if (second) other_answered_.Notify();
    if (first && !other_answered_.WaitForNotificationWithTimeout(absl::Seconds(30))) {
      absl::MutexLock lock(&mu_);
      timed_out_ = true;
    }
  }
  size_t threads() {
    absl::MutexLock lock(&mu_);
    return threads_.size();
  }
  bool timed_out() {
    absl::MutexLock lock(&mu_);
    return timed_out_;
  }

 private:
  absl::Notification other_answered_;
  absl::Mutex mu_;
  std::set<std::thread::id> threads_ ABSL_GUARDED_BY(mu_);
  bool timed_out_ ABSL_GUARDED_BY(mu_) = false;
};

std::vector<float> Floats(const std::string& bytes) {
  std::vector<float> v(bytes.size() / sizeof(float));
  std::memcpy(v.data(), bytes.data(), bytes.size());
  return v;
}

class ExecutorCopyTest : public ::testing::Test {
 protected:
  // An executor with `copy_threads`, splitting any stage of two 4 KiB rows or more.
  std::unique_ptr<Executor> Make(int copy_threads, int workers = 1,
                                 ModelStatistics* statistics = nullptr) {
    Executor::Options options;
    options.num_workers = workers;
    options.copy_threads = copy_threads;
    options.statistics = statistics;
    options.copy_split_bytes = kWidth * sizeof(float);
    return *Executor::Create(options, &backend_, model_metrics_.get(), &clock_);
  }
  // Runs one batch of MakeCalls(first) and waits for every answer.
  std::vector<std::unique_ptr<Call>> RunOne(Executor& executor, float first) {
    std::vector<std::unique_ptr<Call>> calls = MakeCalls(first);
    absl::BlockingCounter counter(static_cast<int>(calls.size()));
    executor.Dispatch(MakeBatch(calls, counter));
    counter.Wait();
    return calls;
  }

  ServerMetrics metrics_{std::make_shared<prometheus::Registry>()};
  std::unique_ptr<ModelMetrics> model_metrics_ = metrics_.ForModel("wide", "1");
  FakeClock clock_;
  WideBackend backend_;
};

TEST_F(ExecutorCopyTest, SplitCopiesAnswerByteForByteAsTheWorkerAlone) {
  auto alone = Make(/*copy_threads=*/1);
  auto split = Make(/*copy_threads=*/4);
  std::vector<std::unique_ptr<Call>> expected = RunOne(*alone, 0.5f);
  std::vector<std::unique_ptr<Call>> got = RunOne(*split, 0.5f);

  EXPECT_EQ(alone->parallel_copies(), 0);
  EXPECT_EQ(split->parallel_copies(), 3);  // The gather, the scatter and the answers.
  ASSERT_EQ(got.size(), expected.size());
  for (size_t j = 0; j < got.size(); ++j) {
    EXPECT_TRUE(got[j]->status.ok()) << got[j]->status;
    EXPECT_EQ(got[j]->answers, 1) << "request " << j;
    EXPECT_EQ(got[j]->out, expected[j]->out) << "request " << j;
    EXPECT_EQ(got[j]->row, expected[j]->row) << "request " << j;
  }
}

TEST_F(ExecutorCopyTest, SplitGatherStacksRequestsOfDifferentSizesInOrder) {
  auto split = Make(/*copy_threads=*/3);
  std::vector<std::unique_ptr<Call>> calls = RunOne(*split, 1.0f);

  std::vector<float> stacked;
  for (const auto& call : calls) {
    stacked.insert(stacked.end(), call->input.begin(), call->input.end());
  }
  ASSERT_EQ(backend_.gathered().size(), 1u);
  EXPECT_EQ(backend_.gathered()[0], stacked);
}

TEST_F(ExecutorCopyTest, SplitScatterGivesEachRequestItsOwnRows) {
  auto split = Make(/*copy_threads=*/4);
  std::vector<std::unique_ptr<Call>> calls = RunOne(*split, 2.0f);

  int64_t first_row = 0;
  for (const auto& call : calls) {
    std::vector<float> want(call->input.size());
    for (size_t i = 0; i < want.size(); ++i) want[i] = 2 * call->input[i] + 1;
    std::vector<float> rows(call->rows());
    for (int64_t r = 0; r < call->rows(); ++r) rows[r] = static_cast<float>(first_row + r);
    EXPECT_EQ(Floats(call->out), want) << "request starting at row " << first_row;
    EXPECT_EQ(Floats(call->row), rows) << "request starting at row " << first_row;
    EXPECT_EQ(call->answers, 1);
    first_row += call->rows();
  }
}

TEST_F(ExecutorCopyTest, SmallBatchCopiesOnTheWorkerThread) {
  // The batch moves 196 KiB each way (49 rows of 4 KiB), under one piece of 256 KiB.
  Executor::Options options;
  options.num_workers = 1;
  options.copy_threads = 4;
  options.copy_split_bytes = 64 * kWidth * sizeof(float);
  auto executor = *Executor::Create(options, &backend_, model_metrics_.get(), &clock_);
  std::vector<std::unique_ptr<Call>> calls = RunOne(*executor, 3.0f);

  EXPECT_EQ(executor->parallel_copies(), 0);
  for (const auto& call : calls) EXPECT_EQ(call->answers, 1);
  EXPECT_EQ(Floats(calls[0]->out)[0], 2 * 3.0f + 1);
}

TEST_F(ExecutorCopyTest, TwoWorkersShareOneCopyPool) {
  auto split = Make(/*copy_threads=*/3, /*workers=*/2);
  constexpr int kBatches = 12;
  std::vector<std::vector<std::unique_ptr<Call>>> calls;
  absl::BlockingCounter counter(kBatches * static_cast<int>(kRows.size()));
  for (int b = 0; b < kBatches; ++b) {
    calls.push_back(MakeCalls(static_cast<float>(b)));
    split->Dispatch(MakeBatch(calls.back(), counter));
  }
  counter.Wait();

  EXPECT_EQ(split->parallel_copies(), 3 * kBatches);
  for (int b = 0; b < kBatches; ++b) {
    for (const auto& call : calls[b]) {
      ASSERT_EQ(call->answers, 1);
      std::vector<float> out = Floats(call->out);
      ASSERT_EQ(out.size(), call->input.size());
      EXPECT_EQ(out.front(), 2 * call->input.front() + 1) << "batch " << b;
      EXPECT_EQ(out.back(), 2 * call->input.back() + 1) << "batch " << b;
    }
  }
}

TEST_F(ExecutorCopyTest, StreamingGatherCopiesRowsOfAnySizeExactly) {
  // 3-float rows (12 bytes): most requests start and end off a 16-byte boundary, so the
  // streaming copy's unaligned head and tail are exercised along with its 64-byte body.
  WideBackend narrow(3);
  for (bool streaming : {true, false}) {
    Executor::Options options;
    options.num_workers = 1;
    options.copy_threads = 3;
    options.copy_split_bytes = 16;
    options.streaming_gather = streaming;
    auto executor = *Executor::Create(options, &narrow, model_metrics_.get(), &clock_);
    std::vector<std::unique_ptr<Call>> calls = MakeCalls(0.25f, 3);
    absl::BlockingCounter counter(static_cast<int>(calls.size()));
    executor->Dispatch(MakeBatch(calls, counter));
    counter.Wait();

    std::vector<float> stacked;
    for (const auto& call : calls) {
      stacked.insert(stacked.end(), call->input.begin(), call->input.end());
      EXPECT_EQ(call->answers, 1);
    }
    EXPECT_EQ(narrow.gathered().back(), stacked) << "streaming " << streaming;
    EXPECT_EQ(executor->parallel_copies(), 3) << "streaming " << streaming;
  }
}

TEST_F(ExecutorCopyTest, SplitAnswersRunOnSeveralThreadsAndAnswerEachRequestOnce) {
  auto split = Make(/*copy_threads=*/4);
  AnswerThreads answer_threads;
  std::vector<std::unique_ptr<Call>> calls = MakeCalls(4.0f);
  absl::BlockingCounter counter(static_cast<int>(calls.size()));
  split->Dispatch(MakeBatch(calls, counter, [&] { answer_threads.Answered(); }));
  counter.Wait();
  split->Stop();  // Every piece has returned: a second answer would show below.

  EXPECT_FALSE(answer_threads.timed_out())
      << "no other thread answered while the first answer waited";
  EXPECT_GT(answer_threads.threads(), 1u);
  EXPECT_EQ(split->parallel_copies(), 3);  // The gather, the scatter and the answers.
  for (size_t j = 0; j < calls.size(); ++j) {
    const Call& call = *calls[j];
    EXPECT_EQ(call.answers, 1) << "request " << j;
    EXPECT_TRUE(call.status.ok()) << call.status;
    std::vector<float> want(call.input.size());
    for (size_t i = 0; i < want.size(); ++i) want[i] = 2 * call.input[i] + 1;
    EXPECT_EQ(Floats(call.out), want) << "request " << j;
  }
}

TEST_F(ExecutorCopyTest, EveryAnswerSeesItsBatchInTheStatistics) {
  for (int copy_threads : {1, 4}) {
    ModelStatistics statistics;
    auto executor = Make(copy_threads, /*workers=*/1, &statistics);
    absl::Mutex mu;
    uint64_t fewest_batches = std::numeric_limits<uint64_t>::max();
    std::vector<std::unique_ptr<Call>> calls = MakeCalls(5.0f);
    absl::BlockingCounter counter(static_cast<int>(calls.size()));
    executor->Dispatch(MakeBatch(calls, counter, [&] {
      const uint64_t batches = statistics.Get().execution_count;
      absl::MutexLock lock(&mu);
      fewest_batches = std::min(fewest_batches, batches);
    }));
    counter.Wait();
    executor->Stop();

    absl::MutexLock lock(&mu);
    EXPECT_EQ(fewest_batches, 1u) << "copy_threads " << copy_threads;
    EXPECT_EQ(executor->parallel_copies(), copy_threads > 1 ? 3 : 0)
        << "copy_threads " << copy_threads;
  }
}

TEST_F(ExecutorCopyTest, Fp16StagingNarrowsInputsAndWidensOutputsOnEveryPath) {
  backend_.half = true;
  // What each answer must hold: the backend's fp16 arithmetic on the narrowed input, widened.
  auto expected_out = [](const Call& call) {
    std::vector<float> out;
    for (float x : call.input) {
      out.push_back(HalfToFloat(FloatToHalf(2 * HalfToFloat(FloatToHalf(x)) + 1)));
    }
    return out;
  };
  for (int copy_threads : {1, 4}) {
    auto executor = Make(copy_threads);
    // Values past 2048 are not all halves: the narrowing shows.
    std::vector<std::unique_ptr<Call>> calls = RunOne(*executor, 1000.25f);
    int64_t first_row = 0;
    for (size_t j = 0; j < calls.size(); ++j) {
      const Call& call = *calls[j];
      EXPECT_TRUE(call.status.ok()) << call.status;
      EXPECT_EQ(call.answers, 1);
      ASSERT_EQ(call.out.size(), call.input.size() * sizeof(float)) << "request " << j;
      EXPECT_EQ(Floats(call.out), expected_out(call)) << "copy_threads " << copy_threads
                                                      << " request " << j;
      // ROW is staged as FP32 and comes back as it was written.
      std::vector<float> rows;
      for (int64_t r = 0; r < call.rows(); ++r) {
        rows.push_back(static_cast<float>(first_row + r));
      }
      EXPECT_EQ(Floats(call.row), rows) << "request " << j;
      first_row += call.rows();
    }
    EXPECT_EQ(executor->parallel_copies(), copy_threads > 1 ? 3 : 0);
  }
  // A lone request is gathered too (narrowed), not passed through.
  auto executor = Make(1);
  Call lone(2, 3000.5f, kWidth);
  absl::BlockingCounter counter(1);
  Batch batch;
  InferRequest::Options options;
  options.rows = lone.rows();
  options.inputs.emplace_back(reinterpret_cast<const char*>(lone.input.data()),
                              lone.input.size() * sizeof(float));
  lone.out_buffer = StringOutput(&lone.out);
  lone.row_buffer = StringOutput(&lone.row);
  options.outputs = {&lone.out_buffer, &lone.row_buffer};
  batch.requests.push_back(std::make_unique<InferRequest>(std::move(options), [&](absl::Status s) {
    lone.status = std::move(s);
    counter.DecrementCount();
  }));
  batch.rows = lone.rows();
  executor->Dispatch(std::move(batch));
  counter.Wait();
  EXPECT_TRUE(lone.status.ok()) << lone.status;
  EXPECT_EQ(Floats(lone.out), expected_out(lone));
}

TEST_F(ExecutorCopyTest, ALoneRequestIsPassedWhereItLiesOnlyWhenAlignedForItsElements) {
  auto executor = Make(1);
  // One row of floats, at an aligned address and one byte past it: a view into the bytes gRPC
  // received may start anywhere.
  std::vector<float> row(kWidth);
  for (int i = 0; i < kWidth; ++i) row[i] = 0.5f + static_cast<float>(i);
  std::vector<char> bytes((kWidth + 1) * sizeof(float));
  for (size_t offset : {size_t{0}, size_t{1}}) {
    char* const input = bytes.data() + offset;
    std::memcpy(input, row.data(), kWidth * sizeof(float));
    std::string out, row_index;
    StringOutput out_buffer(&out), row_buffer(&row_index);
    absl::Status status = absl::UnknownError("not answered");
    absl::BlockingCounter counter(1);
    InferRequest::Options options;
    options.rows = 1;
    options.inputs.emplace_back(input, kWidth * sizeof(float));
    options.outputs = {&out_buffer, &row_buffer};
    Batch batch;
    batch.requests.push_back(std::make_unique<InferRequest>(std::move(options), [&](absl::Status s) {
      status = std::move(s);
      counter.DecrementCount();
    }));
    batch.rows = 1;
    executor->Dispatch(std::move(batch));
    counter.Wait();
    ASSERT_TRUE(status.ok()) << status;
    std::vector<float> expected;
    for (float x : row) expected.push_back(2 * x + 1);
    EXPECT_EQ(Floats(out), expected) << "offset " << offset;
    const char* seen = backend_.addresses().back();
    if (offset == 0) {
      EXPECT_EQ(seen, input) << "an aligned lone request is read where it lies";
    } else {
      EXPECT_NE(seen, input) << "a misaligned lone request is staged";
      EXPECT_EQ(reinterpret_cast<uintptr_t>(seen) % alignof(float), 0u);
    }
  }
}

TEST_F(ExecutorCopyTest, CreateRefusesAStagingLayoutThatDoesNotFitItsTensor) {
  // FP16 staging asked for an input that is FP16 on the wire already.
  class Fp16Wire : public WideBackend {
   public:
    Fp16Wire() {
      metadata_ = WideBackend::metadata();
      metadata_.inputs[0].dtype = DataType::kFp16;
      half = true;
    }
    const ModelMetadata& metadata() const override { return metadata_; }

   private:
    ModelMetadata metadata_;
  } fp16_wire;
  Executor::Options options;
  absl::StatusOr<std::unique_ptr<Executor>> executor =
      Executor::Create(options, &fp16_wire, model_metrics_.get(), &clock_);
  EXPECT_EQ(executor.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(executor.status().message(),
            "model 'wide' input 'IN': FP16 staging takes only FP32 tensors of fixed dims, not "
            "FP16");
}

TEST_F(ExecutorCopyTest, CreateRejectsNegativeCopyThreads) {
  Executor::Options options;
  options.copy_threads = -1;
  absl::StatusOr<std::unique_ptr<Executor>> executor =
      Executor::Create(options, &backend_, model_metrics_.get(), &clock_);
  EXPECT_EQ(executor.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(executor.status().message().find("copy_threads must be >= 0, got -1"),
            std::string::npos)
      << executor.status();
}

TEST_F(ExecutorCopyTest, CreateRejectsZeroCopySplitBytes) {
  Executor::Options options;
  options.copy_split_bytes = 0;
  absl::StatusOr<std::unique_ptr<Executor>> executor =
      Executor::Create(options, &backend_, model_metrics_.get(), &clock_);
  EXPECT_EQ(executor.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(executor.status().message().find("copy_split_bytes must be >= 1, got 0"),
            std::string::npos)
      << executor.status();
}

TEST(ExecutorDefaultsTest, DefaultCopyThreadsIsHalfTheHardwareThreadsUpToFour) {
  const int hardware = static_cast<int>(std::thread::hardware_concurrency());
  EXPECT_EQ(Executor::DefaultCopyThreads(), std::clamp(hardware / 2, 1, 4));
  EXPECT_EQ(Executor::Options().copy_threads, Executor::DefaultCopyThreads());
}

}  // namespace
}  // namespace coalesce
