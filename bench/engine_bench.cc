// coalesce-engine-bench: the execution engine against the model's ceiling, in-process, no RPC.
//
//   coalesce-engine-bench --device=auto --duration_s=1 [--warmup_s=0.3]
//       [--batch_sizes=1,8,32,128,256] [--copy_threads=N] [--extra_variants=3w4c,2w8c]
//       [--model_dir=REPOSITORY/MODEL]
//
// The model is the built-in demo, or with --model_dir a model folder of a repository
// (config.pbtxt and a version folder) with one FP32 input and one FP32 output of fixed dims, as
// bench/make_mlp_model.py writes.
// For each batch size B and compute precision, three numbers:
//   ceiling  TimeResidentBatches() (execution/torch/torch_ceilings.h): the served module's forward on
//            inputs already on the device in the compute precision, each result copied to the
//            host (the synchronisation point, as in bench/model_ceiling.cc); mean ms per batch.
//   host     TimeHostBatches(): the same module run by the backend's own batch path from a
//            host (pinned) buffer of wire-type inputs into a host buffer: host->device copy,
//            conversion, forward, conversion, device->host copy. No gather, scatter or answers:
//            one batch at a time, what a server that receives its inputs as bytes pays per batch
//            unless it overlaps batches on several streams.
//   server   the server's own Executor and TorchBackend (with its metrics) fed batches of B
//            one-row requests, as the batcher hands them over. A batch runs from Dispatch() to
//            its last request's answer: gather into staging, host->device copy and conversion,
//            forward, device->host copy, scatter into each response, answers.
// Variants: precision (fp16 on CUDA and MPS; bf16 on CPU, which has no fp16 matmul; and fp32),
// pooled vs unpooled staging (Executor::Options::pool_staging), 1 vs 2 workers, the threads
// that copy a batch's gather and scatter (Executor::Options::copy_threads, "1c" = the worker
// alone, "Nc" = --copy_threads), and on CUDA the batch path replayed from CUDA graphs
// ("graphs", TorchBackend::Options::cuda_graphs; their host ceiling uses the graphs too, their
// resident ceiling is the module's forward as for the others). ratio is server over ceiling,
// host_ratio server over host. Each of the executor's threads holds a batch (workers times
// batches per worker, "2b/w" in a variant's name, Executor::Options::batches_per_worker). With
// one thread one batch is in flight and server ms/batch is the mean time from dispatch to the
// last answer. With N threads N batches are in flight and server ms/batch is wall time over
// batches (the inverse of throughput), so the batches' overlap can take the ratio below 1.
// samples/s is always the server's throughput: rows answered over wall time.
//
// gather/backend/scatter_ms split the server's time by the executor's own stage metrics (means
// over the timed batches): what the engine adds around the model shows there. A batch's wait for
// its model (stage backend_wait, with 2b/w or excl) is in none of them. in/fwd/out_ms split the
// backend call on the device (CUDA events, 1 batch in 16; with graphs 1 in 256, run eagerly for
// it): host->device copy and conversion, forward, conversion and device->host copy.
//
// The table goes to stdout; progress and the devices to stderr.
#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/model_dir.h"
#include "common/flag_parsing.h"
#include "engine/clock.h"
#include "execution/device.h"
#include "execution/executor.h"
#include "execution/staging_layout.h"
#include "execution/torch/torch_backend.h"
#include "execution/torch/torch_ceilings.h"
#include "execution/torch/torch_device_faults.h"
#include "serving/metrics.h"

ABSL_FLAG(std::string, device, "auto", "auto (MPS, then CUDA, then CPU), mps, cuda or cpu.");
ABSL_FLAG(double, duration_s, 1.0, "Timed seconds per ceiling and per table row.");
ABSL_FLAG(double, warmup_s, 0.3, "Untimed seconds before each timed window.");
ABSL_FLAG(std::string, batch_sizes, "1,8,32,128,256", "Comma-separated batch sizes.");
ABSL_FLAG(int, copy_threads, -1,
          "Threads that copy a batch's gather and scatter in the Nc variants (the worker "
          "included; Executor::Options::copy_threads). -1: the executor's default, min(4, half "
          "the hardware threads). The 1c variants always copy on the worker alone.");
ABSL_FLAG(std::string, extra_variants, "",
          "More rows per batch size, in the low precision with pooled staging: comma-separated "
          "WwCc items, e.g. 3w4c,2w8c (W workers, C copy threads, the worker included), then "
          "any of: g (CUDA graphs), p (2 batches per worker), x (one worker in the backend at a "
          "time), i (no gather), s (no scatter), e.g. 3w4cg, 2w4cgp, 2w4cgx, 6w4cgs. Without "
          "the gather or the scatter the answers are not checked (they are wrong): such rows "
          "bound what a zero-copy path could reach.");
ABSL_FLAG(bool, default_variants, true,
          "Measure the default rows (precisions, pooling, 1 and 2 workers); false: only "
          "--extra_variants.");
ABSL_FLAG(bool, stage_fp16, true,
          "TorchBackend::Options::stage_fp16 for every backend: on CUDA in fp16, FP32 tensors "
          "cross PCIe as FP16, converted on the host. false: as FP32, converted on the device.");
ABSL_FLAG(bool, exercise_fallback, true,
          "After the table, inject one device failure into the low-precision backend, check "
          "that its batch is answered by the CPU fallback and that RecheckDevice() brings the "
          "model back, and print the backend's device memory (stderr).");

namespace coalesce {
namespace {

struct Variant {
  std::string precision;  // "fp32", or the low precision ("fp16"/"bf16").
  bool pooled = true;
  int workers = 1;
  int copy_threads = 1;  // Executor::Options::copy_threads.
  bool graphs = false;   // TorchBackend::Options::cuda_graphs (CUDA only).
  // Without the gather or the scatter (CopySkippingBackend): bounds for a zero-copy path.
  bool skip_gather = false;
  bool skip_scatter = false;
  bool exclusive = false;  // Executor::Options::exclusive_backend.
  int batches_per_worker = 1;  // Executor::Options::batches_per_worker.
  // Batches the executor holds at once, one per thread.
  int threads() const { return workers * batches_per_worker; }
  std::string Name() const {
    return absl::StrCat(precision, pooled ? " pooled " : " unpooled ", workers, "w ",
                        copy_threads, "c", graphs ? " graphs" : "",
                        batches_per_worker > 1 ? absl::StrCat(" ", batches_per_worker, "b/w") : "",
                        exclusive ? " excl" : "",
                        skip_gather ? " -gather" : "", skip_scatter ? " -scatter" : "");
  }
};

absl::StatusOr<std::vector<int64_t>> ParseBatchSizes(absl::string_view text) {
  std::vector<int64_t> sizes;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int64_t size = 0;
    if (!absl::SimpleAtoi(item, &size) || size < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--batch_sizes: '", item, "' is not a positive integer (in '", text, "')"));
    }
    sizes.push_back(size);
  }
  if (sizes.empty()) return absl::InvalidArgumentError("--batch_sizes is empty");
  return sizes;
}

// --extra_variants: "3w4c,2w8cg" -> pooled variants of `precision`. Letters after the c: g with
// CUDA graphs, p with 2 batches per worker, x with one backend call at a time, i without the
// gather, s without the scatter.
absl::StatusOr<std::vector<Variant>> ParseExtraVariants(absl::string_view text,
                                                        const std::string& precision) {
  std::vector<Variant> variants;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::vector<absl::string_view> parts = absl::StrSplit(item, 'w');
    Variant variant{precision, true, 0, 0};
    while (parts.size() == 2 && !parts[1].empty()) {
      const char last = parts[1].back();
      if (last == 'p') {
        variant.batches_per_worker = 2;
        parts[1].remove_suffix(1);
        continue;
      }
      bool* flag = last == 'g' ? &variant.graphs
                   : last == 'x' ? &variant.exclusive
                   : last == 'i' ? &variant.skip_gather
                   : last == 's' ? &variant.skip_scatter
                                 : nullptr;
      if (flag == nullptr) break;
      *flag = true;
      parts[1].remove_suffix(1);
    }
    if (parts.size() != 2 || !absl::ConsumeSuffix(&parts[1], "c") ||
        !absl::SimpleAtoi(parts[0], &variant.workers) ||
        !absl::SimpleAtoi(parts[1], &variant.copy_threads) || variant.workers < 1 ||
        variant.copy_threads < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--extra_variants: '", item, "' is not WwCc with W, C >= 1 (e.g. 3w4c)"));
    }
    variants.push_back(variant);
  }
  return variants;
}

// Which ceiling CeilingMs() measures.
enum class Ceiling { kResident, kHost };

// Mean ms per batch of the model alone (kResident) or of the backend's batch path from host
// buffers (kHost). The first calls double their iterations until one takes the warm-up time;
// the timed call then runs about `window`.
absl::StatusOr<double> CeilingMs(TorchBackend& backend, Ceiling ceiling, int64_t rows,
                                 absl::Duration warmup, absl::Duration window) {
  auto time = [&](int iterations) {
    return ceiling == Ceiling::kResident ? TimeResidentBatches(backend, 0, rows, iterations)
                                         : TimeHostBatches(backend, 0, rows, iterations);
  };
  int iterations = 1;
  absl::Duration took;
  while (true) {
    absl::StatusOr<absl::Duration> run = time(iterations);
    if (!run.ok()) return run.status();
    took = *run;
    if (took >= warmup || iterations >= (1 << 20)) break;
    iterations *= 2;
  }
  const double per_batch = absl::ToDoubleSeconds(took) / iterations;
  const int timed = static_cast<int>(
      std::clamp(absl::ToDoubleSeconds(window) / std::max(per_batch, 1e-9), 3.0, 1e7));
  absl::StatusOr<absl::Duration> run = time(timed);
  if (!run.ok()) return run.status();
  return absl::ToDoubleMilliseconds(*run) / timed;
}

// One batch in flight: its requests' responses and when the last answer came.
struct BatchRun {
  std::vector<std::string> outputs;
  // Over `outputs`, one per row.
  std::vector<StringOutput> output_buffers;
  std::atomic<int64_t> left{0};
  absl::Time dispatched;
  absl::Time answered;  // Written by the last answer, before `done`.
  absl::Notification done;
  absl::Mutex mu;
  absl::Status status ABSL_GUARDED_BY(mu);

  void Answer(absl::Status s) {
    if (!s.ok()) {
      absl::MutexLock lock(&mu);
      status.Update(s);
    }
    if (left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      answered = absl::Now();
      done.Notify();
    }
  }
  absl::Status Status() {
    absl::MutexLock lock(&mu);
    return status;
  }
};

// `rows` one-row requests whose inputs are the rows of `input` and whose answers go to `run`.
Batch MakeBatch(BatchRun& run, const std::vector<char>& input, int64_t row_bytes, int64_t rows) {
  run.outputs.assign(rows, std::string());
  run.output_buffers.clear();
  for (std::string& output : run.outputs) run.output_buffers.emplace_back(&output);
  run.left.store(rows);
  Batch batch;
  batch.rows = rows;
  const absl::Time now = absl::Now();
  for (int64_t r = 0; r < rows; ++r) {
    InferRequest::Options options;
    options.rows = 1;
    options.inputs = {absl::string_view(input.data() + r * row_bytes, row_bytes)};
    options.outputs = {&run.output_buffers[r]};
    options.arrival = now;
    batch.requests.push_back(std::make_unique<InferRequest>(
        std::move(options), [&run](absl::Status s) { run.Answer(std::move(s)); }));
  }
  return batch;
}

struct ServerResult {
  double ms_per_batch = 0;
  double samples_per_s = 0;
  // Mean ms per batch of the executor's stages (its own metrics): gathering inputs into
  // staging, the backend call, scattering outputs into the responses and answering.
  double gather_ms = 0;
  double backend_ms = 0;
  double scatter_ms = 0;
  // The backend call's stages on the device, from the batches it timed (CUDA; 0 where none
  // was timed).
  double copy_in_ms = 0;
  double forward_ms = 0;
  double copy_out_ms = 0;
};

// Sum and count of the histogram series `name` (with `stage` as its stage label, if not empty).
struct Totals {
  double sum = 0;
  double count = 0;
};
Totals HistogramTotals(const prometheus::Registry& registry, const std::string& name,
                       const std::string& stage) {
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      bool match = stage.empty();
      for (const auto& label : metric.label) match |= label.name == "stage" && label.value == stage;
      if (match) {
        return {metric.histogram.sample_sum, static_cast<double>(metric.histogram.sample_count)};
      }
    }
  }
  return {};
}

// The stage totals so far: gather, backend, scatter, and the device's copy_in, forward,
// copy_out.
constexpr int kStages = 6;
std::array<Totals, kStages> StageTotals(const prometheus::Registry& registry) {
  const std::string stages = "coalesce_batch_stage_duration_seconds";
  return {HistogramTotals(registry, stages, "gather"),
          HistogramTotals(registry, "coalesce_compute_duration_seconds", ""),
          HistogramTotals(registry, stages, "scatter"),
          HistogramTotals(registry, stages, "copy_in"),
          HistogramTotals(registry, stages, "forward"),
          HistogramTotals(registry, stages, "copy_out")};
}

// The largest difference between the server's answer for row `r` and the backend's own, over the
// largest value of the latter: the engine must answer what the model computes.
absl::Status CheckAnswer(TorchBackend& backend, const std::vector<char>& input, int64_t row_bytes,
                         int64_t r, const std::string& answer) {
  // The backend's own batch path takes and gives its staging layouts (FP16 with stage_fp16 on
  // CUDA).
  const StagingLayout& in_layout = backend.InputStaging(0);
  const StagingLayout& out_layout = backend.OutputStaging(0);
  std::vector<char> in(in_layout.StagedBytes(row_bytes));
  in_layout.Stage(absl::string_view(input.data() + r * row_bytes, row_bytes), in.data(),
                  /*streaming=*/false);
  std::vector<char> out(out_layout.StagedBytes(backend.metadata().outputs[0].RowBytes()));
  const char* in_ptr = in.data();
  char* out_ptr = out.data();
  if (absl::Status s = backend.Execute(0, 1, {&in_ptr, 1}, {&out_ptr, 1}); !s.ok()) return s;
  std::string expected_bytes(out_layout.WireBytes(static_cast<int64_t>(out.size())), '\0');
  out_layout.Unstage(out.data(), static_cast<int64_t>(out.size()), expected_bytes.data());
  if (answer.size() != expected_bytes.size()) {
    return absl::InternalError(absl::StrCat("row ", r, ": answer of ", answer.size(),
                                            " bytes, expected ", expected_bytes.size()));
  }
  std::vector<float> expected(expected_bytes.size() / sizeof(float));
  std::memcpy(expected.data(), expected_bytes.data(), expected_bytes.size());
  std::vector<float> got(expected.size());
  std::memcpy(got.data(), answer.data(), answer.size());
  double max_diff = 0, max_ref = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    max_diff = std::max(max_diff, std::fabs(double{got[i]} - expected[i]));
    max_ref = std::max(max_ref, std::fabs(double{expected[i]}));
  }
  // Batched kernels may sum in another order; fp16 and bf16 round differently per batch size.
  if (!(max_diff <= 2e-2 * std::max(max_ref, 1e-6))) {
    return absl::InternalError(absl::StrFormat(
        "row %d: answer differs from the model's by %.3g (largest value %.3g)", r, max_diff,
        max_ref));
  }
  return absl::OkStatus();
}

// A layout that stages like `inner` but leaves out its copy in one direction: the gather's
// (Stage) or the scatter's (Unstage).
class SkippingLayout : public StagingLayout {
 public:
  SkippingLayout(const StagingLayout& inner, bool skip_stage, bool skip_unstage)
      : inner_(inner), skip_stage_(skip_stage), skip_unstage_(skip_unstage) {}
  absl::Status Fits(const TensorSpec& spec) const override { return inner_.Fits(spec); }
  DataType StagedType(DataType wire) const override { return inner_.StagedType(wire); }
  int64_t StagedBytes(int64_t wire_bytes) const override {
    return inner_.StagedBytes(wire_bytes);
  }
  int64_t WireBytes(int64_t staged_bytes) const override {
    return inner_.WireBytes(staged_bytes);
  }
  bool keeps_wire_bytes() const override { return inner_.keeps_wire_bytes(); }
  void Stage(absl::string_view wire, char* staged, bool streaming) const override {
    if (!skip_stage_) inner_.Stage(wire, staged, streaming);
  }
  void Unstage(const char* staged, int64_t staged_bytes, char* wire) const override {
    if (!skip_unstage_) inner_.Unstage(staged, staged_bytes, wire);
  }

 private:
  const StagingLayout& inner_;
  const bool skip_stage_;
  const bool skip_unstage_;
};

// `backend` with the gather or the scatter left out of its staging layouts (--extra_variants i,
// s): the backend reads whatever staging holds, or the responses stay empty. The answers are
// wrong; the time is what an engine that received requests in staging, or answered from staging
// without a copy, could reach. Everything else is the backend's own.
class CopySkippingBackend : public Backend {
 public:
  CopySkippingBackend(Backend& backend, bool skip_gather, bool skip_scatter) : backend_(backend) {
    for (size_t i = 0; i < backend.metadata().inputs.size(); ++i) {
      inputs_.emplace_back(backend.InputStaging(static_cast<int>(i)), skip_gather, false);
    }
    for (size_t o = 0; o < backend.metadata().outputs.size(); ++o) {
      outputs_.emplace_back(backend.OutputStaging(static_cast<int>(o)), false, skip_scatter);
    }
  }
  const ModelMetadata& metadata() const override { return backend_.metadata(); }
  absl::Status Execute(int worker, int64_t rows, absl::Span<const char* const> inputs,
                       absl::Span<char* const> outputs) override {
    return backend_.Execute(worker, rows, inputs, outputs);
  }
  absl::Status ExecuteVariable(int worker, int64_t rows, absl::Span<const char* const> inputs,
                               const VariableBatch& batch) override {
    return backend_.ExecuteVariable(worker, rows, inputs, batch);
  }
  const StagingLayout& InputStaging(int i) const override { return inputs_[i]; }
  const StagingLayout& OutputStaging(int o) const override { return outputs_[o]; }
  int DefaultBatchesPerWorker() const override { return backend_.DefaultBatchesPerWorker(); }
  std::string DeviceDescription() const override { return backend_.DeviceDescription(); }
  std::string DeviceName() const override { return backend_.DeviceName(); }
  std::shared_ptr<char> AllocateStaging(int64_t bytes) override {
    return backend_.AllocateStaging(bytes);
  }
  std::optional<MemoryUsage> DeviceMemory() const override { return backend_.DeviceMemory(); }
  std::optional<DeviceStages> TakeDeviceStages(int worker) override {
    return backend_.TakeDeviceStages(worker);
  }
  FallbackState Fallback() const override { return backend_.Fallback(); }

 private:
  Backend& backend_;
  std::deque<SkippingLayout> inputs_;  // A deque: layouts do not move.
  std::deque<SkippingLayout> outputs_;
};

absl::StatusOr<ServerResult> MeasureServer(TorchBackend& backend, const Variant& variant,
                                           const std::vector<char>& input, int64_t rows,
                                           absl::Duration warmup, absl::Duration window) {
  ServerMetrics metrics(std::make_shared<prometheus::Registry>());
  std::unique_ptr<ModelMetrics> model_metrics =
      metrics.ForModel(backend.metadata().name, backend.metadata().version);
  Executor::Options options;
  options.num_workers = variant.workers;
  options.pool_staging = variant.pooled;
  options.copy_threads = variant.copy_threads;
  options.exclusive_backend = variant.exclusive;
  options.batches_per_worker = variant.batches_per_worker;
  CopySkippingBackend skipping(backend, variant.skip_gather, variant.skip_scatter);
  Backend* const served =
      variant.skip_gather || variant.skip_scatter ? &skipping : static_cast<Backend*>(&backend);
  absl::StatusOr<std::unique_ptr<Executor>> executor =
      Executor::Create(options, served, model_metrics.get(), Clock::Real());
  if (!executor.ok()) return executor.status();
  const int64_t row_bytes = backend.metadata().inputs[0].RowBytes();

  // The next batch is built while the ones in flight run, as the batcher would have it ready.
  auto next = std::make_unique<BatchRun>();
  Batch ready = MakeBatch(*next, input, row_bytes, rows);
  std::deque<std::unique_ptr<BatchRun>> in_flight;
  const absl::Time start = absl::Now() + warmup;
  const absl::Time stop = start + window;
  ServerResult result;
  bool timing = false;
  absl::Time timed_from, last;
  int64_t batches = 0;
  absl::Duration latency_sum;
  absl::Status status;
  std::unique_ptr<BatchRun> finished;
  std::array<Totals, kStages> stages_before;
  while (status.ok()) {
    while (static_cast<int>(in_flight.size()) < variant.threads()) {
      next->dispatched = absl::Now();
      (*executor)->Dispatch(std::move(ready));
      in_flight.push_back(std::move(next));
      next = std::make_unique<BatchRun>();
      ready = MakeBatch(*next, input, row_bytes, rows);
    }
    finished = std::move(in_flight.front());
    in_flight.pop_front();
    finished->done.WaitForNotification();
    status = finished->Status();
    last = finished->answered;
    if (timing) {
      ++batches;
      latency_sum += finished->answered - finished->dispatched;
      if (last >= stop) break;
    } else if (last >= start) {
      timing = true;
      timed_from = last;
      stages_before = StageTotals(*metrics.registry());
    }
  }
  for (auto& run : in_flight) run->done.WaitForNotification();
  (*executor)->Stop();
  for (auto& request : ready.requests) request->Finish(absl::CancelledError("benchmark over"));
  if (!status.ok()) return status;
  // Without the gather or the scatter the answers are wrong by design.
  const bool answers_copied = !variant.skip_gather && !variant.skip_scatter;
  for (int64_t r : {int64_t{0}, rows - 1}) {
    if (!answers_copied) break;
    if (absl::Status s = CheckAnswer(backend, input, row_bytes, r, finished->outputs[r]);
        !s.ok()) {
      return s;
    }
  }
  const double wall_s = absl::ToDoubleSeconds(last - timed_from);
  // Every batch that ran after timing began, including any still in flight then.
  const std::array<Totals, kStages> stages_after = StageTotals(*metrics.registry());
  double* stage_ms[kStages] = {&result.gather_ms,  &result.backend_ms,  &result.scatter_ms,
                               &result.copy_in_ms, &result.forward_ms, &result.copy_out_ms};
  for (int i = 0; i < kStages; ++i) {
    const double n = stages_after[i].count - stages_before[i].count;
    *stage_ms[i] = n > 0 ? 1e3 * (stages_after[i].sum - stages_before[i].sum) / n : 0;
  }
  result.samples_per_s = static_cast<double>(batches * rows) / wall_s;
  result.ms_per_batch = variant.threads() == 1
                            ? absl::ToDoubleMilliseconds(latency_sum) / batches
                            : 1e3 * wall_s / static_cast<double>(batches);
  return result;
}

std::string MemoryText(const TorchBackend& backend) {
  std::optional<Backend::MemoryUsage> memory = backend.DeviceMemory();
  if (!memory.has_value()) return "not reported on this device";
  return absl::StrFormat("in use %.1f MiB, reserved %.1f MiB", memory->in_use_bytes / 1048576.0,
                         memory->reserved_bytes / 1048576.0);
}

// The device-failure path on this machine's real device: one injected failure falls back to the
// fp32 CPU module, a recheck returns to the device.
absl::Status ExerciseFallback(TorchBackend& backend, const std::vector<char>& input) {
  const TensorSpec& out_spec = backend.metadata().outputs[0];
  std::vector<char> out(out_spec.RowBytes() * 2);
  const char* in = input.data();
  char* out_ptr = out.data();
  InjectDeviceFailures(backend, 1);
  if (absl::Status s = backend.Execute(0, 2, {&in, 1}, {&out_ptr, 1}); !s.ok()) return s;
  if (backend.fallbacks() != 1 || !backend.on_fallback()) {
    return absl::InternalError(absl::StrCat("after an injected failure: fallbacks ",
                                            backend.fallbacks(), ", on fallback ",
                                            backend.on_fallback()));
  }
  backend.RecheckDevice();
  if (absl::Status s = backend.Execute(0, 2, {&in, 1}, {&out_ptr, 1}); !s.ok()) return s;
  if (backend.on_fallback()) return absl::InternalError("still on the fallback after a recheck");
  return absl::OkStatus();
}

// --model_dir's model, if any and if this benchmark can run it: one FP32 input and one FP32
// output.
absl::StatusOr<std::optional<ModelOnDisk>> OneInOneOutModelFromFlags(int64_t max_rows) {
  absl::StatusOr<std::optional<ModelOnDisk>> model = ModelDirFromFlags(max_rows);
  if (!model.ok() || !model->has_value()) return model;
  const ModelMetadata& metadata = (*model)->metadata;
  if (metadata.inputs.size() != 1 || metadata.outputs.size() != 1 ||
      metadata.inputs[0].dtype != DataType::kFp32 || metadata.outputs[0].dtype != DataType::kFp32) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--model_dir: model '", metadata.name, "' needs one FP32 input and one FP32 output for "
        "this benchmark"));
  }
  return model;
}

// The demo model, or `model` where given.
absl::StatusOr<std::unique_ptr<TorchBackend>> MakeBackend(
    const std::optional<ModelOnDisk>& model, const std::string& device,
    const std::string& precision, int64_t max_rows, int workers, bool graphs) {
  absl::StatusOr<std::optional<DeviceKind>> parsed_device = ParseDevice(device);
  if (!parsed_device.ok()) return parsed_device.status();
  absl::StatusOr<std::optional<Precision>> parsed_precision = ParsePrecision(precision);
  if (!parsed_precision.ok()) return parsed_precision.status();
  TorchBackend::Options options;
  options.device = *parsed_device;
  options.precision = *parsed_precision;
  options.cuda_graphs = graphs;
  options.stage_fp16 = absl::GetFlag(FLAGS_stage_fp16);
  options.num_workers = workers;
  // bf16 lands near 5e-2 on the demo (tests/torch_backend_test.cc); fp16 within the default.
  if (precision == "bf16") options.max_precision_error = 0.1;
  if (model.has_value()) return TorchBackend::Load(model->file, model->metadata, options);
  return TorchBackend::CreateDemo(options, max_rows);
}

int Main() {
  absl::StatusOr<std::vector<int64_t>> sizes = ParseBatchSizes(absl::GetFlag(FLAGS_batch_sizes));
  const double duration_s = absl::GetFlag(FLAGS_duration_s);
  const double warmup_s = absl::GetFlag(FLAGS_warmup_s);
  if (!sizes.ok()) {
    std::cerr << "coalesce-engine-bench: " << sizes.status().message() << "\n";
    return 2;
  }
  // Their precision is set once the device's low precision is known.
  absl::StatusOr<std::vector<Variant>> extra =
      ParseExtraVariants(absl::GetFlag(FLAGS_extra_variants), "");
  if (!extra.ok()) {
    std::cerr << "coalesce-engine-bench: " << extra.status().message() << "\n";
    return 2;
  }
  if (!(duration_s > 0) || !(warmup_s >= 0)) {
    std::cerr << "coalesce-engine-bench: need --duration_s > 0 (got " << duration_s
              << ") and --warmup_s >= 0 (got " << warmup_s << ")\n";
    return 2;
  }
  const absl::Duration window = absl::Seconds(duration_s);
  const absl::Duration warmup = absl::Seconds(warmup_s);
  const int64_t max_rows = *std::max_element(sizes->begin(), sizes->end());
  const std::string device = absl::GetFlag(FLAGS_device);
  absl::StatusOr<std::optional<ModelOnDisk>> read = OneInOneOutModelFromFlags(max_rows);
  if (!read.ok()) {
    std::cerr << "coalesce-engine-bench: " << read.status().message() << "\n";
    return 2;
  }
  const std::optional<ModelOnDisk> model = *std::move(read);

  int max_workers = 2;
  for (const Variant& variant : *extra) max_workers = std::max(max_workers, variant.workers);
  // The backends by precision: [0] the low precision (fp16 where the device has it, bf16 on
  // the CPU), [1] fp32, [2] the low precision with CUDA graphs (CUDA only).
  std::array<std::unique_ptr<TorchBackend>, 3> backends;
  std::string low_name = "fp16";
  {
    absl::StatusOr<std::unique_ptr<TorchBackend>> low =
        MakeBackend(model, device, "fp16", max_rows, max_workers, false);
    if (!low.ok()) {
      low = MakeBackend(model, device, "bf16", max_rows, max_workers, false);
      low_name = "bf16";
    }
    absl::StatusOr<std::unique_ptr<TorchBackend>> fp32 =
        MakeBackend(model, device, "fp32", max_rows, max_workers, false);
    for (auto* made : {&low, &fp32}) {
      if (!made->ok()) {
        std::cerr << "coalesce-engine-bench: " << made->status().message() << "\n";
        return 1;
      }
    }
    backends[0] = *std::move(low);
    backends[1] = *std::move(fp32);
    if (backends[0]->DeviceDescription().rfind("cuda", 0) == 0) {
      absl::StatusOr<std::unique_ptr<TorchBackend>> graphs =
          MakeBackend(model, device, low_name, max_rows, max_workers, true);
      if (!graphs.ok()) {
        std::cerr << "coalesce-engine-bench: " << graphs.status().message() << "\n";
        return 1;
      }
      backends[2] = *std::move(graphs);
    }
  }
  for (const auto& backend : backends) {
    if (backend == nullptr) continue;
    std::cerr << "coalesce-engine-bench: model '" << backend->metadata().name << "' on "
              << backend->DeviceDescription()
              << (backend->optimized() ? ", optimize_for_inference" : ", frozen only")
              << ", precision error " << backend->precision_error() << std::endl;
  }
  int copy_threads = absl::GetFlag(FLAGS_copy_threads);
  if (copy_threads < 0) copy_threads = Executor::DefaultCopyThreads();
  std::cerr << "coalesce-engine-bench: Nc variants copy with " << copy_threads
            << " threads (worker included)" << std::endl;
  // The first row of each batch size is the configuration measured before copy threads existed.
  std::vector<Variant> variants = {
      {low_name, true, 1, 1},         {low_name, true, 1, copy_threads},
      {"fp32", true, 1, copy_threads}, {low_name, false, 1, copy_threads},
      {low_name, true, 2, 1},         {low_name, true, 2, copy_threads}};
  if (backends[2] != nullptr) {
    variants.push_back({low_name, true, 1, copy_threads, true});
    variants.push_back({low_name, true, 2, copy_threads, true});
  }
  if (!absl::GetFlag(FLAGS_default_variants)) variants.clear();
  for (Variant& variant : *extra) {
    variant.precision = low_name;
    if (variant.graphs && backends[2] == nullptr) {
      std::cerr << "coalesce-engine-bench: --extra_variants: CUDA graphs need a CUDA device\n";
      return 2;
    }
  }
  variants.insert(variants.end(), extra->begin(), extra->end());
  if (variants.empty()) {
    std::cerr << "coalesce-engine-bench: --nodefault_variants needs --extra_variants\n";
    return 2;
  }
  auto backend_of = [](const Variant& variant) {
    return variant.graphs ? 2 : variant.precision == "fp32" ? 1 : 0;
  };

  std::vector<char> input(backends[0]->metadata().inputs[0].RowBytes() * max_rows);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (size_t i = 0; i < input.size() / sizeof(float); ++i) {
    reinterpret_cast<float*>(input.data())[i] = uniform(rng);
  }

  std::cout << absl::StrFormat(
      "%6s  %-36s %11s %10s %6s %10s %10s %10s %10s %8s %10s %7s %7s %7s\n", "batch", "variant",
      "ceiling_ms", "server_ms", "ratio", "samples/s", "gather_ms", "backend_ms", "scatter_ms",
      "host_ms", "host_ratio", "in_ms", "fwd_ms", "out_ms");
  for (int64_t rows : *sizes) {
    // Per backend: the resident ceiling (the module's own forward, never a graph) and the
    // host ceiling (the backend's batch path, from its graphs where it has them).
    std::array<std::array<double, 2>, 3> ceilings{};
    for (size_t b = 0; b < backends.size(); ++b) {
      if (backends[b] == nullptr) continue;
      for (Ceiling kind : {Ceiling::kResident, Ceiling::kHost}) {
        absl::StatusOr<double> ms = CeilingMs(*backends[b], kind, rows, warmup, window);
        if (!ms.ok()) {
          std::cerr << "coalesce-engine-bench: ceiling at batch " << rows << ": "
                    << ms.status().message() << "\n";
          return 1;
        }
        ceilings[b][kind == Ceiling::kResident ? 0 : 1] = *ms;
      }
    }
    for (const Variant& variant : variants) {
      const int b = backend_of(variant);
      absl::StatusOr<ServerResult> server =
          MeasureServer(*backends[b], variant, input, rows, warmup, window);
      if (!server.ok()) {
        std::cerr << "coalesce-engine-bench: " << variant.Name() << " at batch " << rows << ": "
                  << server.status().message() << "\n";
        return 1;
      }
      const double ceiling = ceilings[b][0];
      const double host = ceilings[b][1];
      std::cout << absl::StrFormat(
          "%6d  %-36s %11.4f %10.4f %6.2f %10.0f %10.4f %10.4f %10.4f %8.4f %10.2f %7.4f %7.4f "
          "%7.4f\n",
          rows, variant.Name(), ceiling, server->ms_per_batch, server->ms_per_batch / ceiling,
          server->samples_per_s, server->gather_ms, server->backend_ms, server->scatter_ms, host,
          server->ms_per_batch / host, server->copy_in_ms, server->forward_ms,
          server->copy_out_ms);
      std::cout.flush();
    }
  }
  if (backends[2] != nullptr) {
    const TorchBackend::GraphStats graphs = backends[2]->cuda_graphs();
    std::cerr << "coalesce-engine-bench: CUDA graphs: " << graphs.captured << " captured, "
              << graphs.replays << " batches replayed"
              << (graphs.failed ? ", a capture FAILED (graphs off since)" : "") << std::endl;
  }
  std::cerr << "coalesce-engine-bench: device memory after the runs: " << MemoryText(*backends[0])
            << std::endl;
  if (absl::GetFlag(FLAGS_exercise_fallback)) {
    absl::Status s = ExerciseFallback(*backends[0], input);
    std::cerr << "coalesce-engine-bench: injected device failure: "
              << (s.ok() ? "answered by the CPU fallback, back on the device after a recheck"
                         : std::string(s.message()))
              << std::endl;
    if (!s.ok()) return 1;
  }
  return 0;
}

}  // namespace
}  // namespace coalesce

int main(int argc, char** argv) {
  coalesce::ParseFlagsOrExit(
      argc, argv, "coalesce-engine-bench",
      "Times the server's per-batch path (executor + TorchBackend, no RPC) against the model's "
      "ceiling (the demo, or --model_dir) at each batch size.\n"
      "Example: coalesce-engine-bench --device=cuda --duration_s=1 --batch_sizes=1,32,256");
  return coalesce::Main();
}
