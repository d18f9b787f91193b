#include "core/device.h"

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

absl::StatusOr<DeviceKind> ResolveDevice(absl::string_view requested, bool mps_available,
                                         bool cuda_available) {
  if (requested == "auto") {
    if (mps_available) return DeviceKind::kMps;
    if (cuda_available) return DeviceKind::kCuda;
    return DeviceKind::kCpu;
  }
  if (requested == "cpu") return DeviceKind::kCpu;
  if (requested == "cuda") {
    if (!cuda_available) {
      return absl::FailedPreconditionError(
          "--device=cuda, but this LibTorch build sees no CUDA device");
    }
    return DeviceKind::kCuda;
  }
  if (requested == "mps") {
    if (!mps_available) {
      return absl::FailedPreconditionError(
          "--device=mps, but MPS is not available (it needs Apple Silicon and a LibTorch built "
          "with MPS)");
    }
    return DeviceKind::kMps;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--device must be auto, mps, cuda or cpu, got '", requested, "'"));
}

absl::StatusOr<Precision> ResolvePrecision(absl::string_view requested, DeviceKind device) {
  if (requested == "auto") return device == DeviceKind::kCpu ? Precision::kFp32 : Precision::kFp16;
  if (requested == "fp32") return Precision::kFp32;
  if (requested == "bf16") return Precision::kBf16;
  if (requested == "fp16") {
    if (device == DeviceKind::kCpu) {
      return absl::InvalidArgumentError(
          "--precision=fp16 is not supported on CPU (LibTorch's CPU matmul has no fp16); use "
          "fp32 or bf16");
    }
    return Precision::kFp16;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--precision must be auto, fp16, bf16 or fp32, got '", requested, "'"));
}

}  // namespace coalesce
