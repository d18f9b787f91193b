#include "core/metrics.h"

#include <string>
#include <utility>

namespace coalesce {
namespace {

// 100 us .. ~13 s, doubling: covers a GPU batch and a stalled CPU one.
prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  prometheus::Histogram::BucketBoundaries buckets;
  for (double b = 100e-6; b < 15.0; b *= 2) buckets.push_back(b);
  return buckets;
}

prometheus::Histogram::BucketBoundaries BatchSizeBuckets() {
  return {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
}

}  // namespace

ServerMetrics::ServerMetrics(std::shared_ptr<prometheus::Registry> registry)
    : registry_(std::move(registry)),
      requests_(prometheus::BuildCounter()
                    .Name("coalesce_requests_total")
                    .Help("Inference requests answered, by model and gRPC status code.")
                    .Register(*registry_)),
      request_duration_(prometheus::BuildHistogram()
                            .Name("coalesce_request_duration_seconds")
                            .Help("Time from a request's arrival to its answer.")
                            .Register(*registry_)),
      batch_size_(prometheus::BuildHistogram()
                      .Name("coalesce_batch_size")
                      .Help("Samples (rows) in each executed batch.")
                      .Register(*registry_)),
      compute_duration_(prometheus::BuildHistogram()
                            .Name("coalesce_compute_duration_seconds")
                            .Help("Backend time per executed batch.")
                            .Register(*registry_)),
      inferences_(prometheus::BuildCounter()
                      .Name("coalesce_inferences_total")
                      .Help("Samples run through the model (a request of batch n counts n).")
                      .Register(*registry_)),
      batches_(prometheus::BuildCounter()
                   .Name("coalesce_batches_total")
                   .Help("Batches executed by the model.")
                   .Register(*registry_)) {}

std::unique_ptr<ModelMetrics> ServerMetrics::ForModel(const std::string& model) {
  std::unique_ptr<ModelMetrics> m(new ModelMetrics());
  for (int code = 0; code < ModelMetrics::kNumCodes; ++code) {
    std::string name = absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
    m->requests_by_code_[code] = &requests_.Add({{"model", model}, {"code", name}});
  }
  m->request_duration_ = &request_duration_.Add({{"model", model}}, LatencyBuckets());
  m->batch_size_ = &batch_size_.Add({{"model", model}}, BatchSizeBuckets());
  m->compute_duration_ = &compute_duration_.Add({{"model", model}}, LatencyBuckets());
  m->inferences_ = &inferences_.Add({{"model", model}});
  m->batches_ = &batches_.Add({{"model", model}});
  return m;
}

void ModelMetrics::RecordRequest(absl::StatusCode code, absl::Duration latency) {
  int index = static_cast<int>(code);
  if (index < 0 || index >= kNumCodes) index = static_cast<int>(absl::StatusCode::kUnknown);
  requests_by_code_[index]->Increment();
  request_duration_->Observe(absl::ToDoubleSeconds(latency));
}

void ModelMetrics::RecordBatch(int64_t rows, absl::Duration compute) {
  batch_size_->Observe(static_cast<double>(rows));
  compute_duration_->Observe(absl::ToDoubleSeconds(compute));
  inferences_->Increment(static_cast<double>(rows));
  batches_->Increment();
}

}  // namespace coalesce
