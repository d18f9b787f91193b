#include "execution/device.h"

#include <optional>

#include "gtest/gtest.h"

namespace coalesce {
namespace {

TEST(DeviceTest, ParsesTheFlagsSpellingsWithAutoAsNoChoice) {
  EXPECT_EQ(*ParseDevice("auto"), std::nullopt);
  EXPECT_EQ(*ParseDevice("mps"), DeviceKind::kMps);
  EXPECT_EQ(*ParseDevice("cuda"), DeviceKind::kCuda);
  EXPECT_EQ(*ParseDevice("cpu"), DeviceKind::kCpu);
  EXPECT_EQ(*ParsePrecision("auto"), std::nullopt);
  EXPECT_EQ(*ParsePrecision("fp16"), Precision::kFp16);
  EXPECT_EQ(*ParsePrecision("bf16"), Precision::kBf16);
  EXPECT_EQ(*ParsePrecision("fp32"), Precision::kFp32);
}

TEST(DeviceTest, UnknownSpellingsAreRefusedNamingTheFlag) {
  absl::Status device = ParseDevice("tpu").status();
  EXPECT_EQ(device.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(device.message(), "--device must be auto, mps, cuda or cpu, got 'tpu'");
  absl::Status precision = ParsePrecision("fp8").status();
  EXPECT_EQ(precision.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(precision.message(), "--precision must be auto, fp16, bf16 or fp32, got 'fp8'");
  EXPECT_FALSE(ParseDevice("CPU").ok());  // Spellings are exact, as the flags' checks are.
}

TEST(DeviceTest, AutoPrefersMpsThenCudaThenCpu) {
  EXPECT_EQ(*ResolveDevice(std::nullopt, true, true), DeviceKind::kMps);
  EXPECT_EQ(*ResolveDevice(std::nullopt, false, true), DeviceKind::kCuda);
  EXPECT_EQ(*ResolveDevice(std::nullopt, false, false), DeviceKind::kCpu);
}

TEST(DeviceTest, NamedDeviceThatIsMissingIsAnError) {
  EXPECT_EQ(ResolveDevice(DeviceKind::kCuda, true, false).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ResolveDevice(DeviceKind::kMps, false, true).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(*ResolveDevice(DeviceKind::kCpu, true, true), DeviceKind::kCpu);
  EXPECT_EQ(*ResolveDevice(DeviceKind::kCuda, false, true), DeviceKind::kCuda);
}

TEST(DeviceTest, AutoPrecisionIsFp16OnAcceleratorsAndFp32OnCpu) {
  EXPECT_EQ(*ResolvePrecision(std::nullopt, DeviceKind::kMps), Precision::kFp16);
  EXPECT_EQ(*ResolvePrecision(std::nullopt, DeviceKind::kCuda), Precision::kFp16);
  EXPECT_EQ(*ResolvePrecision(std::nullopt, DeviceKind::kCpu), Precision::kFp32);
}

TEST(DeviceTest, Fp16OnCpuIsRefusedButBf16IsAllowed) {
  absl::Status s = ResolvePrecision(Precision::kFp16, DeviceKind::kCpu).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("bf16"), std::string::npos) << s;
  EXPECT_EQ(*ResolvePrecision(Precision::kBf16, DeviceKind::kCpu), Precision::kBf16);
  EXPECT_EQ(*ResolvePrecision(Precision::kFp16, DeviceKind::kCuda), Precision::kFp16);
}

}  // namespace
}  // namespace coalesce
