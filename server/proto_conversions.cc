#include "server/proto_conversions.h"

#include "repository/model_config.h"

namespace coalesce {
namespace {

void Fill(const ModelStatistics::Duration& d, inference::StatisticDuration* out) {
  out->set_count(d.count);
  out->set_ns(d.ns);
}

}  // namespace

void FillModelStatistics(const std::string& name, const std::string& version,
                         const ModelStatistics::Snapshot& stats, inference::ModelStatistics* out) {
  out->set_name(name);
  out->set_version(version);
  if (stats.last_inference > absl::UnixEpoch()) {
    out->set_last_inference(static_cast<uint64_t>(absl::ToUnixMillis(stats.last_inference)));
  }
  out->set_inference_count(stats.inference_count);
  out->set_execution_count(stats.execution_count);
  inference::InferStatistics* infer = out->mutable_inference_stats();
  Fill(stats.success, infer->mutable_success());
  Fill(stats.fail, infer->mutable_fail());
  Fill(stats.queue, infer->mutable_queue());
  Fill(stats.stages.compute_input, infer->mutable_compute_input());
  Fill(stats.stages.compute_infer, infer->mutable_compute_infer());
  Fill(stats.stages.compute_output, infer->mutable_compute_output());
  for (const auto& [rows, stages] : stats.batches) {
    inference::InferBatchStatistics* batch = out->add_batch_stats();
    batch->set_batch_size(static_cast<uint64_t>(rows));
    Fill(stages.compute_input, batch->mutable_compute_input());
    Fill(stages.compute_infer, batch->mutable_compute_infer());
    Fill(stages.compute_output, batch->mutable_compute_output());
  }
}

inference::ModelConfig ConfigFromMetadata(const ModelMetadata& metadata) {
  inference::ModelConfig config;
  config.set_name(metadata.name);
  config.set_platform(metadata.platform);
  config.set_max_batch_size(static_cast<int32_t>(metadata.max_batch_size));
  for (const TensorSpec& spec : metadata.inputs) {
    inference::ModelInput* input = config.add_input();
    input->set_name(spec.name);
    input->set_data_type(DataTypeToConfig(spec.dtype));
    for (int64_t dim : spec.dims) input->add_dims(dim);
  }
  for (const TensorSpec& spec : metadata.outputs) {
    inference::ModelOutput* output = config.add_output();
    output->set_name(spec.name);
    output->set_data_type(DataTypeToConfig(spec.dtype));
    for (int64_t dim : spec.dims) output->add_dims(dim);
  }
  return config;
}

}  // namespace coalesce
