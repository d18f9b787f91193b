#ifndef COALESCE_FUZZ_FUZZ_MODELS_H_
#define COALESCE_FUZZ_FUZZ_MODELS_H_

#include <vector>

#include "engine/model_metadata.h"
#include "execution/demo_model.h"

namespace coalesce {

// The models every fuzzed request is validated against, shared by the fuzzer and the seed
// corpus generator so that seeds name inputs these models have:
//   demo     the built-in demo model (INPUT0 FP32 [-1, 32, 256], max batch 256)
//   tiny     demo-like but INPUT0 FP32 [-1, 2], max batch 4, so valid seeds stay a few bytes
//   multi    five inputs of different dtypes and ranks (one per row: a scalar), max batch 8,
//            three outputs, so output selection and batch agreement are exercised
//   single   does not batch (max_batch_size 0): shapes carry no batch dimension
inline std::vector<ModelMetadata> FuzzModels() {
  std::vector<ModelMetadata> models;
  models.push_back(DemoModel::Metadata(256));

  ModelMetadata tiny;
  tiny.name = "tiny";
  tiny.max_batch_size = 4;
  tiny.inputs.push_back({"INPUT0", DataType::kFp32, {2}});
  tiny.outputs.push_back({"OUTPUT0", DataType::kFp32, {2}});
  models.push_back(tiny);

  ModelMetadata multi;
  multi.name = "multi";
  multi.max_batch_size = 8;
  multi.inputs.push_back({"F32", DataType::kFp32, {2, 3}});
  multi.inputs.push_back({"I8", DataType::kInt8, {4}});
  multi.inputs.push_back({"H16", DataType::kFp16, {2}});
  multi.inputs.push_back({"FLAG", DataType::kBool, {}});
  multi.inputs.push_back({"U16", DataType::kUint16, {1, 3}});
  multi.outputs.push_back({"OUT_A", DataType::kFp32, {6}});
  multi.outputs.push_back({"OUT_B", DataType::kInt64, {1}});
  multi.outputs.push_back({"OUT_C", DataType::kFp64, {2}});
  models.push_back(multi);

  ModelMetadata single;
  single.name = "single";
  single.max_batch_size = 0;
  single.inputs.push_back({"X", DataType::kInt32, {2, 2}});
  single.inputs.push_back({"Y", DataType::kFp64, {3}});
  single.outputs.push_back({"Z", DataType::kFp64, {3}});
  models.push_back(single);
  return models;
}

}  // namespace coalesce

#endif  // COALESCE_FUZZ_FUZZ_MODELS_H_
