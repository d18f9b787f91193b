#include "engine/data_type.h"

#include <array>
#include <utility>

namespace coalesce {
namespace {

struct TypeInfo {
  DataType type;
  absl::string_view name;
  int64_t size;
};

constexpr std::array<TypeInfo, 13> kTypes = {{
    {DataType::kBool, "BOOL", 1},
    {DataType::kUint8, "UINT8", 1},
    {DataType::kUint16, "UINT16", 2},
    {DataType::kUint32, "UINT32", 4},
    {DataType::kUint64, "UINT64", 8},
    {DataType::kInt8, "INT8", 1},
    {DataType::kInt16, "INT16", 2},
    {DataType::kInt32, "INT32", 4},
    {DataType::kInt64, "INT64", 8},
    {DataType::kFp16, "FP16", 2},
    {DataType::kBf16, "BF16", 2},
    {DataType::kFp32, "FP32", 4},
    {DataType::kFp64, "FP64", 8},
}};

const TypeInfo& Info(DataType type) { return kTypes[static_cast<int>(type)]; }

}  // namespace

std::optional<DataType> ParseDataType(absl::string_view name) {
  for (const TypeInfo& info : kTypes) {
    if (info.name == name) return info.type;
  }
  return std::nullopt;
}

absl::string_view DataTypeName(DataType type) { return Info(type).name; }

int64_t DataTypeSize(DataType type) { return Info(type).size; }

}  // namespace coalesce
