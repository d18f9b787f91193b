#ifndef COALESCE_SERVER_PROTO_CONVERSIONS_H_
#define COALESCE_SERVER_PROTO_CONVERSIONS_H_

#include <string>

#include "engine/model_metadata.h"
#include "execution/model_statistics.h"
#include "proto/inference.pb.h"
#include "proto/model_config.pb.h"

namespace coalesce {

// `stats` of model `name` at `version` as the ModelStatistics RPC reports them.
void FillModelStatistics(const std::string& name, const std::string& version,
                         const ModelStatistics::Snapshot& stats, inference::ModelStatistics* out);

// The config a repository would hold for a model known only by its metadata (the built-in demo
// model): name, platform, max_batch_size, inputs and outputs.
inference::ModelConfig ConfigFromMetadata(const ModelMetadata& metadata);

}  // namespace coalesce

#endif  // COALESCE_SERVER_PROTO_CONVERSIONS_H_
