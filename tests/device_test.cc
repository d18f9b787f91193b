#include "core/device.h"

#include "gtest/gtest.h"

namespace coalesce {
namespace {

TEST(DeviceTest, AutoPrefersMpsThenCudaThenCpu) {
  EXPECT_EQ(*ResolveDevice("auto", true, true), DeviceKind::kMps);
  EXPECT_EQ(*ResolveDevice("auto", false, true), DeviceKind::kCuda);
  EXPECT_EQ(*ResolveDevice("auto", false, false), DeviceKind::kCpu);
}

TEST(DeviceTest, NamedDeviceThatIsMissingIsAnError) {
  EXPECT_EQ(ResolveDevice("cuda", true, false).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ResolveDevice("mps", false, true).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(*ResolveDevice("cpu", true, true), DeviceKind::kCpu);
  EXPECT_EQ(ResolveDevice("tpu", true, true).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(DeviceTest, AutoPrecisionIsFp16OnAcceleratorsAndFp32OnCpu) {
  EXPECT_EQ(*ResolvePrecision("auto", DeviceKind::kMps), Precision::kFp16);
  EXPECT_EQ(*ResolvePrecision("auto", DeviceKind::kCuda), Precision::kFp16);
  EXPECT_EQ(*ResolvePrecision("auto", DeviceKind::kCpu), Precision::kFp32);
}

TEST(DeviceTest, Fp16OnCpuIsRefusedButBf16IsAllowed) {
  absl::Status s = ResolvePrecision("fp16", DeviceKind::kCpu).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("bf16"), std::string::npos) << s;
  EXPECT_EQ(*ResolvePrecision("bf16", DeviceKind::kCpu), Precision::kBf16);
  EXPECT_EQ(ResolvePrecision("fp8", DeviceKind::kCuda).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace coalesce
