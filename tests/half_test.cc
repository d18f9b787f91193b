#include "execution/half.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "absl/base/casts.h"
#include "gtest/gtest.h"

namespace coalesce {
namespace {

// A half's value from its definition, in double: an independent reference.
double Reference(uint16_t half) {
  const int exponent = (half >> 10) & 0x1f;
  const int mantissa = half & 0x3ff;
  const double sign = (half & 0x8000) != 0 ? -1.0 : 1.0;
  if (exponent == 0) return sign * std::ldexp(mantissa, -24);
  return sign * std::ldexp(1024 + mantissa, exponent - 25);
}

TEST(HalfTest, WideningIsExactForEveryHalf) {
  std::vector<uint16_t> all(65536);
  for (int h = 0; h < 65536; ++h) all[h] = static_cast<uint16_t>(h);
  std::vector<float> widened(all.size());
  HalvesToFloats(widened.data(), all.data(), all.size());
  for (int h = 0; h < 65536; ++h) {
    const int exponent = (h >> 10) & 0x1f;
    if (exponent == 0x1f) {
      const bool nan = (h & 0x3ff) != 0;
      EXPECT_EQ(std::isnan(widened[h]), nan) << h;
      EXPECT_EQ(std::isnan(HalfToFloat(static_cast<uint16_t>(h))), nan) << h;
      if (!nan) {
        EXPECT_EQ(std::fabs(widened[h]), std::numeric_limits<float>::infinity()) << h;
      }
      continue;
    }
    ASSERT_EQ(double{widened[h]}, Reference(static_cast<uint16_t>(h))) << h;
    ASSERT_EQ(absl::bit_cast<uint32_t>(HalfToFloat(static_cast<uint16_t>(h))),
              absl::bit_cast<uint32_t>(widened[h]))
        << h;
    // Every half is a float: narrowing it back gives the same half.
    ASSERT_EQ(FloatToHalf(widened[h]), h) << h;
  }
}

// The half nearest to `x`, ties to the even one, by search over the reference values.
uint16_t NearestHalf(float x) {
  const double value = x;
  if (std::fabs(value) >= 65520.0) return value > 0 ? 0x7c00 : 0xfc00;
  uint16_t best = 0;
  double best_distance = std::numeric_limits<double>::infinity();
  const uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  for (int magnitude = 0; magnitude <= 0x7bff; ++magnitude) {
    const uint16_t half = static_cast<uint16_t>(sign | magnitude);
    const double distance = std::fabs(Reference(half) - value);
    if (distance < best_distance || (distance == best_distance && (half & 1) == 0)) {
      best = half;
      best_distance = distance;
    }
  }
  return best;
}

TEST(HalfTest, NarrowingRoundsToNearestEven) {
  // Exact ties: half-way between two halves must go to the even one.
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -25)), 0x0000);      // Between 0 and the first subnormal.
  EXPECT_EQ(FloatToHalf(std::ldexp(3.0f, -25)), 0x0002);      // Between subnormals 1 and 2.
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // Between 1 and 1 + 2^-10.
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(3.0f, -11)), 0x3c02);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToHalf(65519.996f), 0x7bff);
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7c00);  // The tie above the largest half goes to infinity.
  EXPECT_EQ(FloatToHalf(-1e10f), 0xfc00);
  EXPECT_EQ(FloatToHalf(-0.0f), 0x8000);
  EXPECT_EQ(FloatToHalf(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -14)), 0x0400);  // Smallest normal.
  EXPECT_EQ(FloatToHalf(std::ldexp(1023.5f, -24)), 0x0400);  // Rounds up into the normals.
  const uint16_t nan = FloatToHalf(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x3ff, 0);

  // Random values of every magnitude against the exhaustive search.
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> mantissa(1.0f, 2.0f);
  std::uniform_int_distribution<int> exponent(-27, 17);
  for (int i = 0; i < 400; ++i) {
    float x = std::ldexp(mantissa(rng), exponent(rng));
    if (i % 2 == 1) x = -x;
    ASSERT_EQ(FloatToHalf(x), NearestHalf(x)) << x;
  }
}

TEST(HalfTest, VectorPathsMatchTheScalarOnesAtAnyAlignment) {
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> mantissa(1.0f, 2.0f);
  std::uniform_int_distribution<int> exponent(-30, 18);
  std::vector<float> values(1000);
  for (size_t i = 0; i < values.size(); ++i) {
    values[i] = std::ldexp(mantissa(rng), exponent(rng)) * (i % 3 == 0 ? -1.0f : 1.0f);
  }
  values[7] = std::numeric_limits<float>::infinity();
  values[8] = 0.0f;
  values[9] = -0.0f;
  for (bool streaming : {false, true}) {
    for (size_t offset = 0; offset < 9; ++offset) {
      const size_t n = values.size() - offset;
      std::vector<uint16_t> halves(values.size() + 8, 0xdead);
      FloatsToHalves(halves.data() + offset, values.data() + offset, n, streaming);
      for (size_t i = 0; i < n; ++i) {
        ASSERT_EQ(halves[offset + i], FloatToHalf(values[offset + i]))
            << "streaming " << streaming << " offset " << offset << " i " << i;
      }
      EXPECT_EQ(halves[offset + n], 0xdead);  // Nothing written past the end.
      std::vector<float> widened(n);
      HalvesToFloats(widened.data(), halves.data() + offset, n);
      for (size_t i = 0; i < n; ++i) {
        ASSERT_EQ(absl::bit_cast<uint32_t>(widened[i]),
                  absl::bit_cast<uint32_t>(HalfToFloat(halves[offset + i])))
            << i;
      }
    }
  }
}

}  // namespace
}  // namespace coalesce
