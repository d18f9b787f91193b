#include "execution/half.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#include "absl/base/casts.h"

namespace coalesce {
namespace {

uint32_t Bits(float value) { return absl::bit_cast<uint32_t>(value); }
float FromBits(uint32_t bits) { return absl::bit_cast<float>(bits); }

#if defined(__x86_64__)
// F16C and AVX, and an OS that saves the YMM registers. By cpuid, not
// __builtin_cpu_supports("f16c"), which clang does not know.
bool HasF16c() {
  static const bool has = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return false;
    const unsigned needed = (1u << 27) | (1u << 28) | (1u << 29);  // OSXSAVE, AVX, F16C.
    if ((ecx & needed) != needed) return false;
    unsigned xcr0_low = 0, xcr0_high = 0;
    __asm__("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
    return (xcr0_low & 6u) == 6u;  // XMM and YMM state enabled.
  }();
  return has;
}

__attribute__((target("avx,f16c"))) void FloatsToHalvesF16c(uint16_t* dst, const float* src,
                                                            size_t n, bool streaming) {
  size_t i = 0;
  // Streaming stores need 16-byte aligned destinations: the head goes one by one.
  if (streaming) {
    for (; i < n && reinterpret_cast<uintptr_t>(dst + i) % 16 != 0; ++i) {
      dst[i] = FloatToHalf(src[i]);
    }
  }
  for (; i + 8 <= n; i += 8) {
    const __m128i halves =
        _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    if (streaming) {
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i), halves);
    } else {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), halves);
    }
  }
  for (; i < n; ++i) dst[i] = FloatToHalf(src[i]);
}

__attribute__((target("avx,f16c"))) void HalvesToFloatsF16c(float* dst, const uint16_t* src,
                                                            size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i halves = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(halves));
  }
  for (; i < n; ++i) dst[i] = HalfToFloat(src[i]);
}
#endif

}  // namespace

uint16_t FloatToHalf(float value) {
  const uint32_t bits = Bits(value);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs = bits & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // Infinity or NaN (kept quiet, top mantissa bits kept).
    return abs > 0x7f800000u ? static_cast<uint16_t>(sign | 0x7e00u | ((abs >> 13) & 0x3ffu))
                             : static_cast<uint16_t>(sign | 0x7c00u);
  }
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // Rounds past 65504.
  if (abs < 0x38800000u) {
    // Below the smallest normal half (2^-14): a subnormal half, counting units of 2^-24. Adding
    // 0.5 (2^-1) shifts the value so that the float's own rounding (to nearest even) leaves the
    // result in the low mantissa bits.
    const float shifted = FromBits(abs) + 0.5f;
    return static_cast<uint16_t>(sign | (Bits(shifted) - Bits(0.5f)));
  }
  // Normal: rebias the exponent (127 -> 15) and round the 23-bit mantissa to 10 bits, to
  // nearest even; a carry out of the mantissa correctly bumps the exponent.
  const uint32_t odd = (abs >> 13) & 1u;
  const uint32_t rounded = abs + 0xfffu + odd;
  return static_cast<uint16_t>(sign | ((rounded - 0x38000000u) >> 13));
}

float HalfToFloat(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exponent = (half >> 10) & 0x1fu;
  const uint32_t mantissa = half & 0x3ffu;
  if (exponent == 0x1f) return FromBits(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {
    // Zero or subnormal: mantissa * 2^-24, exact in a float.
    const float magnitude = static_cast<float>(mantissa) * FromBits(0x33800000u);
    return FromBits(sign | Bits(magnitude));
  }
  return FromBits(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

void FloatsToHalves(uint16_t* dst, const float* src, size_t n, bool streaming) {
#if defined(__x86_64__)
  if (HasF16c()) {
    FloatsToHalvesF16c(dst, src, n, streaming);
    return;
  }
#endif
  for (size_t i = 0; i < n; ++i) dst[i] = FloatToHalf(src[i]);
}

void HalvesToFloats(float* dst, const uint16_t* src, size_t n) {
#if defined(__x86_64__)
  if (HasF16c()) {
    HalvesToFloatsF16c(dst, src, n);
    return;
  }
#endif
  for (size_t i = 0; i < n; ++i) dst[i] = HalfToFloat(src[i]);
}

}  // namespace coalesce
