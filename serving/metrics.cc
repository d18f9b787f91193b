#include "serving/metrics.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
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

constexpr char kLatencyName[] = "coalesce_request_latency_seconds";
constexpr char kLatencyHelp[] =
    "p50, p90 and p99 of request latency (arrival to answer) over the last 60 seconds.";

// A registry that collects its own families (those registered in it), those of another registry
// and more from a function, which Detach() stops calling.
class Exposition : public prometheus::Registry {
 public:
  Exposition(std::shared_ptr<prometheus::Registry> families,
             std::function<std::vector<prometheus::MetricFamily>()> more)
      : families_(std::move(families)), more_(std::move(more)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> collected = families_->Collect();
    for (prometheus::MetricFamily& family : Registry::Collect()) {
      collected.push_back(std::move(family));
    }
    absl::MutexLock lock(&mu_);
    if (more_) {
      for (prometheus::MetricFamily& family : more_()) collected.push_back(std::move(family));
    }
    return collected;
  }

  void Detach() {
    absl::MutexLock lock(&mu_);
    more_ = nullptr;
  }

 private:
  const std::shared_ptr<prometheus::Registry> families_;
  mutable absl::Mutex mu_;
  std::function<std::vector<prometheus::MetricFamily>()> more_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

WindowedQuantiles::WindowedQuantiles(std::vector<double> quantiles, absl::Duration window,
                                     int age_buckets, Clock* clock)
    : quantiles_(std::move(quantiles)),
      slot_length_(window / std::max(age_buckets, 1)),
      age_buckets_(std::max(age_buckets, 1)),
      clock_(clock),
      start_(clock->Now()),
      shards_(new Shard[kShards]) {
  for (int i = 0; i < kShards; ++i) shards_[i].slots.resize(age_buckets_);
}

int WindowedQuantiles::Bucket(double value) {
  if (!(value > 0)) return 0;  // Zero, negative and NaN: the underflow bucket.
  int exponent = 0;
  const double mantissa = std::frexp(value, &exponent);  // value = mantissa * 2^exponent.
  if (exponent < kMinExponent) return 0;
  if (exponent > kMaxExponent) return kBuckets - 1;
  const int sub = std::min(kSubBuckets - 1, static_cast<int>((mantissa - 0.5) * 2 * kSubBuckets));
  return 1 + (exponent - kMinExponent) * kSubBuckets + sub;
}

double WindowedQuantiles::Value(int bucket) {
  if (bucket <= 0) return 0;
  if (bucket >= kBuckets - 1) return std::ldexp(1.0, kMaxExponent);
  const int exponent = (bucket - 1) / kSubBuckets + kMinExponent;
  const int sub = (bucket - 1) % kSubBuckets;
  return std::ldexp(0.5 + (sub + 0.5) / (2 * kSubBuckets), exponent);
}

int64_t WindowedQuantiles::Epoch(absl::Time now) const {
  return absl::ToInt64Nanoseconds(std::max(now - start_, absl::ZeroDuration())) /
         std::max<int64_t>(1, absl::ToInt64Nanoseconds(slot_length_));
}

void WindowedQuantiles::Observe(double value) {
  // Each thread keeps to one shard, so that threads seldom share a lock or a cache line.
  static std::atomic<int> next_shard{0};
  thread_local const int shard_index = next_shard.fetch_add(1, std::memory_order_relaxed);
  Shard& shard = shards_[shard_index % kShards];
  const int bucket = Bucket(value);
  const int64_t epoch = Epoch(clock_->Now());
  std::lock_guard<std::mutex> lock(shard.mu);
  Slot& slot = shard.slots[epoch % age_buckets_];
  if (slot.epoch != epoch) {
    // Allocated on first use: a version without traffic, or a shard no thread took, holds none.
    slot.counts.assign(kBuckets, 0);
    slot.epoch = epoch;
  }
  ++slot.counts[bucket];
  ++shard.count;
  shard.sum += value;
}

WindowedQuantiles::Snapshot WindowedQuantiles::Collect() const {
  const int64_t epoch = Epoch(clock_->Now());
  Snapshot snapshot;
  std::vector<uint64_t> counts(kBuckets, 0);
  for (int i = 0; i < kShards; ++i) {
    const Shard& shard = shards_[i];
    std::lock_guard<std::mutex> lock(shard.mu);
    snapshot.count += shard.count;
    snapshot.sum += shard.sum;
    for (const Slot& slot : shard.slots) {
      if (slot.epoch < 0 || slot.epoch <= epoch - age_buckets_ || slot.epoch > epoch) continue;
      for (int b = 0; b < kBuckets; ++b) counts[b] += slot.counts[b];
    }
  }
  uint64_t total = 0;
  for (uint64_t c : counts) total += c;
  for (double q : quantiles_) {
    double value = std::numeric_limits<double>::quiet_NaN();
    if (total > 0) {
      // The smallest value with at least q of the values at or below it.
      const uint64_t rank = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * total)));
      uint64_t seen = 0;
      for (int b = 0; b < kBuckets; ++b) {
        seen += counts[b];
        if (seen >= rank) {
          value = Value(b);
          break;
        }
      }
    }
    snapshot.quantiles.emplace_back(q, value);
  }
  return snapshot;
}

ServerMetrics::ServerMetrics(std::shared_ptr<prometheus::Registry> registry, Clock* clock)
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
      stage_duration_(prometheus::BuildHistogram()
                          .Name("coalesce_batch_stage_duration_seconds")
                          .Help("Time per batch by stage. Executor, outside the backend: "
                                "gathering inputs into the staging buffer (stage=gather), copying "
                                "outputs into the responses and answering them (stage=scatter), "
                                "waiting for the model while another batch is on it "
                                "(stage=backend_wait: with 2 or more --batches_per_worker, the "
                                "worker's other batch; with --exclusive_backend, any). "
                                "On the device, for the batches the backend times (CUDA: 1 in "
                                "16, or 1 in 256 run eagerly with CUDA graphs): host-to-device "
                                "copy and conversion "
                                "(stage=copy_in), forward (stage=forward), conversion and "
                                "device-to-host copy (stage=copy_out).")
                          .Register(*registry_)),
      inferences_(prometheus::BuildCounter()
                      .Name("coalesce_inferences_total")
                      .Help("Samples run through the model (a request of batch n counts n).")
                      .Register(*registry_)),
      batches_(prometheus::BuildCounter()
                   .Name("coalesce_batches_total")
                   .Help("Batches executed by the model.")
                   .Register(*registry_)),
      shed_(prometheus::BuildCounter()
                .Name("coalesce_shed_requests_total")
                .Help("Requests answered DEADLINE_EXCEEDED before running because the latency "
                      "model said they could not meet their deadline.")
                .Register(*registry_)),
      cancelled_(prometheus::BuildCounter()
                     .Name("coalesce_cancelled_requests_total")
                     .Help("Requests dropped before running because the client cancelled.")
                     .Register(*registry_)),
      expired_(prometheus::BuildCounter()
                   .Name("coalesce_expired_requests_total")
                   .Help("Requests dropped before running because their deadline passed while "
                         "they were queued (or before a retry of their split batch).")
                   .Register(*registry_)),
      split_batches_(prometheus::BuildCounter()
                         .Name("coalesce_split_batches_total")
                         .Help("Failed batches of more than one request split and retried, so "
                               "that only the requests that fail alone get the model's error.")
                         .Register(*registry_)),
      split_retry_executions_(
          prometheus::BuildCounter()
              .Name("coalesce_split_retry_executions_total")
              .Help("Backend calls spent on the parts of split batches (also counted in "
                    "coalesce_batches_total).")
              .Register(*registry_)),
      padding_elements_(prometheus::BuildCounter()
                            .Name("coalesce_padding_elements_total")
                            .Help("Pad elements staged into the padded inputs of models that pad "
                                  "(divide by coalesce_padded_input_elements_total for the "
                                  "padding ratio).")
                            .Register(*registry_)),
      padded_input_elements_(prometheus::BuildCounter()
                                 .Name("coalesce_padded_input_elements_total")
                                 .Help("Elements staged for the padded inputs of models that "
                                       "pad, padding included.")
                                 .Register(*registry_)),
      deadline_missed_(prometheus::BuildCounter()
                           .Name("coalesce_deadline_missed_total")
                           .Help("Requests answered OK, but after their deadline.")
                           .Register(*registry_)),
      deadline_slack_(prometheus::BuildHistogram()
                          .Name("coalesce_deadline_slack_seconds")
                          .Help("Deadline minus answer time of requests answered OK in time.")
                          .Register(*registry_)),
      predicted_batch_duration_(
          prometheus::BuildGauge()
              .Name("coalesce_predicted_batch_duration_seconds")
              .Help("The latency model's current estimate of backend time per batch size.")
              .Register(*registry_)),
      prediction_ratio_(prometheus::BuildHistogram()
                            .Name("coalesce_batch_duration_prediction_ratio")
                            .Help("Measured over predicted backend time per batch.")
                            .Register(*registry_)),
      queue_depth_(prometheus::BuildGauge()
                       .Name("coalesce_queue_depth")
                       .Help("Requests waiting for a batch, sampled at scrape time.")
                       .Register(*registry_)),
      queue_duration_(prometheus::BuildHistogram()
                          .Name("coalesce_queue_duration_seconds")
                          .Help("Time a request waited from arrival until its batch started.")
                          .Register(*registry_)),
      throughput_(prometheus::BuildGauge()
                      .Name("coalesce_throughput_samples_per_second")
                      .Help("Samples run per second between the last two scrapes.")
                      .Register(*registry_)),
      staging_pool_(prometheus::BuildCounter()
                        .Name("coalesce_staging_pool_total")
                        .Help("Executor requests for staging memory: result=hit reused the "
                              "worker's pooled buffer, result=miss allocated one (each worker's "
                              "start-up reservations, or every batch with pooling off).")
                        .Register(*registry_)),
      device_fallbacks_(prometheus::BuildCounter()
                            .Name("coalesce_device_fallbacks_total")
                            .Help("Batches that failed on the accelerator and were answered by "
                                  "the model's fp32 CPU fallback.")
                            .Register(*registry_)),
      on_fallback_(prometheus::BuildGauge()
                       .Name("coalesce_model_on_fallback")
                       .Help("1 while the model serves from its CPU fallback after a device "
                             "failure, 0 on its device. Sampled at scrape time.")
                       .Register(*registry_)),
      device_memory_(prometheus::BuildGauge()
                         .Name("coalesce_device_memory_bytes")
                         .Help("Accelerator memory of the model's device allocator: kind=in_use "
                               "held by tensors, kind=reserved taken from the device (in use "
                               "plus cached). On CUDA the caching allocator is per device, so "
                               "models on one device report the same values. Absent on CPU. "
                               "Sampled at scrape time.")
                         .Register(*registry_)),
      device_busy_seconds_(
          prometheus::BuildCounter()
              .Name("coalesce_device_busy_seconds_total")
              .Help("Time the device had at least one batch on it (from entering the backend "
                    "until it returned; overlapping batches counted once), whichever model ran "
                    "them. rate() of it is the device's busy fraction.")
              .Register(*registry_)),
      device_busy_ratio_(prometheus::BuildGauge()
                             .Name("coalesce_device_busy_ratio")
                             .Help("Share of the time between the last two scrapes that the "
                                   "device had at least one batch on it (0 to 1).")
                             .Register(*registry_)),
      resident_memory_(prometheus::BuildGauge()
                           .Name("coalesce_process_resident_memory_bytes")
                           .Help("Resident memory of the server process.")
                           .Register(*registry_)
                           .Add({})),
      clock_(clock),
      exposition_(std::make_shared<Exposition>(registry_, [this] { return CollectLatency(); })) {}

ServerMetrics::~ServerMetrics() { static_cast<Exposition*>(exposition_.get())->Detach(); }

std::vector<prometheus::MetricFamily> ServerMetrics::CollectLatency() const {
  prometheus::MetricFamily family;
  family.name = kLatencyName;
  family.help = kLatencyHelp;
  family.type = prometheus::MetricType::Summary;
  absl::MutexLock lock(&mu_);
  for (const auto& [key, series] : versions_) {
    if (series.latency == nullptr) continue;
    const WindowedQuantiles::Snapshot snapshot = series.latency->Collect();
    prometheus::ClientMetric metric;
    metric.label = {{"model", key.first}, {"version", key.second}};
    metric.summary.sample_count = snapshot.count;
    metric.summary.sample_sum = snapshot.sum;
    for (const auto& [quantile, value] : snapshot.quantiles) {
      metric.summary.quantile.push_back({quantile, value});
    }
    family.metric.push_back(std::move(metric));
  }
  if (family.metric.empty()) return {};
  return {std::move(family)};
}

void ServerMetrics::SampleProcess() {
  long pages_total = 0, pages_resident = 0;
  if (FILE* statm = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(statm, "%ld %ld", &pages_total, &pages_resident) == 2) {
      resident_memory_.Set(static_cast<double>(pages_resident) * sysconf(_SC_PAGESIZE));
    }
    std::fclose(statm);
  }
}

void ServerMetrics::SampleThroughput(absl::Time now) {
  absl::MutexLock lock(&mu_);
  for (auto& [key, series] : versions_) {
    ThroughputTracker& tracker = series.throughput;
    const double value = tracker.inferences->Value();
    const absl::Duration elapsed = now - tracker.last_time;
    if (tracker.last_time != absl::InfinitePast() && elapsed > absl::ZeroDuration()) {
      tracker.throughput->Set((value - tracker.last_value) / absl::ToDoubleSeconds(elapsed));
    }
    tracker.last_time = now;
    tracker.last_value = value;
  }
}

std::unique_ptr<ModelMetrics> ServerMetrics::ForModel(const std::string& model,
                                                     const std::string& version) {
  VersionKey key(model, version);
  std::unique_ptr<ModelMetrics> m(new ModelMetrics(this, key));
  // Held throughout, so that no Release() removes a series between its Add() and its Track.
  absl::MutexLock lock(&mu_);
  VersionSeries& series = versions_[key];
  ++series.users;
  // The series of `family` for this version and `extra` labels, registered for removal.
  auto add = [&](auto& family, const prometheus::Labels& extra, auto&&... args) {
    prometheus::Labels labels = extra;
    labels.emplace("model", model);
    labels.emplace("version", version);
    auto* metric = &family.Add(labels, std::forward<decltype(args)>(args)...);
    series.removers.emplace(metric, [&family, metric] { family.Remove(metric); });
    return metric;
  };
  for (int code = 0; code < ModelMetrics::kNumCodes; ++code) {
    std::string name = absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
    m->requests_by_code_[code] = add(requests_, {{"code", name}});
  }
  m->request_duration_ = add(request_duration_, {}, LatencyBuckets());
  m->batch_size_ = add(batch_size_, {}, BatchSizeBuckets());
  m->compute_duration_ = add(compute_duration_, {}, LatencyBuckets());
  m->gather_duration_ = add(stage_duration_, {{"stage", "gather"}}, LatencyBuckets());
  m->scatter_duration_ = add(stage_duration_, {{"stage", "scatter"}}, LatencyBuckets());
  m->backend_wait_duration_ = add(stage_duration_, {{"stage", "backend_wait"}}, LatencyBuckets());
  m->copy_in_duration_ = add(stage_duration_, {{"stage", "copy_in"}}, LatencyBuckets());
  m->forward_duration_ = add(stage_duration_, {{"stage", "forward"}}, LatencyBuckets());
  m->copy_out_duration_ = add(stage_duration_, {{"stage", "copy_out"}}, LatencyBuckets());
  m->inferences_ = add(inferences_, {});
  m->batches_ = add(batches_, {});
  m->shed_ = add(shed_, {});
  m->cancelled_ = add(cancelled_, {});
  m->expired_ = add(expired_, {});
  m->split_batches_ = add(split_batches_, {});
  m->split_retry_executions_ = add(split_retry_executions_, {});
  m->padding_elements_ = add(padding_elements_, {});
  m->padded_input_elements_ = add(padded_input_elements_, {});
  m->deadline_missed_ = add(deadline_missed_, {});
  m->deadline_slack_ = add(deadline_slack_, {}, LatencyBuckets());
  m->prediction_ratio_ = add(
      prediction_ratio_, {},
      prometheus::Histogram::BucketBoundaries{0.25, 0.5, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2, 4});
  if (series.latency == nullptr) {
    series.latency = std::make_shared<WindowedQuantiles>(
        std::vector<double>{0.5, 0.9, 0.99}, absl::Seconds(60), /*age_buckets=*/5, clock_);
  }
  m->latency_summary_ = series.latency;
  m->queue_depth_ = add(queue_depth_, {});
  m->queue_duration_ = add(queue_duration_, {}, LatencyBuckets());
  if (series.throughput.inferences == nullptr) {
    series.throughput.inferences = m->inferences_;
    series.throughput.throughput = add(throughput_, {});
  }
  m->staging_hits_ = add(staging_pool_, {{"result", "hit"}});
  m->staging_misses_ = add(staging_pool_, {{"result", "miss"}});
  m->device_fallbacks_ = add(device_fallbacks_, {});
  m->on_fallback_ = add(on_fallback_, {});
  m->predicted_family_ = &predicted_batch_duration_;
  m->device_memory_family_ = &device_memory_;
  return m;
}

void ServerMetrics::Track(const VersionKey& key, const void* series,
                          std::function<void()> remove) {
  absl::MutexLock lock(&mu_);
  versions_[key].removers.emplace(series, std::move(remove));
}

void ServerMetrics::Release(const VersionKey& key) {
  absl::MutexLock lock(&mu_);
  auto it = versions_.find(key);
  if (it == versions_.end() || --it->second.users > 0) return;
  for (const auto& [series, remove] : it->second.removers) remove();
  versions_.erase(it);
}

DeviceBusy* ServerMetrics::Device(const std::string& device) {
  absl::MutexLock lock(&mu_);
  DeviceSeries& series = devices_[device];
  if (series.busy == nullptr) {
    series.busy = std::make_unique<DeviceBusy>(clock_);
    series.busy_seconds = &device_busy_seconds_.Add({{"device", device}});
    series.busy_ratio = &device_busy_ratio_.Add({{"device", device}});
    series.last_time = clock_->Now();
  }
  return series.busy.get();
}

std::vector<std::string> ServerMetrics::devices() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> names;
  for (const auto& [device, series] : devices_) names.push_back(device);
  return names;
}

void ServerMetrics::SampleDevices() {
  absl::MutexLock lock(&mu_);
  for (auto& [device, series] : devices_) {
    const absl::Time now = clock_->Now();
    const absl::Duration busy = series.busy->BusyTime();
    if (busy > series.counted) {
      series.busy_seconds->Increment(absl::ToDoubleSeconds(busy - series.counted));
      series.counted = busy;
    }
    if (now > series.last_time) {
      const double ratio = absl::FDivDuration(busy - series.last_busy, now - series.last_time);
      series.busy_ratio->Set(std::min(1.0, ratio));
      series.last_time = now;
      series.last_busy = busy;
    }
  }
}

ModelMetrics::~ModelMetrics() { server_->Release(key_); }

prometheus::Gauge* ModelMetrics::AddGauge(prometheus::Family<prometheus::Gauge>& family,
                                          const prometheus::Labels& extra) {
  prometheus::Labels labels = extra;
  labels.emplace("model", key_.first);
  labels.emplace("version", key_.second);
  prometheus::Gauge* gauge = &family.Add(labels);
  server_->Track(key_, gauge, [&family, gauge] { family.Remove(gauge); });
  return gauge;
}

void ModelMetrics::RecordRequest(absl::StatusCode code, absl::Duration latency,
                                 absl::Duration slack) {
  int index = static_cast<int>(code);
  if (index < 0 || index >= kNumCodes) index = static_cast<int>(absl::StatusCode::kUnknown);
  requests_by_code_[index]->Increment();
  request_duration_->Observe(absl::ToDoubleSeconds(latency));
  if (code == absl::StatusCode::kOk) latency_summary_->Observe(absl::ToDoubleSeconds(latency));
  if (code != absl::StatusCode::kOk || slack == absl::InfiniteDuration()) return;
  if (slack < absl::ZeroDuration()) {
    deadline_missed_->Increment();
  } else {
    deadline_slack_->Observe(absl::ToDoubleSeconds(slack));
  }
}

void ModelMetrics::RecordBatch(int64_t rows, absl::Duration compute, absl::Duration predicted) {
  batch_size_->Observe(static_cast<double>(rows));
  compute_duration_->Observe(absl::ToDoubleSeconds(compute));
  inferences_->Increment(static_cast<double>(rows));
  batches_->Increment();
  if (predicted > absl::ZeroDuration()) {
    prediction_ratio_->Observe(absl::FDivDuration(compute, predicted));
  }
}

void ModelMetrics::RecordStages(absl::Duration gather, absl::Duration scatter) {
  gather_duration_->Observe(absl::ToDoubleSeconds(gather));
  scatter_duration_->Observe(absl::ToDoubleSeconds(scatter));
}

void ModelMetrics::RecordBackendWait(absl::Duration wait) {
  backend_wait_duration_->Observe(absl::ToDoubleSeconds(wait));
}

void ModelMetrics::RecordDeviceStages(const Backend::DeviceStages& stages) {
  copy_in_duration_->Observe(absl::ToDoubleSeconds(stages.copy_in));
  forward_duration_->Observe(absl::ToDoubleSeconds(stages.forward));
  copy_out_duration_->Observe(absl::ToDoubleSeconds(stages.copy_out));
}

void ModelMetrics::SetPredictedBatchDuration(int64_t rows, absl::Duration predicted) {
  absl::MutexLock lock(&predicted_mu_);
  prometheus::Gauge*& gauge = predicted_[rows];
  if (gauge == nullptr) {
    gauge = AddGauge(*predicted_family_, {{"batch_size", std::to_string(rows)}});
  }
  gauge->Set(absl::ToDoubleSeconds(predicted));
}

void ModelMetrics::SampleBackends(absl::Span<const Backend* const> backends) {
  Backend::FallbackState fallback;
  std::optional<Backend::MemoryUsage> memory;
  for (const Backend* backend : backends) {
    const Backend::FallbackState one = backend->Fallback();
    fallback.fallbacks += one.fallbacks;
    fallback.on_fallback = fallback.on_fallback || one.on_fallback;
    const std::optional<Backend::MemoryUsage> used = backend->DeviceMemory();
    if (!used.has_value()) continue;
    if (!memory.has_value()) memory.emplace();
    memory->in_use_bytes += used->in_use_bytes;
    memory->reserved_bytes += used->reserved_bytes;
  }
  absl::MutexLock lock(&sample_mu_);
  if (fallback.fallbacks > fallbacks_sampled_) {
    device_fallbacks_->Increment(static_cast<double>(fallback.fallbacks - fallbacks_sampled_));
    fallbacks_sampled_ = fallback.fallbacks;
  }
  on_fallback_->Set(fallback.on_fallback ? 1 : 0);
  if (!memory.has_value()) return;
  if (memory_in_use_ == nullptr) {
    memory_in_use_ = AddGauge(*device_memory_family_, {{"kind", "in_use"}});
    memory_reserved_ = AddGauge(*device_memory_family_, {{"kind", "reserved"}});
  }
  memory_in_use_->Set(static_cast<double>(memory->in_use_bytes));
  memory_reserved_->Set(static_cast<double>(memory->reserved_bytes));
}

}  // namespace coalesce
