#ifndef COALESCE_EXECUTION_DEMO_MODEL_H_
#define COALESCE_EXECUTION_DEMO_MODEL_H_

#include <cstdint>
#include <vector>

#include "engine/model_metadata.h"

namespace coalesce {

// The built-in demo model, served when no model repository is given: a two-layer MLP applied to
// every token, y = relu(x @ w1 + b1) @ w2 + b2, input INPUT0 and output OUTPUT0, both FP32
// [batch, 32, 256], hidden width 512.
//
// Its weights come from a fixed splitmix64 stream, not from LibTorch's generator, so they are
// the same bits on every platform and LibTorch version, and bench/peers/demo_model.py rebuilds
// the identical model in Python.
struct DemoModel {
  static constexpr int64_t kTokens = 32;
  static constexpr int64_t kWidth = 256;
  static constexpr int64_t kHidden = 512;
  static constexpr uint64_t kSeed = 42;

  // Row-major float32 weights: w1 [kWidth, kHidden], b1 [kHidden], w2 [kHidden, kWidth],
  // b2 [kWidth].
  struct Weights {
    std::vector<float> w1, b1, w2, b2;
  };

  static ModelMetadata Metadata(int64_t max_batch_size);
  static Weights MakeWeights();
};

}  // namespace coalesce

#endif  // COALESCE_EXECUTION_DEMO_MODEL_H_
