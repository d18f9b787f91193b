#include "client/request_builder.h"

#include <cstring>
#include <random>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace coalesce {
namespace {

template <typename T>
void StoreAt(std::string& bytes, int64_t index, T value) {
  std::memcpy(&bytes[index * sizeof(T)], &value, sizeof(T));
}

uint16_t FloatToBfloat16Bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  // Round to nearest even on the 16 dropped bits.
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

// Random little-endian bytes for `elements` values of `datatype` (DatatypeSize() > 0).
std::string RandomTensorBytes(const std::string& datatype, int64_t elements, std::mt19937_64& rng) {
  std::string bytes(elements * DatatypeSize(datatype), '\0');
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  // uniform_real_distribution may return exactly 1.0 after rounding to float; keep [-1, 1).
  auto next_float = [&] {
    float v = static_cast<float>(uniform(rng));
    return v >= 1.0f ? 0.0f : v;
  };
  for (int64_t i = 0; i < elements; ++i) {
    if (datatype == "FP32") {
      StoreAt<float>(bytes, i, next_float());
    } else if (datatype == "FP64") {
      StoreAt<double>(bytes, i, uniform(rng));
    } else if (datatype == "FP16") {
      // Values near 1 may round up to 1.0 in half precision; keep [-1, 1).
      uint16_t half = FloatToHalfBits(next_float());
      StoreAt<uint16_t>(bytes, i, half == 0x3c00 ? 0 : half);
    } else if (datatype == "BF16") {
      uint16_t bf16 = FloatToBfloat16Bits(next_float());
      StoreAt<uint16_t>(bytes, i, bf16 == 0x3f80 ? 0 : bf16);
    } else {
      // Integers and BOOL: 0 or 1 in the lowest byte (little-endian) is valid for every width.
      bytes[i * DatatypeSize(datatype)] = static_cast<char>(rng() & 1u);
    }
  }
  return bytes;
}

}  // namespace

int DatatypeSize(const std::string& datatype) {
  if (datatype == "FP32" || datatype == "INT32" || datatype == "UINT32") return 4;
  if (datatype == "FP64" || datatype == "INT64" || datatype == "UINT64") return 8;
  if (datatype == "FP16" || datatype == "BF16" || datatype == "INT16" || datatype == "UINT16") {
    return 2;
  }
  if (datatype == "INT8" || datatype == "UINT8" || datatype == "BOOL") return 1;
  return 0;
}

uint16_t FloatToHalfBits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return sign | 0x7e00u;   // NaN
  if (magnitude >= 0x477ff000u) return sign | 0x7c00u;  // rounds beyond 65504: infinity
  if (magnitude < 0x38800000u) {                        // below 2^-14: subnormal or zero
    if (magnitude < 0x33000000u) return sign;           // below half the smallest subnormal
    const uint32_t exponent = magnitude >> 23;
    const uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exponent;  // 14..24 -> (mantissa >> shift)
    uint32_t half = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (half & 1u))) ++half;
    return sign | static_cast<uint16_t>(half);
  }
  // Normal: rebias the exponent (127 -> 15) and round the 13 dropped mantissa bits to even.
  uint32_t half = (magnitude - 0x38000000u) >> 13;
  const uint32_t rest = magnitude & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;
  return sign | static_cast<uint16_t>(half);
}

absl::StatusOr<inference::ModelInferRequest> BuildInferRequest(
    const inference::ModelMetadataResponse& metadata, const RequestSpec& spec) {
  if (spec.batch < 1) {
    return absl::InvalidArgumentError(absl::StrCat("batch must be >= 1; got ", spec.batch));
  }
  if (spec.variable_dim < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("variable_dim must be >= 1; got ", spec.variable_dim));
  }
  if (metadata.inputs_size() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", metadata.name(), "' declares no inputs in its metadata"));
  }
  inference::ModelInferRequest request;
  request.set_model_name(spec.model_name);
  request.set_model_version(spec.model_version);
  std::mt19937_64 rng(spec.seed);
  for (const auto& input : metadata.inputs()) {
    if (DatatypeSize(input.datatype()) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input '", input.name(), "' has datatype '", input.datatype(),
          "'; the load generator can only generate fixed-size numeric types and BOOL"));
    }
    auto* tensor = request.add_inputs();
    tensor->set_name(input.name());
    tensor->set_datatype(input.datatype());
    bool batch_placed = false;
    int64_t elements = 1;
    for (int64_t dim : input.shape()) {
      if (dim < 0) {
        dim = batch_placed ? spec.variable_dim : spec.batch;
        batch_placed = true;
      }
      tensor->add_shape(dim);
      elements *= dim;
    }
    if (!batch_placed && spec.batch > 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input '", input.name(), "' has the fixed shape [", absl::StrJoin(input.shape(), ", "),
          "], so it cannot carry batch ", spec.batch, "; expected a -1 dimension"));
    }
    *request.add_raw_input_contents() = RandomTensorBytes(input.datatype(), elements, rng);
  }
  return request;
}

absl::StatusOr<std::vector<inference::ModelInferRequest>> BuildInferRequests(
    const inference::ModelMetadataResponse& metadata, const RequestSpec& spec,
    const LengthRange& lengths) {
  if (lengths.min < 1 || lengths.max < lengths.min) {
    return absl::InvalidArgumentError(absl::StrCat("lengths must be 1 <= min <= max; got ",
                                                   LengthRangeText(lengths)));
  }
  if (!lengths.single()) {
    // A range draws the size of a variable dim after the batch one; a model without one would
    // get the same request every time, a range in name only.
    bool variable = false;
    for (const auto& input : metadata.inputs()) {
      int negative = 0;
      for (int64_t dim : input.shape()) negative += dim < 0 ? 1 : 0;
      variable = variable || negative > 1;
    }
    if (!variable) {
      return absl::InvalidArgumentError(absl::StrCat(
          "lengths ", LengthRangeText(lengths), " need an input with a variable (-1) dim after "
          "the batch one; model '", metadata.name(), "' has none"));
    }
  }
  std::vector<inference::ModelInferRequest> requests;
  requests.reserve(lengths.count());
  RequestSpec one = spec;
  for (int64_t length = lengths.min; length <= lengths.max; ++length) {
    one.variable_dim = length;
    absl::StatusOr<inference::ModelInferRequest> request = BuildInferRequest(metadata, one);
    if (!request.ok()) return request.status();
    requests.push_back(*std::move(request));
  }
  return requests;
}

}  // namespace coalesce
