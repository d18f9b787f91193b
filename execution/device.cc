#include "execution/device.h"

#include "absl/strings/str_cat.h"

namespace coalesce {

absl::string_view DeviceKindName(DeviceKind kind) {
  switch (kind) {
    case DeviceKind::kCpu:
      return "cpu";
    case DeviceKind::kCuda:
      return "cuda";
    case DeviceKind::kMps:
      return "mps";
  }
  return "unknown";
}

absl::string_view PrecisionName(Precision precision) {
  switch (precision) {
    case Precision::kFp32:
      return "fp32";
    case Precision::kFp16:
      return "fp16";
    case Precision::kBf16:
      return "bf16";
  }
  return "unknown";
}

absl::StatusOr<std::optional<DeviceKind>> ParseDevice(absl::string_view text) {
  if (text == "auto") return std::nullopt;
  for (DeviceKind kind : {DeviceKind::kMps, DeviceKind::kCuda, DeviceKind::kCpu}) {
    if (text == DeviceKindName(kind)) return kind;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--device must be auto, mps, cuda or cpu, got '", text, "'"));
}

absl::StatusOr<std::optional<Precision>> ParsePrecision(absl::string_view text) {
  if (text == "auto") return std::nullopt;
  for (Precision precision : {Precision::kFp16, Precision::kBf16, Precision::kFp32}) {
    if (text == PrecisionName(precision)) return precision;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--precision must be auto, fp16, bf16 or fp32, got '", text, "'"));
}

absl::StatusOr<DeviceKind> ResolveDevice(std::optional<DeviceKind> requested, bool mps_available,
                                         bool cuda_available) {
  if (!requested.has_value()) {
    if (mps_available) return DeviceKind::kMps;
    if (cuda_available) return DeviceKind::kCuda;
    return DeviceKind::kCpu;
  }
  switch (*requested) {
    case DeviceKind::kCpu:
      return DeviceKind::kCpu;
    case DeviceKind::kCuda:
      if (!cuda_available) {
        return absl::FailedPreconditionError(
            "--device=cuda, but this LibTorch build sees no CUDA device");
      }
      return DeviceKind::kCuda;
    case DeviceKind::kMps:
      if (!mps_available) {
        return absl::FailedPreconditionError(
            "--device=mps, but MPS is not available (it needs Apple Silicon and a LibTorch built "
            "with MPS)");
      }
      return DeviceKind::kMps;
  }
  return absl::InvalidArgumentError("unknown device");
}

absl::StatusOr<Precision> ResolvePrecision(std::optional<Precision> requested, DeviceKind device) {
  if (!requested.has_value()) {
    return device == DeviceKind::kCpu ? Precision::kFp32 : Precision::kFp16;
  }
  if (*requested == Precision::kFp16 && device == DeviceKind::kCpu) {
    return absl::InvalidArgumentError(
        "--precision=fp16 is not supported on CPU (LibTorch's CPU matmul has no fp16); use "
        "fp32 or bf16");
  }
  return *requested;
}

}  // namespace coalesce
