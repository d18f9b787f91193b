#include "execution/staging_layout.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "execution/half.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace coalesce {
namespace {

// memcpy with non-temporal stores: the bytes go to memory without staying in this core's cache
// (see Executor::Options::streaming_gather). Visible to other threads and to DMA once
// StagingFence() has run on this thread.
void StreamingCopy(char* dst, const char* src, size_t n) {
#if defined(__SSE2__)
  const size_t head = std::min(n, (16 - reinterpret_cast<uintptr_t>(dst) % 16) % 16);
  std::memcpy(dst, src, head);
  dst += head;
  src += head;
  n -= head;
  for (; n >= 64; n -= 64, src += 64, dst += 64) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 16));
    const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 32));
    const __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 48));
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst), a);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + 16), b);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + 32), c);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + 48), d);
  }
#endif
  std::memcpy(dst, src, n);
}

class WireLayout : public StagingLayout {
 public:
  absl::Status Fits(const TensorSpec& spec) const override { return absl::OkStatus(); }
  DataType StagedType(DataType wire) const override { return wire; }
  int64_t StagedBytes(int64_t wire_bytes) const override { return wire_bytes; }
  int64_t WireBytes(int64_t staged_bytes) const override { return staged_bytes; }
  bool keeps_wire_bytes() const override { return true; }
  void Stage(absl::string_view wire, char* staged, bool streaming) const override {
    if (streaming) {
      StreamingCopy(staged, wire.data(), wire.size());
    } else {
      std::memcpy(staged, wire.data(), wire.size());
    }
  }
  void Unstage(const char* staged, int64_t staged_bytes, char* wire) const override {
    std::memcpy(wire, staged, staged_bytes);
  }
};

class Fp16Layout : public StagingLayout {
 public:
  absl::Status Fits(const TensorSpec& spec) const override {
    if (spec.dtype == DataType::kFp32 && !spec.HasVariableDims()) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("FP16 staging takes only FP32 tensors of fixed dims, not ",
                     DataTypeName(spec.dtype), spec.HasVariableDims() ? " of variable dims" : ""));
  }
  DataType StagedType(DataType wire) const override { return DataType::kFp16; }
  int64_t StagedBytes(int64_t wire_bytes) const override { return wire_bytes / 2; }
  int64_t WireBytes(int64_t staged_bytes) const override { return staged_bytes * 2; }
  bool keeps_wire_bytes() const override { return false; }
  void Stage(absl::string_view wire, char* staged, bool streaming) const override {
    FloatsToHalves(reinterpret_cast<uint16_t*>(staged),
                   reinterpret_cast<const float*>(wire.data()), wire.size() / sizeof(float),
                   streaming);
  }
  void Unstage(const char* staged, int64_t staged_bytes, char* wire) const override {
    // Widened into twice the staged bytes, written once (no zeroing first).
    HalvesToFloats(reinterpret_cast<float*>(wire), reinterpret_cast<const uint16_t*>(staged),
                   staged_bytes / 2);
  }
};

}  // namespace

const StagingLayout& StagingLayout::Wire() {
  static const WireLayout* const layout = new WireLayout();
  return *layout;
}

const StagingLayout& StagingLayout::Fp16() {
  static const Fp16Layout* const layout = new Fp16Layout();
  return *layout;
}

void StagingFence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

}  // namespace coalesce
