#ifndef COALESCE_EXECUTION_HALF_H_
#define COALESCE_EXECUTION_HALF_H_

#include <cstddef>
#include <cstdint>

namespace coalesce {

// IEEE 754 binary16 conversions for FP32 tensors staged as FP16 (StagingLayout::Fp16()): inputs
// are narrowed while the executor gathers them and outputs widened while it scatters them, so
// half the bytes cross PCIe. Narrowing rounds to nearest, ties to even, as a GPU's conversion
// does (so a model computing in fp16 sees the same values either way): overflow becomes
// infinity, NaN stays NaN, tiny values become subnormal or zero. Widening is exact. x86-64 CPUs with F16C convert 8
// values per instruction; elsewhere a portable loop computes the same bits.

// Narrows `n` floats. `streaming`: write with non-temporal stores where the CPU has them (the
// staging buffer is read next by DMA, see Executor::Options::streaming_gather); the caller then
// fences (StagingFence(), execution/staging_layout.h) before the bytes are used.
void FloatsToHalves(uint16_t* dst, const float* src, size_t n, bool streaming);
// Widens `n` halves.
void HalvesToFloats(float* dst, const uint16_t* src, size_t n);

// One value, portably (the reference of the vector paths; tests compare them).
uint16_t FloatToHalf(float value);
float HalfToFloat(uint16_t half);

}  // namespace coalesce

#endif  // COALESCE_EXECUTION_HALF_H_
