#ifndef COALESCE_ENGINE_DATA_TYPE_H_
#define COALESCE_ENGINE_DATA_TYPE_H_

#include <cstdint>
#include <optional>

#include "absl/strings/string_view.h"

namespace coalesce {

// Tensor element types, named on the wire as the Open Inference Protocol names them ("FP32").
// BYTES (variable-length strings) is not a DataType: coalesce's backends take fixed-size
// elements only, and requests carrying BYTES are refused at validation.
enum class DataType {
  kBool,
  kUint8,
  kUint16,
  kUint32,
  kUint64,
  kInt8,
  kInt16,
  kInt32,
  kInt64,
  kFp16,
  kBf16,
  kFp32,
  kFp64,
};

// "FP32" -> kFp32; nullopt for a name the protocol does not define or coalesce cannot carry.
std::optional<DataType> ParseDataType(absl::string_view name);

// kFp32 -> "FP32".
absl::string_view DataTypeName(DataType type);

// Bytes per element.
int64_t DataTypeSize(DataType type);

}  // namespace coalesce

#endif  // COALESCE_ENGINE_DATA_TYPE_H_
