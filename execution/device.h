#ifndef COALESCE_EXECUTION_DEVICE_H_
#define COALESCE_EXECUTION_DEVICE_H_

#include <optional>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace coalesce {

enum class DeviceKind { kCpu, kCuda, kMps };
enum class Precision { kFp32, kFp16, kBf16 };

absl::string_view DeviceKindName(DeviceKind kind);  // "cpu", "cuda", "mps"
absl::string_view PrecisionName(Precision precision);  // "fp32", "fp16", "bf16"

// `--device` as a program's flag spells it: "auto" (nullopt), "mps", "cuda" or "cpu";
// INVALID_ARGUMENT naming the flag otherwise.
absl::StatusOr<std::optional<DeviceKind>> ParseDevice(absl::string_view text);

// `--precision` as a program's flag spells it: "auto" (nullopt), "fp16", "bf16" or "fp32";
// INVALID_ARGUMENT naming the flag otherwise.
absl::StatusOr<std::optional<Precision>> ParsePrecision(absl::string_view text);

// The device to run on: `requested`, or with nullopt ("auto") MPS, then CUDA, then CPU,
// whichever is available first; a named device that is not available is an error (never a
// silent CPU run). Pure; the caller asks the runtime what is available.
absl::StatusOr<DeviceKind> ResolveDevice(std::optional<DeviceKind> requested, bool mps_available,
                                         bool cuda_available);

// The precision to compute in: `requested`, or with nullopt ("auto") fp16 on MPS and CUDA and
// fp32 on CPU. fp16 on CPU is refused: the CPU LibTorch that Debian ships has no fp16 matmul
// (bf16 works).
absl::StatusOr<Precision> ResolvePrecision(std::optional<Precision> requested, DeviceKind device);

}  // namespace coalesce

#endif  // COALESCE_EXECUTION_DEVICE_H_
