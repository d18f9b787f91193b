#include "execution/padded_rows.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "execution/half.h"

namespace coalesce {
namespace {

template <typename T>
std::string Repeat(T value, int64_t count) {
  std::string bytes(static_cast<size_t>(count) * sizeof(T), '\0');
  for (int64_t k = 0; k < count; ++k) std::memcpy(&bytes[k * sizeof(T)], &value, sizeof(T));
  return bytes;
}

// `value` as an integer of type T, if it is one exactly.
template <typename T>
absl::StatusOr<std::string> RepeatInteger(double value, int64_t count) {
  // Compared as doubles: the bounds of 64-bit types round up, so the upper one is exclusive.
  const double low = static_cast<double>(std::numeric_limits<T>::min());
  const double high = static_cast<double>(std::numeric_limits<T>::max());
  if (value != std::floor(value) || value < low || value >= high + 1.0 ||
      (sizeof(T) == 8 && value >= high)) {
    return absl::InvalidArgumentError(absl::StrCat(value, " is not a whole number in [", low,
                                                   ", ", high, "]"));
  }
  return Repeat(static_cast<T>(value), count);
}

uint16_t FloatToBf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return static_cast<uint16_t>(bits >> 16);
}

float Bf16ToFloat(uint16_t value) {
  const uint32_t bits = static_cast<uint32_t>(value) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

absl::Status Inexact(double value, absl::string_view type) {
  return absl::InvalidArgumentError(absl::StrCat(value, " is not exactly a ", type, " value"));
}

}  // namespace

absl::StatusOr<std::string> RepeatedValue(DataType type, double value, int64_t count) {
  switch (type) {
    case DataType::kBool:
      if (value != 0 && value != 1) {
        return absl::InvalidArgumentError(absl::StrCat(value, " is not 0 or 1 (BOOL)"));
      }
      return Repeat(static_cast<uint8_t>(value), count);
    case DataType::kUint8:
      return RepeatInteger<uint8_t>(value, count);
    case DataType::kUint16:
      return RepeatInteger<uint16_t>(value, count);
    case DataType::kUint32:
      return RepeatInteger<uint32_t>(value, count);
    case DataType::kUint64:
      return RepeatInteger<uint64_t>(value, count);
    case DataType::kInt8:
      return RepeatInteger<int8_t>(value, count);
    case DataType::kInt16:
      return RepeatInteger<int16_t>(value, count);
    case DataType::kInt32:
      return RepeatInteger<int32_t>(value, count);
    case DataType::kInt64:
      return RepeatInteger<int64_t>(value, count);
    case DataType::kFp16: {
      const uint16_t half = FloatToHalf(static_cast<float>(value));
      if (static_cast<double>(HalfToFloat(half)) != value) return Inexact(value, "FP16");
      return Repeat(half, count);
    }
    case DataType::kBf16: {
      const uint16_t bf16 = FloatToBf16(static_cast<float>(value));
      if (static_cast<double>(Bf16ToFloat(bf16)) != value) return Inexact(value, "BF16");
      return Repeat(bf16, count);
    }
    case DataType::kFp32:
      if (static_cast<double>(static_cast<float>(value)) != value) return Inexact(value, "FP32");
      return Repeat(static_cast<float>(value), count);
    case DataType::kFp64:
      return Repeat(value, count);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown data type ", static_cast<int>(type)));
}

absl::StatusOr<PaddedRows> PaddedRows::Create(const ModelMetadata& metadata) {
  const PaddingSpec& padding = *metadata.padding;
  auto geometry = [](const TensorSpec& spec, int dim) {
    Geometry g;
    g.dim = dim;
    for (int d = 0; d < dim; ++d) g.outer *= spec.dims[d];
    for (size_t d = dim + 1; d < spec.dims.size(); ++d) g.inner *= spec.dims[d];
    g.inner_bytes = g.inner * DataTypeSize(spec.dtype);
    return g;
  };
  PaddedRows rows;
  for (const PaddingSpec::Input& in : padding.inputs) {
    const TensorSpec& spec = metadata.inputs[in.input];
    rows.inputs_.push_back(geometry(spec, in.dim));
    absl::StatusOr<std::string> pad =
        RepeatedValue(spec.dtype, in.value, padding.buckets.back() * rows.inputs_.back().inner);
    if (!pad.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("model '", metadata.name, "' input '",
                                                     spec.name, "' pad value: ",
                                                     pad.status().message()));
    }
    rows.pad_.push_back(*std::move(pad));
  }
  for (const PaddingSpec::Output& out : padding.outputs) {
    rows.outputs_.push_back(geometry(metadata.outputs[out.output], out.dim));
  }
  return rows;
}

int64_t PaddedRows::PaddedInputBytes(int p, absl::Span<const int64_t> dims, int64_t rows,
                                     int64_t length) const {
  const Geometry& g = inputs_[p];
  int64_t outer = 1;
  for (int d = 0; d < g.dim; ++d) outer *= dims[d];
  return rows * outer * length * g.inner_bytes;
}

int64_t PaddedRows::Pad(int p, absl::Span<const int64_t> dims, int64_t rows,
                        absl::string_view wire, int64_t length, char* staged) const {
  const Geometry& g = inputs_[p];
  const int64_t own = dims[g.dim];
  const int64_t own_bytes = own * g.inner_bytes;
  const int64_t pad_bytes = (length - own) * g.inner_bytes;
  // Blocks of the variable dim: every row's `outer` blocks, one after another.
  const int64_t blocks = PaddedInputBytes(p, dims, rows, 1) / std::max<int64_t>(g.inner_bytes, 1);
  const char* from = wire.data();
  for (int64_t b = 0; b < blocks; ++b) {
    std::memcpy(staged, from, own_bytes);
    std::memcpy(staged + own_bytes, pad_[p].data(), pad_bytes);
    from += own_bytes;
    staged += own_bytes + pad_bytes;
  }
  return blocks * (length - own) * g.inner;
}

int64_t PaddedRows::OutputLength(int c, int64_t row_bytes) const {
  const Geometry& g = outputs_[c];
  const int64_t block = g.outer * g.inner_bytes;
  if (block == 0 || row_bytes % block != 0) return -1;
  return row_bytes / block;
}

int64_t PaddedRows::CutOutputBytes(int c, int64_t rows, int64_t length) const {
  const Geometry& g = outputs_[c];
  return rows * g.outer * length * g.inner_bytes;
}

void PaddedRows::Cut(int c, int64_t rows, int64_t batch_length, int64_t length,
                     const char* staged, char* wire) const {
  const Geometry& g = outputs_[c];
  const int64_t kept = length * g.inner_bytes;
  const int64_t stride = batch_length * g.inner_bytes;
  for (int64_t b = 0; b < rows * g.outer; ++b) {
    std::memcpy(wire, staged, kept);
    wire += kept;
    staged += stride;
  }
}

}  // namespace coalesce
