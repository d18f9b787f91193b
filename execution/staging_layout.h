#ifndef COALESCE_EXECUTION_STAGING_LAYOUT_H_
#define COALESCE_EXECUTION_STAGING_LAYOUT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "engine/data_type.h"
#include "engine/model_metadata.h"

namespace coalesce {

// How one tensor is laid out in a backend's staging memory: what Backend::Execute() reads for an
// input, or writes for an output, in place of the bytes a request carries on the wire. The
// backend chooses a layout per tensor (Backend::InputStaging()); the executor copies every
// request's rows through it, so it needs to know no conversion itself.
//
// A layout maps rows independently: a request's rows at any offset of the staging buffer are
// Stage()d and Unstage()d on their own, so the executor can split a batch's copies by requests
// over several threads.
//
// Thread-safety: implementations are immutable; every method may be called concurrently.
class StagingLayout {
 public:
  // The tensor as it travels on the wire, byte for byte.
  static const StagingLayout& Wire();
  // An FP32 tensor of fixed dims staged as FP16: narrowed while gathered and widened while
  // scattered (execution/half.h), so that a backend computing in fp16 on an accelerator moves half
  // the bytes between host and device.
  static const StagingLayout& Fp16();

  virtual ~StagingLayout() = default;

  // OK if this layout can stage a tensor of `spec`; else INVALID_ARGUMENT saying why, which the
  // executor reports when it is created.
  virtual absl::Status Fits(const TensorSpec& spec) const = 0;
  // The type that a tensor of wire type `wire` has in staging.
  virtual DataType StagedType(DataType wire) const = 0;
  // The bytes that `wire_bytes` of the tensor take in staging.
  virtual int64_t StagedBytes(int64_t wire_bytes) const = 0;
  // The bytes that `staged_bytes` of the tensor take on the wire (the inverse of StagedBytes()).
  virtual int64_t WireBytes(int64_t staged_bytes) const = 0;
  // Whether staging holds the wire bytes unchanged, so that a lone request's input can be
  // handed to the backend where it lies, without a copy.
  virtual bool keeps_wire_bytes() const = 0;
  // Writes `wire` into `staged` (StagedBytes(wire.size()) bytes). `streaming`: with
  // non-temporal stores where the CPU has them (Executor::Options::streaming_gather); the caller
  // then runs StagingFence() before the bytes are read by another thread or by DMA.
  virtual void Stage(absl::string_view wire, char* staged, bool streaming) const = 0;
  // Writes the wire form of the `staged_bytes` bytes at `staged` into `wire`
  // (WireBytes(staged_bytes) bytes, aligned for the tensor's elements: an
  // OutputBuffer::Allocate()).
  virtual void Unstage(const char* staged, int64_t staged_bytes, char* wire) const = 0;
};

// Orders this thread's streaming stores (StagingLayout::Stage() with `streaming`) before its
// later stores, such as the copy pool's completion.
void StagingFence();

}  // namespace coalesce

#endif  // COALESCE_EXECUTION_STAGING_LAYOUT_H_
