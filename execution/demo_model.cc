#include "execution/demo_model.h"

namespace coalesce {
namespace {

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }

  // Uniform in [-1, 1) with a 24-bit mantissa: exact in float32.
  float NextSigned() {
    return static_cast<float>(static_cast<double>(Next() >> 40) * 0x1p-24 * 2.0 - 1.0);
  }

 private:
  uint64_t state_;
};

// `scale` is a power of two, so the product is exact and matches any other implementation.
std::vector<float> Draw(SplitMix64& rng, int64_t count, float scale) {
  std::vector<float> values(count);
  for (float& v : values) v = rng.NextSigned() * scale;
  return values;
}

}  // namespace

ModelMetadata DemoModel::Metadata(int64_t max_batch_size) {
  ModelMetadata metadata;
  metadata.name = "demo";
  metadata.version = "1";
  metadata.platform = "pytorch_libtorch";
  metadata.max_batch_size = max_batch_size;
  metadata.inputs.push_back({"INPUT0", DataType::kFp32, {kTokens, kWidth}});
  metadata.outputs.push_back({"OUTPUT0", DataType::kFp32, {kTokens, kWidth}});
  return metadata;
}

DemoModel::Weights DemoModel::MakeWeights() {
  SplitMix64 rng(kSeed);
  Weights weights;
  weights.w1 = Draw(rng, kWidth * kHidden, 1.0f / 16);
  weights.b1 = Draw(rng, kHidden, 1.0f / 16);
  weights.w2 = Draw(rng, kHidden * kWidth, 1.0f / 32);
  weights.b2 = Draw(rng, kWidth, 1.0f / 32);
  return weights;
}

}  // namespace coalesce
