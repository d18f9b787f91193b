#include "execution/torch/torch_backend.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "execution/demo_model.h"
#include "execution/half.h"
#include "execution/torch/torch_ceilings.h"
#include "execution/torch/torch_device_faults.h"
#include "gtest/gtest.h"
#include "tests/fake_clock.h"
#include "tests/torchscript_models.h"

namespace coalesce {
namespace {

constexpr int64_t kRow = DemoModel::kTokens * DemoModel::kWidth;  // Floats per sample.

std::unique_ptr<TorchBackend> CpuDemo(int64_t max_batch = 32) {
  TorchBackend::Options options;
  options.device = DeviceKind::kCpu;
  auto backend = TorchBackend::CreateDemo(options, max_batch);
  EXPECT_TRUE(backend.ok()) << backend.status();
  return *std::move(backend);
}

std::vector<float> RunDemo(TorchBackend& backend, const std::vector<float>& input, int64_t rows) {
  std::vector<float> output(rows * kRow, std::nanf(""));  // Poisoned: every value must be written.
  const char* in = reinterpret_cast<const char*>(input.data());
  char* out = reinterpret_cast<char*>(output.data());
  absl::Status status = backend.Execute(0, rows, {&in, 1}, {&out, 1});
  EXPECT_TRUE(status.ok()) << status;
  return output;
}

std::vector<float> RandomInput(int64_t rows, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-1, 1);
  std::vector<float> input(rows * kRow);
  for (float& v : input) v = dist(rng);
  return input;
}

// The demo MLP for one token, in double precision, straight from the weights: an independent
// reference for the TorchScript module.
std::vector<double> ReferenceToken(const DemoModel::Weights& w, const float* x) {
  std::vector<double> h(DemoModel::kHidden);
  for (int64_t j = 0; j < DemoModel::kHidden; ++j) {
    double sum = w.b1[j];
    for (int64_t i = 0; i < DemoModel::kWidth; ++i) sum += double{x[i]} * w.w1[i * DemoModel::kHidden + j];
    h[j] = std::max(0.0, sum);
  }
  std::vector<double> y(DemoModel::kWidth);
  for (int64_t k = 0; k < DemoModel::kWidth; ++k) {
    double sum = w.b2[k];
    for (int64_t j = 0; j < DemoModel::kHidden; ++j) sum += h[j] * w.w2[j * DemoModel::kWidth + k];
    y[k] = sum;
  }
  return y;
}

TEST(TorchBackendTest, DemoMetadataIsTheDocumentedShape) {
  auto backend = CpuDemo(64);
  const ModelMetadata& m = backend->metadata();
  EXPECT_EQ(m.name, "demo");
  EXPECT_EQ(m.max_batch_size, 64);
  ASSERT_EQ(m.inputs.size(), 1u);
  EXPECT_EQ(m.inputs[0].name, "INPUT0");
  EXPECT_EQ(m.inputs[0].dims, (std::vector<int64_t>{32, 256}));
  ASSERT_EQ(m.outputs.size(), 1u);
  EXPECT_EQ(m.outputs[0].name, "OUTPUT0");
  EXPECT_EQ(backend->DeviceDescription(), "cpu fp32");
  EXPECT_EQ(backend->DeviceName(), "cpu");
  // On the CPU the model computes on the worker's own thread: a second batch per worker would
  // only wait for it (2 on CUDA only).
  EXPECT_EQ(backend->DefaultBatchesPerWorker(), 1);
}

TEST(TorchBackendTest, DemoMatchesDoublePrecisionReference) {
  auto backend = CpuDemo();
  std::vector<float> input = RandomInput(2, 7);
  std::vector<float> output = RunDemo(*backend, input, 2);
  DemoModel::Weights w = DemoModel::MakeWeights();
  // fp32 sums of 256 and 512 products of magnitude < 0.1: errors stay far below 1e-4.
  for (int64_t token : {int64_t{0}, int64_t{17}, int64_t{32 + 31}}) {
    std::vector<double> ref = ReferenceToken(w, &input[token * DemoModel::kWidth]);
    for (int64_t k = 0; k < DemoModel::kWidth; ++k) {
      ASSERT_NEAR(output[token * DemoModel::kWidth + k], ref[k], 1e-4)
          << "token " << token << " element " << k;
    }
  }
}

TEST(TorchBackendTest, DemoMatchesThePythonPeersModel) {
  // OUTPUT0[0, 0, :4] for an all-ones input, computed in float64 by bench/peers/demo_model.py
  // from the same splitmix64 weights: the C++ and Python demo models are the same function.
  auto backend = CpuDemo();
  std::vector<float> output = RunDemo(*backend, std::vector<float>(kRow, 1.0f), 1);
  const double expected[] = {-0.034441158844592173, -0.08877587911062085, 0.018024099010873762,
                             -0.24670401049728002};
  for (int k = 0; k < 4; ++k) EXPECT_NEAR(output[k], expected[k], 1e-5) << k;
}

TEST(TorchBackendTest, RowResultDoesNotDependOnBatchSize) {
  // A request answered in a batch of 32 gets the answer it would get alone, within fp32
  // rounding (1e-5 absolute on outputs of order 0.1).
  auto backend = CpuDemo();
  std::vector<float> batch = RandomInput(32, 11);
  std::vector<float> batched = RunDemo(*backend, batch, 32);
  for (int64_t r : {int64_t{0}, int64_t{17}, int64_t{31}}) {
    std::vector<float> one(batch.begin() + r * kRow, batch.begin() + (r + 1) * kRow);
    std::vector<float> alone = RunDemo(*backend, one, 1);
    for (int64_t i = 0; i < kRow; ++i) {
      // Batched matmul may sum in another order: allow fp32 rounding, nothing more.
      ASSERT_NEAR(batched[r * kRow + i], alone[i], 1e-5) << "row " << r << " element " << i;
    }
  }
}

TEST(TorchBackendTest, Bf16OnCpuIsCloseToFp32) {
  TorchBackend::Options options;
  options.device = DeviceKind::kCpu;
  options.precision = Precision::kBf16;
  options.max_precision_error = 0.1;  // bf16 lands near 5e-2 on this model: over the 1e-2 default.
  auto bf16 = TorchBackend::CreateDemo(options, 4);
  ASSERT_TRUE(bf16.ok()) << bf16.status();
  EXPECT_EQ((*bf16)->DeviceDescription(), "cpu bf16");
  std::vector<float> input = RandomInput(1, 3);
  std::vector<float> low = RunDemo(**bf16, input, 1);
  std::vector<float> full = RunDemo(*CpuDemo(), input, 1);
  double max_error = 0;
  for (int64_t i = 0; i < kRow; ++i) max_error = std::max(max_error, double{std::fabs(low[i] - full[i])});
  EXPECT_GT(max_error, 0.0);   // It really ran in bf16...
  EXPECT_LT(max_error, 5e-2);  // ...with bf16's 8-bit mantissa error, not garbage.
}

TEST(TorchBackendTest, Fp32OnCpuMatchesItsReferenceExactly) {
  EXPECT_LE(CpuDemo()->precision_error(), 1e-6);
}

TEST(TorchBackendTest, PrecisionBeyondToleranceRefusesToServe) {
  TorchBackend::Options options;
  options.device = DeviceKind::kCpu;
  options.precision = Precision::kBf16;
  options.max_precision_error = 1e-6;  // bf16 carries 8 mantissa bits: far coarser.
  auto backend = TorchBackend::CreateDemo(options, 4);
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(backend.status().message().find("bf16 on cpu"), std::string::npos) << backend.status();

  options.max_precision_error = 1e-1;
  auto lenient = TorchBackend::CreateDemo(options, 4);
  ASSERT_TRUE(lenient.ok()) << lenient.status();
  EXPECT_GT((*lenient)->precision_error(), 1e-6);
  EXPECT_LT((*lenient)->precision_error(), 1e-1);
}

TEST(TorchBackendTest, RefusesUnavailableDeviceAndBadPrecision) {
  TorchBackend::Options fp16_cpu;
  fp16_cpu.device = DeviceKind::kCpu;
  fp16_cpu.precision = Precision::kFp16;
  EXPECT_EQ(TorchBackend::CreateDemo(fp16_cpu, 4).status().code(),
            absl::StatusCode::kInvalidArgument);
  TorchBackend::Options mps;
  mps.device = DeviceKind::kMps;
  auto on_mps = TorchBackend::CreateDemo(mps, 4);
  if (on_mps.ok()) {
    EXPECT_EQ((*on_mps)->DeviceDescription(), "mps fp16");  // A Mac with MPS.
    EXPECT_EQ((*on_mps)->DeviceName(), "mps");
  } else {
    EXPECT_EQ(on_mps.status().code(), absl::StatusCode::kFailedPrecondition);
  }
}

TEST(TorchBackendTest, LoadReportsAFileThatIsNotTorchScript) {
  auto backend = TorchBackend::Load("/nonexistent/model.pt", DemoModel::Metadata(4), {});
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(backend.status().message().find("/nonexistent/model.pt"), std::string::npos);
}

// A model whose forward() returns something other than one tensor per declared output is refused
// at load, naming what it returned.
TEST(TorchBackendTest, LoadRefusesAModelThatDoesNotReturnItsDeclaredOutputs) {
  ModelMetadata metadata;
  metadata.name = "odd";
  metadata.max_batch_size = 2;
  metadata.inputs.push_back({"X", DataType::kFp32, {4}});
  metadata.outputs.push_back({"Y", DataType::kFp32, {4}});
  const struct {
    const char* forward;
    const char* error;
  } cases[] = {
      {"\ndef forward(self, x):\n    return (x, x * 2.0)\n",
       "model 'odd' returned 2 outputs, its config declares 1"},
      {"\ndef forward(self, x):\n    return (x, 3)\n",
       "model 'odd' returned a tuple holding a non-tensor"},
      {"\ndef forward(self, x):\n    return [x]\n",
       "model 'odd' returned neither a tensor nor a tuple"},
  };
  for (const auto& c : cases) {
    const std::string path = testing::TempDir() + "/coalesce_odd_model.pt";
    ASSERT_TRUE(SaveTorchScript(path, c.forward).ok()) << c.forward;
    TorchBackend::Options options;
    options.device = DeviceKind::kCpu;
    auto made = TorchBackend::Load(path, metadata, options);
    ASSERT_FALSE(made.ok()) << c.forward;
    EXPECT_NE(made.status().message().find(c.error), std::string::npos)
        << c.forward << " -> " << made.status();
  }
}

// One FP32 input X and output Y of 4 values per row, computed by `forward`.
absl::StatusOr<std::unique_ptr<TorchBackend>> LoadXToY(const std::string& name,
                                                      const std::string& forward) {
  ModelMetadata metadata;
  metadata.name = name;
  metadata.max_batch_size = 4;
  metadata.inputs.push_back({"X", DataType::kFp32, {4}});
  metadata.outputs.push_back({"Y", DataType::kFp32, {4}});
  const std::string path = testing::TempDir() + "/coalesce_" + name + "_model.pt";
  if (absl::Status s = SaveTorchScript(path, forward); !s.ok()) return s;
  TorchBackend::Options options;
  options.device = DeviceKind::kCpu;
  return TorchBackend::Load(path, metadata, options);
}

// Runs `backend` (X to Y, 4 values a row) on `x`; Y lands in `*y`.
absl::Status RunXToY(TorchBackend& backend, const std::vector<float>& x, std::vector<float>* y) {
  y->assign(x.size(), std::nanf(""));
  const char* in = reinterpret_cast<const char*>(x.data());
  char* out = reinterpret_cast<char*>(y->data());
  return backend.Execute(0, static_cast<int64_t>(x.size() / 4), {&in, 1}, {&out, 1});
}

TEST(TorchBackendTest, LoadRefusesAModelThatReturnsAnotherTypeThanItDeclares) {
  auto backend = LoadXToY("long", "\ndef forward(self, x):\n    return (x * 10.0).long()\n");
  ASSERT_FALSE(backend.ok());
  EXPECT_NE(backend.status().message().find(
                "model 'long' returned INT64 for output 'Y', declared FP32"),
            std::string::npos)
      << backend.status();
}

// A model whose output type depends on its input passes its dry run; the batch that makes it
// return another type fails, naming the output and both types, instead of being cast.
TEST(TorchBackendTest, AnOutputOfAnotherTypeThanDeclaredFailsItsBatch) {
  auto backend = LoadXToY("sometimes_long",
                          "\ndef forward(self, x):\n"
                          "    if bool((x > 100.0).any()):\n"
                          "        return x.long()\n"
                          "    return x * 2.0\n");
  ASSERT_TRUE(backend.ok()) << backend.status();
  std::vector<float> y;
  ASSERT_TRUE(RunXToY(**backend, {1, 2, 3, 4}, &y).ok());
  EXPECT_EQ(y, (std::vector<float>{2, 4, 6, 8}));
  absl::Status status = RunXToY(**backend, {1, 2, 3, 400}, &y);
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(status.message(),
            "model 'sometimes_long' returned INT64 for output 'Y', declared FP32");
}

// A batch the model raises on fails on the CPU fallback too: it is the batch's fault, not the
// device's, so the model stays on its device (here the injected device failure stands for the
// device's own copy of the model raising).
TEST(TorchBackendTest, ABatchTheModelRaisesOnDoesNotMoveTheModelToItsFallback) {
  auto backend = LoadXToY("raises",
                          "\ndef forward(self, x):\n"
                          "    assert not bool((x < -100.0).any()), 'negative input'\n"
                          "    return x * 2.0\n");
  ASSERT_TRUE(backend.ok()) << backend.status();
  std::vector<float> y;
  InjectDeviceFailures(**backend, 1);
  absl::Status status = RunXToY(**backend, {1, 2, 3, -400}, &y);
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_NE(status.message().find("negative input"), std::string::npos) << status;
  EXPECT_EQ((*backend)->fallbacks(), 0);
  EXPECT_FALSE((*backend)->on_fallback());
  // A batch the CPU answers still falls back.
  InjectDeviceFailures(**backend, 1);
  ASSERT_TRUE(RunXToY(**backend, {1, 2, 3, 4}, &y).ok());
  EXPECT_EQ(y, (std::vector<float>{2, 4, 6, 8}));
  EXPECT_EQ((*backend)->fallbacks(), 1);
  EXPECT_TRUE((*backend)->on_fallback());
}

// The largest difference between two outputs of equal size.
double MaxDifference(const std::vector<float>& a, const std::vector<float>& b) {
  double max_difference = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    max_difference = std::max(max_difference, double{std::fabs(a[i] - b[i])});
  }
  return max_difference;
}

// The served module in bf16, so that its answers are told apart from the fp32 CPU fallback's.
std::unique_ptr<TorchBackend> Bf16Demo(absl::Duration recheck_interval, Clock* clock = nullptr) {
  TorchBackend::Options options;
  options.device = DeviceKind::kCpu;
  options.precision = Precision::kBf16;
  options.max_precision_error = 0.1;
  options.device_recheck_interval = recheck_interval;
  options.clock = clock;
  auto backend = TorchBackend::CreateDemo(options, 8);
  EXPECT_TRUE(backend.ok()) << backend.status();
  return *std::move(backend);
}

TEST(TorchBackendTest, DeviceFailureIsAnsweredByTheFp32CpuFallback) {
  auto backend = Bf16Demo(absl::InfiniteDuration());
  std::vector<float> input = RandomInput(3, 21);
  const std::vector<float> fp32 = RunDemo(*CpuDemo(), input, 3);
  EXPECT_GT(MaxDifference(RunDemo(*backend, input, 3), fp32), 1e-3);  // Served in bf16.
  EXPECT_EQ(backend->fallbacks(), 0);
  EXPECT_FALSE(backend->on_fallback());

  InjectDeviceFailures(*backend, 1);
  std::vector<float> failed_batch = RunDemo(*backend, input, 3);  // Asserts OK inside.
  EXPECT_LE(MaxDifference(failed_batch, fp32), 1e-5);  // The fp32 fallback's answer.
  EXPECT_EQ(backend->fallbacks(), 1);
  EXPECT_TRUE(backend->on_fallback());
  const Backend::FallbackState state = backend->Fallback();
  EXPECT_EQ(state.fallbacks, 1);
  EXPECT_TRUE(state.on_fallback);

  // Later batches stay on the fallback without failing again (the interval is infinite).
  EXPECT_LE(MaxDifference(RunDemo(*backend, input, 3), fp32), 1e-5);
  EXPECT_EQ(backend->fallbacks(), 1);
  EXPECT_TRUE(backend->on_fallback());
}

TEST(TorchBackendTest, FallbackAnswersMatchTheDoublePrecisionReference) {
  auto backend = Bf16Demo(absl::InfiniteDuration());
  InjectDeviceFailures(*backend, 1);
  std::vector<float> input = RandomInput(2, 5);
  std::vector<float> output = RunDemo(*backend, input, 2);
  ASSERT_EQ(backend->fallbacks(), 1);
  DemoModel::Weights w = DemoModel::MakeWeights();
  for (int64_t token : {int64_t{0}, int64_t{32 + 7}}) {
    std::vector<double> ref = ReferenceToken(w, &input[token * DemoModel::kWidth]);
    for (int64_t k = 0; k < DemoModel::kWidth; ++k) {
      ASSERT_NEAR(output[token * DemoModel::kWidth + k], ref[k], 1e-4) << token << " " << k;
    }
  }
}

TEST(TorchBackendTest, ReturnsToTheDeviceOnceTheRecheckIntervalHasPassed) {
  FakeClock clock;
  auto backend = Bf16Demo(absl::Seconds(30), &clock);
  std::vector<float> input = RandomInput(1, 8);
  const std::vector<float> fp32 = RunDemo(*CpuDemo(), input, 1);
  InjectDeviceFailures(*backend, 1);
  RunDemo(*backend, input, 1);
  ASSERT_TRUE(backend->on_fallback());

  clock.Advance(absl::Seconds(29));
  EXPECT_LE(MaxDifference(RunDemo(*backend, input, 1), fp32), 1e-5);  // Not yet rechecked.
  EXPECT_TRUE(backend->on_fallback());

  clock.Advance(absl::Seconds(1));
  std::vector<float> rechecked = RunDemo(*backend, input, 1);
  EXPECT_FALSE(backend->on_fallback());
  EXPECT_GT(MaxDifference(rechecked, fp32), 1e-3);  // bf16 again: the device answered...
  EXPECT_LT(MaxDifference(rechecked, fp32), 5e-2);  // ...correctly.
  EXPECT_EQ(backend->fallbacks(), 1);
}

TEST(TorchBackendTest, FailedRecheckStaysOnTheFallbackAndCountsAgain) {
  auto backend = Bf16Demo(absl::InfiniteDuration());
  std::vector<float> input = RandomInput(2, 9);
  const std::vector<float> fp32 = RunDemo(*CpuDemo(), input, 2);
  InjectDeviceFailures(*backend, 2);
  RunDemo(*backend, input, 2);
  EXPECT_EQ(backend->fallbacks(), 1);

  backend->RecheckDevice();  // The device fails once more: answered by the fallback.
  EXPECT_LE(MaxDifference(RunDemo(*backend, input, 2), fp32), 1e-5);
  EXPECT_EQ(backend->fallbacks(), 2);
  EXPECT_TRUE(backend->on_fallback());

  RunDemo(*backend, input, 2);  // No recheck due: stays on the fallback, nothing counted.
  EXPECT_EQ(backend->fallbacks(), 2);

  backend->RecheckDevice();  // The device is healthy now.
  EXPECT_GT(MaxDifference(RunDemo(*backend, input, 2), fp32), 1e-3);
  EXPECT_FALSE(backend->on_fallback());
  EXPECT_EQ(backend->fallbacks(), 2);
}

TEST(TorchBackendTest, RefusesNegativeRecheckInterval) {
  TorchBackend::Options options;
  options.device = DeviceKind::kCpu;
  options.device_recheck_interval = absl::Seconds(-1);
  auto backend = TorchBackend::CreateDemo(options, 4);
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(backend.status().message().find("-1s"), std::string::npos) << backend.status();
}

TEST(TorchBackendTest, OptimizedForInferenceAnswersLikeTheFrozenModule) {
  auto optimized = CpuDemo();
  EXPECT_TRUE(optimized->optimized());
  TorchBackend::Options options;
  options.device = DeviceKind::kCpu;
  options.optimize_for_inference = false;
  auto frozen = TorchBackend::CreateDemo(options, 32);
  ASSERT_TRUE(frozen.ok()) << frozen.status();
  EXPECT_FALSE((*frozen)->optimized());
  std::vector<float> input = RandomInput(4, 13);
  EXPECT_LE(MaxDifference(RunDemo(*optimized, input, 4), RunDemo(**frozen, input, 4)), 1e-5);
}

TEST(TorchBackendTest, ReportsNoDeviceMemoryOnCpu) {
  EXPECT_FALSE(CpuDemo()->DeviceMemory().has_value());
}

TEST(TorchBackendTest, ResidentBatchesRunTheModel) {
  FakeClock clock;  // Stands still: the measured time is exactly zero.
  TorchBackend::Options options;
  options.device = DeviceKind::kCpu;
  options.clock = &clock;
  auto backend = TorchBackend::CreateDemo(options, 8);
  ASSERT_TRUE(backend.ok()) << backend.status();
  absl::StatusOr<absl::Duration> took = TimeResidentBatches(**backend, 1, 8, 3);
  ASSERT_TRUE(took.ok()) << took.status();
  EXPECT_EQ(*took, absl::ZeroDuration());
  EXPECT_EQ((*backend)->fallbacks(), 0);
}

TEST(TorchBackendTest, HostBatchesRunTheBatchPath) {
  FakeClock clock;  // Stands still: the measured time is exactly zero.
  TorchBackend::Options options;
  options.device = DeviceKind::kCpu;
  options.clock = &clock;
  auto backend = TorchBackend::CreateDemo(options, 8);
  ASSERT_TRUE(backend.ok()) << backend.status();
  absl::StatusOr<absl::Duration> took = TimeHostBatches(**backend, 1, 8, 3);
  ASSERT_TRUE(took.ok()) << took.status();
  EXPECT_EQ(*took, absl::ZeroDuration());
  EXPECT_EQ((*backend)->fallbacks(), 0);
}

TEST(TorchBackendTest, HostBatchesReportADeviceFailureInsteadOfFallingBack) {
  auto backend = CpuDemo();
  InjectDeviceFailures(*backend, 1);
  absl::StatusOr<absl::Duration> took = TimeHostBatches(*backend, 0, 4, 2);
  EXPECT_EQ(took.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(took.status().message().find("injected device failure"), std::string::npos)
      << took.status();
  EXPECT_EQ(backend->fallbacks(), 0);
}

}  // namespace
}  // namespace coalesce

namespace coalesce {
namespace {

// CUDA graphs: on the GPU machine ("auto" finds CUDA) these tests exercise capture, replay and a
// failed capture; on a machine without CUDA (CI) they check that the option changes nothing.
bool OnCuda(const TorchBackend& backend) {
  return backend.DeviceDescription().rfind("cuda", 0) == 0;
}

TEST(TorchBackendTest, CudaGraphReplaysAnswerLikeTheEagerPath) {
  TorchBackend::Options options;
  options.device = std::nullopt;
  options.cuda_graphs = true;
  options.stage_fp16 = false;  // FP32 in and out, as RunDemo() passes them.
  auto made = TorchBackend::CreateDemo(options, 8);
  ASSERT_TRUE(made.ok()) << made.status();
  TorchBackend& backend = **made;
  constexpr int64_t kRows = 8;
  // Graphs run only on the backend's own staging (page-locked on CUDA), as the executor's is.
  std::shared_ptr<char> in = backend.AllocateStaging(kRows * kRow * sizeof(float));
  std::shared_ptr<char> out = backend.AllocateStaging(kRows * kRow * sizeof(float));
  for (int round = 0; round < 5; ++round) {
    std::vector<float> input = RandomInput(kRows, 100 + round);
    std::memcpy(in.get(), input.data(), input.size() * sizeof(float));
    const char* in_ptr = in.get();
    char* out_ptr = out.get();
    ASSERT_TRUE(backend.Execute(0, kRows, {&in_ptr, 1}, {&out_ptr, 1}).ok());
    std::vector<float> got(kRows * kRow);
    std::memcpy(got.data(), out.get(), got.size() * sizeof(float));
    // The same module on plain heap memory: never a graph.
    std::vector<float> eager = RunDemo(backend, input, kRows);
    double max_diff = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      max_diff = std::max(max_diff, std::fabs(double{got[i]} - eager[i]));
    }
    EXPECT_LE(max_diff, 1e-6) << "round " << round;
  }
  const TorchBackend::GraphStats graphs = backend.cuda_graphs();
  // The metrics' device label: the one CUDA device a model runs on.
  EXPECT_EQ(backend.DeviceName(), OnCuda(backend) ? "cuda:0" : "cpu");
  if (OnCuda(backend)) {
    // Rounds 0 and 1 run eagerly, round 2 captures and replays, rounds 3 and 4 replay.
    EXPECT_EQ(graphs.captured, 1);
    EXPECT_EQ(graphs.replays, 3);
    EXPECT_FALSE(graphs.failed);
  } else {
    EXPECT_EQ(graphs.captured, 0);
    EXPECT_EQ(graphs.replays, 0);
  }
}

TEST(TorchBackendTest, AModelThatReadsTheDeviceOnTheHostRunsWithoutGraphs) {
  const std::string path = testing::TempDir() + "/coalesce_sync_model.pt";
  // Data-dependent control flow: bool() reads the sum on the host, which a capture refuses.
  ASSERT_TRUE(SaveTorchScript(path,
                              "\ndef forward(self, x):\n    if bool(x.sum() > 0.0):\n"
                              "        return x * 2.0\n    return x * 3.0\n")
                  .ok());
  ModelMetadata metadata;
  metadata.name = "sync";
  metadata.max_batch_size = 4;
  metadata.inputs.push_back({"X", DataType::kFp32, {4}});
  metadata.outputs.push_back({"Y", DataType::kFp32, {4}});
  TorchBackend::Options options;
  options.device = std::nullopt;
  options.cuda_graphs = true;
  options.stage_fp16 = false;
  auto made = TorchBackend::Load(path, metadata, options);
  ASSERT_TRUE(made.ok()) << made.status();
  TorchBackend& backend = **made;
  std::shared_ptr<char> in = backend.AllocateStaging(4 * sizeof(float));
  std::shared_ptr<char> out = backend.AllocateStaging(4 * sizeof(float));
  for (int round = 0; round < 6; ++round) {
    // Exact in fp16 too; the sign of the sum picks the branch.
    const float sign = round % 2 == 0 ? 1.0f : -1.0f;
    const float x[4] = {0.5f * sign, 1.25f * sign, -0.75f * sign, 2.0f * sign};
    std::memcpy(in.get(), x, sizeof(x));
    const char* in_ptr = in.get();
    char* out_ptr = out.get();
    absl::Status status = backend.Execute(0, 1, {&in_ptr, 1}, {&out_ptr, 1});
    ASSERT_TRUE(status.ok()) << "round " << round << ": " << status;
    float y[4];
    std::memcpy(y, out.get(), sizeof(y));
    for (int i = 0; i < 4; ++i) {
      EXPECT_EQ(y[i], x[i] * (sign > 0 ? 2.0f : 3.0f)) << "round " << round << " element " << i;
    }
  }
  const TorchBackend::GraphStats graphs = backend.cuda_graphs();
  // On CUDA the third run tried to capture and failed; every run answered eagerly.
  EXPECT_EQ(graphs.failed, OnCuda(backend));
  EXPECT_EQ(graphs.captured, 0);
  EXPECT_EQ(graphs.replays, 0);
  EXPECT_EQ(backend.fallbacks(), 0);
}

TEST(TorchBackendTest, Fp16StagingOnlyOnCudaAndItsAnswersMatchFp32Staging) {
  TorchBackend::Options options;
  options.device = std::nullopt;
  auto staged = TorchBackend::CreateDemo(options, 8);
  ASSERT_TRUE(staged.ok()) << staged.status();
  options.stage_fp16 = false;
  auto wire = TorchBackend::CreateDemo(options, 8);
  ASSERT_TRUE(wire.ok()) << wire.status();
  EXPECT_EQ((*wire)->InputStaging(0).StagedType(DataType::kFp32), DataType::kFp32);
  const DataType expected = OnCuda(**staged) ? DataType::kFp16 : DataType::kFp32;
  EXPECT_EQ((*staged)->InputStaging(0).StagedType(DataType::kFp32), expected);
  EXPECT_EQ((*staged)->OutputStaging(0).StagedType(DataType::kFp32), expected);
  if (expected != DataType::kFp16) return;  // Nothing else differs off CUDA (checked above).

  constexpr int64_t kRows = 4;
  std::vector<float> input = RandomInput(kRows, 11);
  std::vector<float> reference = RunDemo(**wire, input, kRows);
  std::vector<uint16_t> in(input.size()), out(input.size());
  FloatsToHalves(in.data(), input.data(), in.size(), /*streaming=*/false);
  const char* in_ptr = reinterpret_cast<const char*>(in.data());
  char* out_ptr = reinterpret_cast<char*>(out.data());
  ASSERT_TRUE((*staged)->Execute(0, kRows, {&in_ptr, 1}, {&out_ptr, 1}).ok());
  std::vector<float> got(out.size());
  HalvesToFloats(got.data(), out.data(), out.size());
  // The same fp16 computation; only the output's last rounding (to fp16 on the device before
  // the copy, instead of after it on the host) may differ: within one fp16 unit.
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_LE(std::fabs(got[i] - reference[i]), std::fabs(reference[i]) * 1e-3 + 1e-6) << i;
  }
}

}  // namespace
}  // namespace coalesce
