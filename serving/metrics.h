#ifndef COALESCE_SERVING_METRICS_H_
#define COALESCE_SERVING_METRICS_H_

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "absl/time/time.h"
#include "engine/clock.h"
#include "execution/backend.h"
#include "execution/device_busy.h"
#include "execution/execution_observer.h"

namespace coalesce {

class ModelMetrics;

// Quantiles of the values observed over the last `window` (a Prometheus summary's, as
// prometheus::Summary computes them), for values recorded on many threads at a high rate.
//
// prometheus::Summary inserts each value into a CKMS sketch per age bucket under one mutex, and a
// sketch's insert shifts its sorted sample: microseconds per value, a few percent of the server's
// CPU per request, and no cheaper when values come in batches. Here a value costs an uncontended
// lock and an increment: each thread records into one of a few shards, each a histogram of
// `age_buckets` slots of window / age_buckets each, with 128 buckets per power of two, so a
// quantile is within 0.4% of the true value (no rank error: a bucket's count is exact).
// Quantiles cover the slots of the last `window` (the current one part-filled: between
// window * (age_buckets - 1) / age_buckets and window of history, as prometheus::Summary's do);
// NaN with no value there. Count and sum cover every value since construction. Values are
// seconds from about 1 us to 128 s; values outside are counted at that range's ends. Memory: up
// to 14 KiB per slot and shard, 280 KiB per version with traffic on 4 threads or more.
//
// Thread-safe.
class WindowedQuantiles {
 public:
  struct Snapshot {
    std::vector<std::pair<double, double>> quantiles;  // Quantile, value.
    uint64_t count = 0;
    double sum = 0;
  };

  // `clock` times the slots; must outlive this object. `age_buckets` >= 1.
  WindowedQuantiles(std::vector<double> quantiles, absl::Duration window, int age_buckets,
                    Clock* clock);

  void Observe(double value);
  Snapshot Collect() const;

 private:
  static constexpr int kShards = 4;
  static constexpr int kSubBuckets = 128;  // Per power of two.
  static constexpr int kMinExponent = -20;  // frexp() exponents: 2^-21 s .. 2^7 s.
  static constexpr int kMaxExponent = 7;
  // One underflow bucket, the range, one overflow bucket.
  static constexpr int kBuckets = (kMaxExponent - kMinExponent + 1) * kSubBuckets + 2;

  struct Slot {
    int64_t epoch = -1;  // Which window / age_buckets of time its counts are from.
    std::vector<uint32_t> counts;  // kBuckets once used.
  };
  struct alignas(64) Shard {
    mutable std::mutex mu;
    std::vector<Slot> slots;  // Guarded by mu; slot epoch % age_buckets.
    uint64_t count = 0;       // Guarded by mu.
    double sum = 0;           // Guarded by mu.
  };

  static int Bucket(double value);
  // A bucket's middle value.
  static double Value(int bucket);
  int64_t Epoch(absl::Time now) const;

  // Constant after construction.
  const std::vector<double> quantiles_;
  const absl::Duration slot_length_;
  const int age_buckets_;
  Clock* const clock_;
  const absl::Time start_;
  std::unique_ptr<Shard[]> shards_;
};

// The server's Prometheus metric families, registered once in one registry that the metrics
// endpoint exposes. Names follow Prometheus conventions: prefix `coalesce_`, base units,
// `_total` for counters.
//
// Every series of a model carries the labels `model` and `version` (the model version that
// recorded it), with no exception, so that versions served side by side during a rollout can be
// compared and `sum without (version)` gives the model. A version's series exist while it is
// served: created by the first ForModel() for it, removed when the last ModelMetrics for it goes
// (the version is unloaded), so that a server that rolls through many versions holds the series
// of those it serves, not of every one it ever served. Device series carry a `device` label.
//
// Thread-safe.
class ServerMetrics {
 public:
  // `clock` times the devices' busy time (DeviceBusy) and the intervals between samples of it;
  // must outlive this object.
  explicit ServerMetrics(std::shared_ptr<prometheus::Registry> registry,
                         Clock* clock = Clock::Real());
  ~ServerMetrics();
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // The series of one version of a model. Instances of one version (an old and a new one during
  // a reload) share its series. Must not outlive this object.
  std::unique_ptr<ModelMetrics> ForModel(const std::string& model, const std::string& version);

  // The busy time of `device` (Backend::DeviceName()), shared by every model on it, created on
  // first use. Valid as long as this object.
  DeviceBusy* Device(const std::string& device);
  // The devices Device() was asked for so far, sorted.
  std::vector<std::string> devices() const;

  // What the metrics endpoint serves: the registry given to the constructor, the request
  // latency summary (kept outside it, see WindowedQuantiles), and the families others register
  // here (NVML's).
  const std::shared_ptr<prometheus::Registry>& registry() const { return exposition_; }

  // Samples the process's resident memory (Linux: /proc/self/statm); called before each scrape.
  void SampleProcess();

  // Sets each model version's throughput gauge to the samples it ran per second since the
  // previous call; `now` is wall-clock. Called before each scrape.
  void SampleThroughput(absl::Time now);

  // Advances each device's busy-seconds counter to its DeviceBusy::BusyTime() and sets its busy
  // ratio to the share of the time since the previous call (at the first, since the device's
  // first use) that it was busy. Called before each scrape.
  void SampleDevices();

 private:
  friend class ModelMetrics;
  using VersionKey = std::pair<std::string, std::string>;  // Model name, version.

  // Per model version: its inferences counter, throughput gauge, and the counter's value when
  // last sampled.
  struct ThroughputTracker {
    prometheus::Counter* inferences = nullptr;
    prometheus::Gauge* throughput = nullptr;
    absl::Time last_time = absl::InfinitePast();
    double last_value = 0;
  };
  // What the ModelMetrics of one model version share.
  struct VersionSeries {
    // ModelMetrics alive for the version.
    int users = 0;
    // Per series of the version (its address): removes it from its family.
    std::map<const void*, std::function<void()>> removers;
    ThroughputTracker throughput;
    // The family coalesce_request_latency_seconds's series of the version.
    std::shared_ptr<WindowedQuantiles> latency;
  };
  // Per device: its busy time and series, the busy time the counter holds, and the clock and
  // busy time when the ratio was last set.
  struct DeviceSeries {
    std::unique_ptr<DeviceBusy> busy;
    prometheus::Counter* busy_seconds = nullptr;
    prometheus::Gauge* busy_ratio = nullptr;
    absl::Duration counted = absl::ZeroDuration();
    absl::Time last_time;
    absl::Duration last_busy = absl::ZeroDuration();
  };

  // Records how to remove `series`, created for `key` after ForModel() (once per series).
  void Track(const VersionKey& key, const void* series, std::function<void()> remove);
  // One ModelMetrics of `key` is gone; the last one removes the version's series.
  void Release(const VersionKey& key);
  // The family coalesce_request_latency_seconds, as prometheus::Summary would give it; empty
  // (no series) when no version is served.
  std::vector<prometheus::MetricFamily> CollectLatency() const;

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& request_duration_;
  prometheus::Family<prometheus::Histogram>& batch_size_;
  prometheus::Family<prometheus::Histogram>& compute_duration_;
  prometheus::Family<prometheus::Histogram>& stage_duration_;
  prometheus::Family<prometheus::Counter>& inferences_;
  prometheus::Family<prometheus::Counter>& batches_;
  prometheus::Family<prometheus::Counter>& shed_;
  prometheus::Family<prometheus::Counter>& cancelled_;
  prometheus::Family<prometheus::Counter>& expired_;
  prometheus::Family<prometheus::Counter>& split_batches_;
  prometheus::Family<prometheus::Counter>& split_retry_executions_;
  prometheus::Family<prometheus::Counter>& padding_elements_;
  prometheus::Family<prometheus::Counter>& padded_input_elements_;
  prometheus::Family<prometheus::Counter>& deadline_missed_;
  prometheus::Family<prometheus::Histogram>& deadline_slack_;
  prometheus::Family<prometheus::Gauge>& predicted_batch_duration_;
  prometheus::Family<prometheus::Histogram>& prediction_ratio_;
  prometheus::Family<prometheus::Gauge>& queue_depth_;
  prometheus::Family<prometheus::Histogram>& queue_duration_;
  prometheus::Family<prometheus::Gauge>& throughput_;
  prometheus::Family<prometheus::Counter>& staging_pool_;
  prometheus::Family<prometheus::Counter>& device_fallbacks_;
  prometheus::Family<prometheus::Gauge>& on_fallback_;
  prometheus::Family<prometheus::Gauge>& device_memory_;
  prometheus::Family<prometheus::Counter>& device_busy_seconds_;
  prometheus::Family<prometheus::Gauge>& device_busy_ratio_;
  prometheus::Gauge& resident_memory_;
  Clock* const clock_;
  // registry_ plus CollectLatency(); see registry().
  std::shared_ptr<prometheus::Registry> exposition_;

  mutable absl::Mutex mu_;
  std::map<VersionKey, VersionSeries> versions_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, DeviceSeries> devices_ ABSL_GUARDED_BY(mu_);
};

// One model version's series (see ServerMetrics): the Prometheus implementation of what the
// engine reports (ExecutionObserver), plus what the server records about each answered request
// and samples before a scrape. Thread-safe: recorded from RPC threads, the batcher and executor
// workers at once.
class ModelMetrics : public ExecutionObserver {
 public:
  // Removes the version's series if no other ModelMetrics of it is left.
  ~ModelMetrics() override;
  ModelMetrics(const ModelMetrics&) = delete;
  ModelMetrics& operator=(const ModelMetrics&) = delete;

  // One answered request: its final status code and time from arrival to answer. `slack` is
  // deadline minus answer time for a successful request that had a deadline (negative: late).
  void RecordRequest(absl::StatusCode code, absl::Duration latency,
                     absl::Duration slack = absl::InfiniteDuration());
  // ExecutionObserver: what the batcher and the executor report (see there).
  void RecordShed() override { shed_->Increment(); }
  void RecordCancelled() override { cancelled_->Increment(); }
  void RecordExpired() override { expired_->Increment(); }
  void RecordQueued(absl::Duration waited) override {
    queue_duration_->Observe(absl::ToDoubleSeconds(waited));
  }
  void RecordBatch(int64_t rows, absl::Duration compute, absl::Duration predicted) override;
  void RecordStages(absl::Duration gather, absl::Duration scatter) override;
  void RecordBackendWait(absl::Duration wait) override;
  void RecordDeviceStages(const Backend::DeviceStages& stages) override;
  void RecordSplitBatch() override { split_batches_->Increment(); }
  void RecordRetryExecution() override { split_retry_executions_->Increment(); }
  void RecordPadding(int64_t pad_elements, int64_t staged_elements) override {
    padding_elements_->Increment(static_cast<double>(pad_elements));
    padded_input_elements_->Increment(static_cast<double>(staged_elements));
  }
  void RecordStaging(bool hit) override { (hit ? staging_hits_ : staging_misses_)->Increment(); }
  void SetPredictedBatchDuration(int64_t rows, absl::Duration predicted) override;

  // Requests waiting for a batch (queued or pending in the batcher), sampled before a scrape.
  void SetQueueDepth(int64_t depth) { queue_depth_->Set(static_cast<double>(depth)); }
  // Samples the backend's fallback state and device memory; called before each scrape. The
  // fallback counter advances by what this backend counted since the last sample, so instances
  // of one version that share these series (during a reload) add up. Device memory is exported
  // only where the backend knows it (see Backend::DeviceMemory()).
  void SampleBackend(const Backend& backend) { SampleBackends({&backend}); }
  // SampleBackend() for a model whose instances sit on several devices, one backend each: their
  // fallbacks and device memory added up.
  void SampleBackends(absl::Span<const Backend* const> backends);

 private:
  friend class ServerMetrics;
  static constexpr int kNumCodes = 17;  // absl::StatusCode values 0..16.

  ModelMetrics(ServerMetrics* server, ServerMetrics::VersionKey key)
      : server_(server), key_(std::move(key)) {}

  // Constant after construction.
  ServerMetrics* const server_;
  const ServerMetrics::VersionKey key_;

  std::array<prometheus::Counter*, kNumCodes> requests_by_code_{};
  prometheus::Histogram* request_duration_ = nullptr;
  prometheus::Histogram* batch_size_ = nullptr;
  prometheus::Histogram* compute_duration_ = nullptr;
  prometheus::Histogram* gather_duration_ = nullptr;
  prometheus::Histogram* scatter_duration_ = nullptr;
  prometheus::Histogram* backend_wait_duration_ = nullptr;
  prometheus::Histogram* copy_in_duration_ = nullptr;
  prometheus::Histogram* forward_duration_ = nullptr;
  prometheus::Histogram* copy_out_duration_ = nullptr;
  prometheus::Counter* inferences_ = nullptr;
  prometheus::Counter* batches_ = nullptr;
  prometheus::Counter* shed_ = nullptr;
  prometheus::Counter* cancelled_ = nullptr;
  prometheus::Counter* expired_ = nullptr;
  prometheus::Counter* split_batches_ = nullptr;
  prometheus::Counter* split_retry_executions_ = nullptr;
  prometheus::Counter* padding_elements_ = nullptr;
  prometheus::Counter* padded_input_elements_ = nullptr;
  prometheus::Counter* deadline_missed_ = nullptr;
  prometheus::Histogram* deadline_slack_ = nullptr;
  prometheus::Histogram* prediction_ratio_ = nullptr;
  std::shared_ptr<WindowedQuantiles> latency_summary_;
  prometheus::Gauge* queue_depth_ = nullptr;
  prometheus::Histogram* queue_duration_ = nullptr;
  prometheus::Counter* staging_hits_ = nullptr;
  prometheus::Counter* staging_misses_ = nullptr;
  prometheus::Counter* device_fallbacks_ = nullptr;
  prometheus::Gauge* on_fallback_ = nullptr;
  // Created on first use (per batch size; per kind once the backend reports memory) and
  // registered with server_ for removal; the families are thread-safe.
  prometheus::Family<prometheus::Gauge>* predicted_family_ = nullptr;
  prometheus::Family<prometheus::Gauge>* device_memory_family_ = nullptr;
  // A series of one of those families for `extra` labels besides model and version.
  prometheus::Gauge* AddGauge(prometheus::Family<prometheus::Gauge>& family,
                              const prometheus::Labels& extra);

  absl::Mutex predicted_mu_;
  std::map<int64_t, prometheus::Gauge*> predicted_ ABSL_GUARDED_BY(predicted_mu_);

  absl::Mutex sample_mu_;
  // The backend's fallback count at the last SampleBackend().
  int64_t fallbacks_sampled_ ABSL_GUARDED_BY(sample_mu_) = 0;
  prometheus::Gauge* memory_in_use_ ABSL_GUARDED_BY(sample_mu_) = nullptr;
  prometheus::Gauge* memory_reserved_ ABSL_GUARDED_BY(sample_mu_) = nullptr;
};

}  // namespace coalesce

#endif  // COALESCE_SERVING_METRICS_H_
