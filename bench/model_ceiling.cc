// coalesce-model-ceiling: a model's own speed (the demo, or --model_dir), in-process, with no RPC
// and no queue.
//
//   coalesce-model-ceiling --device=auto --precision=auto --workers=2 --seconds=2
//       [--batch_sizes=1,8,32,64,128,256] [--csv] [--model_dir=REPOSITORY/MODEL]
//
// One TorchBackend, the server's own, built with the same --device, --precision, --stage_fp16
// and --cuda_graphs flags, runs the model from --workers threads at once, each with its own
// worker index and its own random input and output buffers, as the server's executor calls it:
// in the backend's staging memory (page-locked on CUDA) and staging types (FP16 for the FP32
// tensors on CUDA with --stage_fp16, as the server's executor hands them over). What the server
// adds around this (the gather, the scatter, the answers) is what coalesce-engine-bench shows.
// Each Execute() copies its output back to the host, which is the synchronisation point, so one
// call is one batch's time.
// For each batch size, --warmup_s of untimed calls, then every call of the next --seconds is
// timed; the table gives the median and p90 milliseconds per batch and the samples per second of
// all workers together.
//
// Whatever coalesce reaches at a batch size, this is the most it could reach there: the
// benchmark's efficiency is coalesce's rate divided by this one (or the echo server's, if lower).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/model_dir.h"
#include "common/flag_parsing.h"
#include "engine/data_type.h"
#include "engine/model_metadata.h"
#include "execution/device.h"
#include "execution/staging_layout.h"
#include "execution/torch/torch_backend.h"

ABSL_FLAG(std::string, device, "auto", "auto (MPS, then CUDA, then CPU), mps, cuda or cpu.");
ABSL_FLAG(std::string, precision, "auto",
          "auto (fp16 on MPS/CUDA, fp32 on CPU), fp16, bf16 or fp32. Inputs are converted to it "
          "on the device, as in the server.");
ABSL_FLAG(bool, cuda_graphs, true,
          "As the server's --cuda_graphs: on CUDA, each worker replays its batch path from a "
          "CUDA graph per batch size.");
ABSL_FLAG(bool, stage_fp16, true,
          "As the server's --stage_fp16: on CUDA in fp16, FP32 tensors cross PCIe as FP16 (the "
          "inputs are handed over already narrowed, as the server's executor does). false: as "
          "FP32.");
ABSL_FLAG(std::string, batch_sizes, "1,8,32,64,128,256",
          "Comma-separated batch sizes (samples per Execute call), one row each.");
ABSL_FLAG(double, seconds, 2.0, "Timed seconds per batch size.");
ABSL_FLAG(double, warmup_s, 0.5, "Untimed seconds of calls before each batch size's timing.");
ABSL_FLAG(int, workers, 2,
          "Threads calling the model at once, each with its own worker index (the server's "
          "--workers; 1 measures a single caller).");
ABSL_FLAG(bool, csv, false, "Print CSV (a header, then one line per batch size).");
ABSL_FLAG(std::string, label, "model", "Name printed in every CSV row.");

namespace {

using coalesce::DataType;
using coalesce::TorchBackend;

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

// Integer and BOOL tensors, whose staging is as on the wire (little-endian).
bool IsInteger(DataType type) {
  switch (type) {
    case DataType::kBool:
    case DataType::kUint8:
    case DataType::kUint16:
    case DataType::kUint32:
    case DataType::kUint64:
    case DataType::kInt8:
    case DataType::kInt16:
    case DataType::kInt32:
    case DataType::kInt64:
      return true;
    default:
      return false;
  }
}

// One worker's buffers: `max_rows` rows of every input (random) and output.
struct WorkerBuffers {
  std::vector<std::shared_ptr<char>> memory;
  std::vector<const char*> input_ptrs;
  std::vector<char*> output_ptrs;

  // The backend's own staging memory (page-locked on CUDA), as the server's executor gathers
  // into, in the backend's staging types: what Execute() reads and writes.
  WorkerBuffers(TorchBackend& backend, int64_t max_rows, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    const coalesce::ModelMetadata& metadata = backend.metadata();
    for (size_t i = 0; i < metadata.inputs.size(); ++i) {
      const coalesce::TensorSpec& spec = metadata.inputs[i];
      const int64_t elements = spec.RowElements() * max_rows;
      const coalesce::StagingLayout& layout = backend.InputStaging(static_cast<int>(i));
      const int64_t bytes = layout.StagedBytes(elements * coalesce::DataTypeSize(spec.dtype));
      char* buffer = memory.emplace_back(backend.AllocateStaging(bytes)).get();
      if (spec.dtype == DataType::kFp32) {
        std::vector<float> values(elements);
        for (float& value : values) value = uniform(rng);
        layout.Stage(absl::string_view(reinterpret_cast<const char*>(values.data()),
                                       values.size() * sizeof(float)),
                     buffer, /*streaming=*/false);
      } else if (IsInteger(spec.dtype)) {
        // 0 or 1, as coalesce-bench sends: valid token ids and masks, which random bytes
        // (ids far beyond any vocabulary) are not.
        const int size = coalesce::DataTypeSize(spec.dtype);
        std::memset(buffer, 0, bytes);
        for (int64_t e = 0; e < elements; ++e) buffer[e * size] = static_cast<char>(rng() & 1);
      } else {
        for (int64_t b = 0; b < bytes; ++b) buffer[b] = static_cast<char>(rng() & 0x3f);
      }
      input_ptrs.push_back(buffer);
    }
    for (size_t o = 0; o < metadata.outputs.size(); ++o) {
      const coalesce::TensorSpec& spec = metadata.outputs[o];
      const int64_t elements = spec.RowElements() * max_rows;
      const int64_t bytes = backend.OutputStaging(static_cast<int>(o))
                                .StagedBytes(elements * coalesce::DataTypeSize(spec.dtype));
      output_ptrs.push_back(memory.emplace_back(backend.AllocateStaging(bytes)).get());
    }
  }
};

struct SizeResult {
  int64_t batch = 0;
  int64_t batches = 0;
  double median_ms = 0;
  double p90_ms = 0;
  double samples_per_s = 0;
};

double Percentile(std::vector<double>& values, double q) {
  if (values.empty()) return 0;
  size_t index = std::min(values.size() - 1, static_cast<size_t>(q * values.size()));
  std::nth_element(values.begin(), values.begin() + index, values.end());
  return values[index];
}

// Runs `rows`-sample batches from every worker: untimed until `warmup` has passed (at least one
// call each), then timed for `window` (at least one call each; a call that starts inside the
// window counts in full). Each worker's rate is its rows over its own timed span, and the
// workers' rates add up, so a slow last call of one worker does not stretch the others' span.
absl::StatusOr<SizeResult> MeasureBatchSize(TorchBackend& backend,
                                            std::vector<WorkerBuffers>& buffers, int64_t rows,
                                            absl::Duration warmup, absl::Duration window) {
  const int workers = static_cast<int>(buffers.size());
  std::vector<std::vector<double>> times_ms(workers);
  std::vector<absl::Status> statuses(workers);
  std::vector<absl::Duration> spans(workers);
  const absl::Time start = absl::Now() + warmup;
  const absl::Time stop = start + window;
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      WorkerBuffers& b = buffers[w];
      bool warm = false;
      absl::Time now = absl::Now();
      while (now < start || !warm) {
        statuses[w] = backend.Execute(w, rows, b.input_ptrs, b.output_ptrs);
        if (!statuses[w].ok()) return;
        warm = true;
        now = absl::Now();
      }
      const absl::Time first = now;
      while (now < stop || times_ms[w].empty()) {
        const absl::Time call_start = now;
        statuses[w] = backend.Execute(w, rows, b.input_ptrs, b.output_ptrs);
        if (!statuses[w].ok()) return;
        now = absl::Now();
        times_ms[w].push_back(absl::ToDoubleMilliseconds(now - call_start));
      }
      spans[w] = now - first;
    });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& status : statuses) {
    if (!status.ok()) return status;
  }
  SizeResult result;
  result.batch = rows;
  std::vector<double> all;
  for (int w = 0; w < workers; ++w) {
    all.insert(all.end(), times_ms[w].begin(), times_ms[w].end());
    result.samples_per_s +=
        static_cast<double>(times_ms[w].size() * rows) / absl::ToDoubleSeconds(spans[w]);
  }
  result.batches = static_cast<int64_t>(all.size());
  result.median_ms = Percentile(all, 0.5);
  result.p90_ms = Percentile(all, 0.9);
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  coalesce::ParseFlagsOrExit(
      argc, argv, "coalesce-model-ceiling",
      "Runs a model (coalesce's demo, or --model_dir) in-process (no RPC) at each batch size and "
      "prints ms per batch and samples/s: the model's ceiling.\n"
      "Example: coalesce-model-ceiling --batch_sizes=1,32,256 --seconds=2 --workers=2");

  absl::StatusOr<std::vector<int64_t>> sizes = ParseBatchSizes(absl::GetFlag(FLAGS_batch_sizes));
  const int workers = absl::GetFlag(FLAGS_workers);
  const double seconds = absl::GetFlag(FLAGS_seconds);
  const double warmup_s = absl::GetFlag(FLAGS_warmup_s);
  if (!sizes.ok()) {
    std::cerr << "coalesce-model-ceiling: " << sizes.status().message() << "\n";
    return 2;
  }
  if (workers < 1 || !(seconds > 0) || !(warmup_s >= 0)) {
    std::cerr << "coalesce-model-ceiling: need --workers >= 1 (got " << workers
              << "), --seconds > 0 (got " << seconds << ") and --warmup_s >= 0 (got " << warmup_s
              << ")\n";
    return 2;
  }
  const int64_t max_rows = *std::max_element(sizes->begin(), sizes->end());

  TorchBackend::Options options;
  options.num_workers = workers;
  options.stage_fp16 = absl::GetFlag(FLAGS_stage_fp16);
  options.cuda_graphs = absl::GetFlag(FLAGS_cuda_graphs);
  absl::StatusOr<std::optional<coalesce::ModelOnDisk>> model =
      coalesce::ModelDirFromFlags(max_rows);
  if (!model.ok()) {
    std::cerr << "coalesce-model-ceiling: " << model.status().message() << "\n";
    return 2;
  }
  // A wrong spelling fails as a backend that cannot be made does.
  absl::StatusOr<std::optional<coalesce::DeviceKind>> parsed_device =
      coalesce::ParseDevice(absl::GetFlag(FLAGS_device));
  absl::StatusOr<std::optional<coalesce::Precision>> parsed_precision =
      coalesce::ParsePrecision(absl::GetFlag(FLAGS_precision));
  for (const absl::Status& status : {parsed_device.status(), parsed_precision.status()}) {
    if (!status.ok()) {
      std::cerr << "coalesce-model-ceiling: " << status.message() << "\n";
      return 1;
    }
  }
  options.device = *parsed_device;
  options.precision = *parsed_precision;
  absl::StatusOr<std::unique_ptr<TorchBackend>> backend =
      model->has_value()
          ? TorchBackend::Load((*model)->file, (*model)->metadata, options)
          : TorchBackend::CreateDemo(options, max_rows);
  if (!backend.ok()) {
    std::cerr << "coalesce-model-ceiling: " << backend.status().message() << "\n";
    return 1;
  }
  const std::string device = (*backend)->DeviceDescription();
  std::cerr << "coalesce-model-ceiling: model '" << (*backend)->metadata().name << "' on "
            << device << ", " << workers
            << " worker(s), " << warmup_s << " s warm-up + " << seconds << " s per batch size"
            << std::endl;

  std::vector<WorkerBuffers> buffers;
  for (int w = 0; w < workers; ++w) {
    buffers.emplace_back(**backend, max_rows, /*seed=*/1 + w);
  }

  const bool csv = absl::GetFlag(FLAGS_csv);
  const std::string label = absl::GetFlag(FLAGS_label);
  if (csv) {
    std::cout << "label,device,workers,batch,batches,median_ms,p90_ms,samples_per_s\n";
  } else {
    std::cout << absl::StrFormat("%6s %8s %9s %12s %12s %14s\n", "batch", "workers", "batches",
                                 "median_ms", "p90_ms", "samples/s");
  }
  for (int64_t rows : *sizes) {
    absl::StatusOr<SizeResult> r =
        MeasureBatchSize(**backend, buffers, rows, absl::Seconds(warmup_s), absl::Seconds(seconds));
    if (!r.ok()) {
      std::cerr << "coalesce-model-ceiling: batch " << rows << ": " << r.status().message() << "\n";
      return 1;
    }
    if (csv) {
      std::cout << absl::StrFormat("%s,%s,%d,%d,%d,%.4f,%.4f,%.1f\n", label, device, workers,
                                   r->batch, r->batches, r->median_ms, r->p90_ms, r->samples_per_s);
    } else {
      std::cout << absl::StrFormat("%6d %8d %9d %12.3f %12.3f %14.1f\n", r->batch, workers,
                                   r->batches, r->median_ms, r->p90_ms, r->samples_per_s);
    }
    std::cout.flush();
  }
  return 0;
}
