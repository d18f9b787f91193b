// Padded batching (ModelMetadata::padding): the padding and cutting of rows, the batcher's
// grouping by bucket and the policies' rule for letting smaller buckets join (with a fake clock),
// and the executor padding a batch for a fake backend and cutting each answer back.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "engine/batcher.h"
#include "engine/deadline_policy.h"
#include "engine/padding.h"
#include "engine/size_or_delay_policy.h"
#include "execution/executor.h"
#include "execution/padded_rows.h"
#include "gtest/gtest.h"
#include "serving/metrics.h"
#include "tests/batcher_fakes.h"
#include "tests/fake_clock.h"
#include "tests/metric_value.h"
#include "tests/test_requests.h"

namespace coalesce {
namespace {

// IDS and MASK INT64 [-1], padded with 7 and 0 to buckets 4, 8, 16; HIDDEN INT64 [-1, 2] cut;
// SUM INT64 [1].
ModelMetadata PaddedModel(double max_padding_ratio = 0.5) {
  ModelMetadata m;
  m.name = "pad";
  m.max_batch_size = 8;
  m.inputs.push_back({"IDS", DataType::kInt64, {-1}});
  m.inputs.push_back({"MASK", DataType::kInt64, {-1}});
  m.outputs.push_back({"HIDDEN", DataType::kInt64, {-1, 2}});
  m.outputs.push_back({"SUM", DataType::kInt64, {1}});
  PaddingSpec padding;
  padding.buckets = {4, 8, 16};
  padding.inputs = {{0, 0, 7}, {1, 0, 0}};
  padding.outputs = {{0, 0}};
  padding.max_padding_ratio = max_padding_ratio;
  m.padding = padding;
  return m;
}

std::string Int64Bytes(const std::vector<int64_t>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * 8);
}

std::vector<int64_t> Int64s(const std::string& bytes) {
  std::vector<int64_t> values(bytes.size() / 8);
  std::memcpy(values.data(), bytes.data(), values.size() * 8);
  return values;
}

TEST(PaddingTest, ARequestPadsToTheSmallestBucketThatHoldsIt) {
  const PaddingSpec padding = *PaddedModel().padding;
  EXPECT_EQ(LengthOf(padding, {{3}, {3}}).bucket, 4);
  EXPECT_EQ(LengthOf(padding, {{4}, {4}}).bucket, 4);
  EXPECT_EQ(LengthOf(padding, {{5}, {5}}).bucket, 8);
  EXPECT_EQ(LengthOf(padding, {{5}, {5}}).length, 5);
  EXPECT_EQ(LengthOf(padding, {{16}, {16}}).bucket, 16);
}

TEST(PaddingTest, ARequestPastTheLastBucketOrWithUnequalLengthsRunsAsSent) {
  const PaddingSpec padding = *PaddedModel().padding;
  EXPECT_EQ(LengthOf(padding, {{17}, {17}}).bucket, 0);
  EXPECT_EQ(LengthOf(padding, {{3}, {5}}).bucket, 0);
}

TEST(PaddedRowsTest, PadsEachBlockOfTheVariableDimWithThePadValue) {
  ModelMetadata m = PaddedModel();
  // A [2, -1, 3] INT32 input padded with -1: each row is two blocks of length x 3 elements.
  m.inputs[0] = {"IDS", DataType::kInt32, {2, -1, 3}};
  m.padding->inputs = {{0, 1, -1}};
  m.inputs.resize(1);
  m.outputs.resize(1);
  m.outputs[0] = {"HIDDEN", DataType::kInt32, {2, -1, 3}};
  m.padding->outputs = {{0, 1}};
  absl::StatusOr<PaddedRows> rows = PaddedRows::Create(m);
  ASSERT_TRUE(rows.ok()) << rows.status();
  // One row, length 1: blocks {1, 2, 3} and {4, 5, 6}, padded to length 2.
  const std::vector<int32_t> wire = {1, 2, 3, 4, 5, 6};
  ASSERT_EQ(rows->PaddedInputBytes(0, {2, 1, 3}, 1, 2), 12 * 4);
  std::vector<int32_t> staged(12, 99);
  const int64_t pad = rows->Pad(0, {2, 1, 3},  1,
                                absl::string_view(reinterpret_cast<const char*>(wire.data()), 24),
                                2, reinterpret_cast<char*>(staged.data()));
  EXPECT_EQ(pad, 6);
  EXPECT_EQ(staged, (std::vector<int32_t>{1, 2, 3, -1, -1, -1, 4, 5, 6, -1, -1, -1}));
  // Cutting the padded row back to length 1 gives the request's own elements.
  EXPECT_EQ(rows->OutputLength(0, 12 * 4), 2);
  std::vector<int32_t> cut(6, 0);
  rows->Cut(0, 1, 2, 1, reinterpret_cast<const char*>(staged.data()),
            reinterpret_cast<char*>(cut.data()));
  EXPECT_EQ(cut, wire);
  EXPECT_EQ(rows->CutOutputBytes(0, 1, 1), 24);
}

TEST(PaddedRowsTest, RefusesAPadValueItsTypeCannotHoldExactly) {
  EXPECT_FALSE(RepeatedValue(DataType::kInt64, 0.5, 1).ok());
  EXPECT_FALSE(RepeatedValue(DataType::kUint8, 256, 1).ok());
  EXPECT_FALSE(RepeatedValue(DataType::kInt8, -129, 1).ok());
  EXPECT_FALSE(RepeatedValue(DataType::kBool, 2, 1).ok());
  EXPECT_FALSE(RepeatedValue(DataType::kFp16, 0.1, 1).ok());
  EXPECT_FALSE(RepeatedValue(DataType::kFp32, 0.1, 1).ok());
  EXPECT_EQ(*RepeatedValue(DataType::kInt64, -3, 2), Int64Bytes({-3, -3}));
  EXPECT_EQ(*RepeatedValue(DataType::kUint8, 255, 1), std::string(1, '\xff'));
  EXPECT_TRUE(RepeatedValue(DataType::kFp16, 0.5, 1).ok());
  EXPECT_TRUE(RepeatedValue(DataType::kBf16, -1, 1).ok());
}

// A pending request of `length` (bucket from PaddedModel()'s buckets).
PendingRequest Pending(int64_t length, absl::Time arrival = absl::UnixEpoch()) {
  PendingRequest r;
  r.arrival = arrival;
  r.length = length;
  r.bucket = LengthOf(*PaddedModel().padding, {{length}, {length}}).bucket;
  r.shape = r.bucket;  // One key per bucket, as the batcher keys them.
  return r;
}

TEST(JoinSmallerBucketsTest, SmallerBucketsJoinWhilePaddingStaysWithinTheRatio) {
  // A batch of one request of length 16; requests of 7 (bucket 8), 3 (bucket 4), 8 (bucket 8).
  const std::vector<PendingRequest> pending = {Pending(16), Pending(7), Pending(3), Pending(8)};
  std::vector<int64_t> batch = {0};
  const std::vector<int64_t> all = {0, 1, 2, 3};
  const int64_t rows = JoinSmallerBuckets(pending, all, 8, 0.5, batch,
                                          [](int64_t, int64_t) { return true; });
  // 16 + 7 = 23 of 32 (28% padding) joins; + 3 = 26 of 48 (46%) joins; + 8 = 34 of 64 (47%).
  EXPECT_EQ(batch, (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(rows, 4);
  // With at most 40% padding, 3 would bring 46%: it stays, 8 joins (23 + 8 of 48, 35%).
  batch = {0};
  JoinSmallerBuckets(pending, all, 8, 0.4, batch, [](int64_t, int64_t) { return true; });
  EXPECT_EQ(batch, (std::vector<int64_t>{0, 1, 3}));
}

TEST(JoinSmallerBucketsTest, NothingJoinsAFullBatchABatchOfTheSmallestBucketOrRatioZero) {
  const std::vector<PendingRequest> pending = {Pending(16), Pending(15), Pending(7)};
  const std::vector<int64_t> all = {0, 1, 2};
  auto yes = [](int64_t, int64_t) { return true; };
  std::vector<int64_t> batch = {0, 1};
  EXPECT_EQ(JoinSmallerBuckets(pending, all, 2, 0.5, batch, yes), 2);
  EXPECT_EQ(batch, (std::vector<int64_t>{0, 1}));
  batch = {2};  // Bucket 8: a request of bucket 16 is larger, not smaller.
  JoinSmallerBuckets(pending, all, 8, 0.5, batch, yes);
  EXPECT_EQ(batch, (std::vector<int64_t>{2}));
  batch = {0};
  JoinSmallerBuckets(pending, all, 8, 0, batch, yes);
  EXPECT_EQ(batch, (std::vector<int64_t>{0}));
}

TEST(PaddingPolicyTest, DeadlinePolicyLetsSmallerBucketsJoinOnlyWithinItsDeadline) {
  DeadlinePolicy::Options options;
  options.max_batch_size = 8;
  options.max_padding_ratio = 0.5;
  auto policy = *DeadlinePolicy::Create(options);
  const absl::Time now = absl::UnixEpoch();
  std::vector<PendingRequest> pending = {Pending(16), Pending(9), Pending(7)};
  FixedLatency latency(absl::Microseconds(100));
  BatchDecision decision = policy->Decide(now, pending, 1, latency, DecideMode::kServe);
  // Bucket 16 (16 and 9); 7 of bucket 8 joins (32 of 48 own).
  EXPECT_EQ(decision.batch, (std::vector<int64_t>{0, 1, 2}));
  options.max_padding_ratio = 0;
  auto separate = *DeadlinePolicy::Create(options);
  EXPECT_EQ(separate->Decide(now, pending, 1, latency, DecideMode::kServe).batch,
            (std::vector<int64_t>{0, 1}));
}

TEST(PaddingPolicyTest, PoliciesRefuseARatioOutsideZeroToOne) {
  DeadlinePolicy::Options deadline;
  deadline.max_padding_ratio = 1;
  EXPECT_FALSE(DeadlinePolicy::Create(deadline).ok());
  SizeOrDelayPolicy::Options fixed;
  fixed.max_padding_ratio = -0.1;
  EXPECT_FALSE(SizeOrDelayPolicy::Create(fixed).ok());
  EXPECT_EQ(CheckMaxPaddingRatio(1).message(), "max_padding_ratio must be in [0, 1), got 1");
  EXPECT_TRUE(CheckMaxPaddingRatio(0).ok());
  EXPECT_FALSE(CheckMaxPaddingRatio(std::nan("")).ok());
}

// A batcher over SizeOrDelayPolicy (max batch 4, delay 2 ms) for PaddedModel(ratio), driven by a
// fake clock.
class PaddingBatcherTest : public ::testing::Test {
 protected:
  void Make(double ratio) {
    metadata_ = PaddedModel(ratio);
    queue_ = *RequestQueue::Create(Capacity(100));
    SizeOrDelayPolicy::Options policy;
    policy.max_batch_size = 4;
    policy.max_queue_delay = absl::Milliseconds(2);
    policy.max_padding_ratio = ratio;
    policy_ = *SizeOrDelayPolicy::Create(policy);
    Batcher::Options options;
    options.queue = queue_.get();
    options.policy = policy_.get();
    options.sink = &sink_;
    options.latency = &latency_;
    options.clock = &clock_;
    options.padding = &*metadata_.padding;
    batcher_ = *Batcher::Create(options);
  }

  void PushLength(int64_t length) {
    InferRequest::Options options;
    options.arrival = clock_.Now();
    options.input_dims = {{length}, {length}};
    auto request = MakeRequest(&answers_.emplace_back(), std::move(options));
    ASSERT_TRUE(queue_->Push(request).ok());
  }

  // The IDS length of each request of each dispatched batch.
  std::vector<std::vector<int64_t>> Lengths() const { return DispatchedFirstDims(sink_); }

  std::deque<Answer> answers_;
  ModelMetadata metadata_;
  FakeClock clock_;
  FakeSink sink_;
  FixedLatency latency_{absl::Microseconds(100)};
  std::unique_ptr<RequestQueue> queue_;
  std::unique_ptr<BatchPolicy> policy_;
  std::unique_ptr<Batcher> batcher_;
};

TEST_F(PaddingBatcherTest, RequestsOfOneBucketShareABatchWhateverTheirLengths) {
  Make(/*ratio=*/0);
  for (int64_t length : {5, 6, 8, 7}) PushLength(length);
  batcher_->RunOnce();
  EXPECT_EQ(Lengths(), (std::vector<std::vector<int64_t>>{{5, 6, 8, 7}}));
}

TEST_F(PaddingBatcherTest, WithoutJoiningEachBucketWaitsForItsOwnBatch) {
  Make(/*ratio=*/0);
  for (int64_t length : {16, 7, 7, 8}) PushLength(length);
  EXPECT_EQ(batcher_->RunOnce(), clock_.Now() + absl::Milliseconds(2));
  EXPECT_TRUE(sink_.batches.empty());
  clock_.Advance(absl::Milliseconds(2));
  sink_.idle = 2;
  batcher_->RunOnce();
  EXPECT_EQ(Lengths(), (std::vector<std::vector<int64_t>>{{16}, {7, 7, 8}}));
}

TEST_F(PaddingBatcherTest, ABucketWithTooFewRequestsTakesSmallerOnesRatherThanWait) {
  Make(/*ratio=*/0.5);
  // 16 + 7 + 7 + 8 = 38 of 64 own: 41% padding, within the ratio. The batch is full at once.
  for (int64_t length : {16, 7, 7, 8}) PushLength(length);
  batcher_->RunOnce();
  EXPECT_EQ(Lengths(), (std::vector<std::vector<int64_t>>{{16, 7, 7, 8}}));
}

TEST_F(PaddingBatcherTest, RequestsThatWouldPadPastTheRatioWaitForTheirOwnBatch) {
  Make(/*ratio=*/0.5);
  // 16 + 3 = 19 of 32: 41%, joins; + 3 = 22 of 48: 54%, stays; so does the next 3.
  for (int64_t length : {16, 3, 3, 3}) PushLength(length);
  EXPECT_EQ(batcher_->RunOnce(), clock_.Now() + absl::Milliseconds(2));
  clock_.Advance(absl::Milliseconds(2));
  sink_.idle = 2;
  batcher_->RunOnce();
  EXPECT_EQ(Lengths(), (std::vector<std::vector<int64_t>>{{16, 3}, {3, 3}}));
}

TEST_F(PaddingBatcherTest, UnequalLengthsOrPastTheLastBucketBatchOnlyWithTheirOwnDims) {
  Make(/*ratio=*/0.5);
  PushLength(20);
  PushLength(20);
  {
    InferRequest::Options options;
    options.arrival = clock_.Now();
    options.input_dims = {{3}, {5}};
    auto request = MakeRequest(&answers_.emplace_back(), std::move(options));
    ASSERT_TRUE(queue_->Push(request).ok());
  }
  PushLength(3);
  clock_.Advance(absl::Milliseconds(2));
  sink_.idle = 3;
  batcher_->RunOnce();
  EXPECT_EQ(Lengths(), (std::vector<std::vector<int64_t>>{{20, 20}, {3}, {3}}));
}

// IDS, MASK -> HIDDEN[t] = (10 * IDS[t], MASK[t]) for every position, SUM = sum of IDS * MASK.
// Records the dims and staged IDS of every batch.
class MaskedSumBackend : public Backend {
 public:
  MaskedSumBackend() : metadata_(PaddedModel()) {}
  const ModelMetadata& metadata() const override { return metadata_; }
  std::string DeviceDescription() const override { return "fake"; }
  absl::Status Execute(int, int64_t, absl::Span<const char* const>,
                       absl::Span<char* const>) override {
    return absl::InternalError("variable dims only");
  }
  absl::Status ExecuteVariable(int worker, int64_t rows, absl::Span<const char* const> inputs,
                               const VariableBatch& batch) override {
    const int64_t length = batch.input_dims[0][0];
    const auto* ids = reinterpret_cast<const int64_t*>(inputs[0]);
    const auto* mask = reinterpret_cast<const int64_t*>(inputs[1]);
    auto* hidden = reinterpret_cast<int64_t*>(batch.output_buffer(0, rows * length * 2 * 8));
    auto* sum = reinterpret_cast<int64_t*>(batch.output_buffer(1, rows * 8));
    for (int64_t r = 0; r < rows; ++r) {
      sum[r] = 0;
      for (int64_t t = 0; t < length; ++t) {
        const int64_t k = r * length + t;
        hidden[2 * k] = 10 * ids[k];
        hidden[2 * k + 1] = mask[k];
        sum[r] += ids[k] * mask[k];
      }
    }
    absl::MutexLock lock(&mu_);
    dims_.push_back(batch.input_dims);
    staged_ids_.emplace_back(ids, ids + rows * length);
    return absl::OkStatus();
  }
  std::vector<std::vector<std::vector<int64_t>>> dims() {
    absl::MutexLock lock(&mu_);
    return dims_;
  }
  std::vector<std::vector<int64_t>> staged_ids() {
    absl::MutexLock lock(&mu_);
    return staged_ids_;
  }

 private:
  const ModelMetadata metadata_;
  absl::Mutex mu_;
  std::vector<std::vector<std::vector<int64_t>>> dims_ ABSL_GUARDED_BY(mu_);
  std::vector<std::vector<int64_t>> staged_ids_ ABSL_GUARDED_BY(mu_);
};

class PaddingExecutorTest : public ::testing::Test {
 protected:
  // One request of `ids` (mask all 1) and its outputs.
  struct Call {
    std::vector<int64_t> ids;
    std::string ids_bytes, mask_bytes, hidden, sum;
    StringOutput hidden_out{&hidden}, sum_out{&sum};
    absl::Status status;
  };

  std::unique_ptr<InferRequest> MakeCall(Call& call, absl::BlockingCounter& counter) {
    const int64_t n = static_cast<int64_t>(call.ids.size());
    call.ids_bytes = Int64Bytes(call.ids);
    call.mask_bytes = Int64Bytes(std::vector<int64_t>(n, 1));
    InferRequest::Options options;
    options.inputs = {call.ids_bytes, call.mask_bytes};
    options.input_dims = {{n}, {n}};
    options.outputs = {&call.hidden_out, &call.sum_out};
    options.arrival = clock_.Now();
    return std::make_unique<InferRequest>(std::move(options), [&call, &counter](absl::Status s) {
      call.status = s;
      counter.DecrementCount();
    });
  }

  void Run(const std::vector<Call*>& calls) {
    Executor::Options options;
    options.num_workers = 1;
    options.copy_threads = 1;
    auto executor = *Executor::Create(options, &backend_, model_metrics_.get(), &clock_);
    absl::BlockingCounter counter(static_cast<int>(calls.size()));
    Batch batch;
    for (Call* call : calls) {
      batch.requests.push_back(MakeCall(*call, counter));
      ++batch.rows;
    }
    executor->Dispatch(std::move(batch));
    counter.Wait();
  }

  double Metric(const std::string& name) {
    return MetricValue(*metrics_.registry(), name, {{"model", "pad"}, {"version", "1"}})
        .value_or(-1);
  }

  ServerMetrics metrics_{std::make_shared<prometheus::Registry>()};
  std::unique_ptr<ModelMetrics> model_metrics_ = metrics_.ForModel("pad", "1");
  FakeClock clock_;
  MaskedSumBackend backend_;
};

TEST_F(PaddingExecutorTest, PadsABatchToItsBucketAndAnswersEachRequestWithItsOwnOutputs) {
  Call a, b, c;
  a.ids = {1, 2, 3, 4, 5};  // Bucket 8.
  b.ids = {6, 7};           // Bucket 4, joined.
  c.ids = {8, 9, 10, 11, 12, 13, 14, 15};
  Run({&a, &b, &c});
  ASSERT_EQ(backend_.dims().size(), 1u);
  EXPECT_EQ(backend_.dims()[0], (std::vector<std::vector<int64_t>>{{8}, {8}}));
  // IDS padded with 7.
  EXPECT_EQ(backend_.staged_ids()[0],
            (std::vector<int64_t>{1, 2, 3, 4, 5, 7, 7, 7, 6, 7, 7, 7, 7, 7, 7, 7, 8, 9, 10, 11,
                                  12, 13, 14, 15}));
  for (Call* call : {&a, &b, &c}) {
    ASSERT_TRUE(call->status.ok()) << call->status;
    std::vector<int64_t> hidden;
    int64_t sum = 0;
    for (int64_t id : call->ids) {
      hidden.insert(hidden.end(), {10 * id, 1});
      sum += id;
    }
    // HIDDEN cut to the request's own length; SUM unchanged by the padding (the mask is 0).
    EXPECT_EQ(Int64s(call->hidden), hidden);
    EXPECT_EQ(Int64s(call->sum), std::vector<int64_t>{sum});
  }
  // 24 elements staged per padded input, 9 of them padding.
  EXPECT_EQ(Metric("coalesce_padding_elements_total"), 2 * 9);
  EXPECT_EQ(Metric("coalesce_padded_input_elements_total"), 2 * 24);
}

TEST_F(PaddingExecutorTest, ALoneRequestRunsAtItsOwnLength) {
  Call a;
  a.ids = {1, 2, 3};
  Run({&a});
  ASSERT_EQ(backend_.dims().size(), 1u);
  EXPECT_EQ(backend_.dims()[0], (std::vector<std::vector<int64_t>>{{3}, {3}}));
  EXPECT_EQ(Int64s(a.hidden), (std::vector<int64_t>{10, 1, 20, 1, 30, 1}));
  EXPECT_EQ(Metric("coalesce_padding_elements_total"), 0);
  EXPECT_EQ(Metric("coalesce_padded_input_elements_total"), 2 * 3);
}

}  // namespace
}  // namespace coalesce
