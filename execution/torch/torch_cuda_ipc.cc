#include "execution/torch/torch_cuda_ipc.h"

// The CUDA runtime only: no Torch header is needed here, and no protobuf header may be (see
// torch_cuda.cc).
#if defined(COALESCE_WITH_CUDA)
#include <cuda_runtime_api.h>
#endif

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace coalesce {

#if defined(COALESCE_WITH_CUDA)
namespace {

// Makes `device` current on the calling thread for its scope, then restores the previous one,
// so that copies on executor threads leave LibTorch's notion of the current device alone.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    status_ = previous_ == device ? cudaSuccess : cudaSetDevice(device);
    if (previous_ < 0 || status_ != cudaSuccess) (void)cudaGetLastError();
  }
  ~DeviceScope() {
    if (previous_ >= 0 && cudaSetDevice(previous_) != cudaSuccess) (void)cudaGetLastError();
  }
  cudaError_t status() const { return status_; }

 private:
  int previous_ = -1;
  cudaError_t status_ = cudaSuccess;
};

// Bytes from `pointer` to the end of the allocation holding it, from the driver's
// cuMemGetAddressRange, looked up through the runtime.
absl::StatusOr<int64_t> AllocationBytesFrom(void* pointer) {
  // CUresult cuMemGetAddressRange(CUdeviceptr* base, size_t* size, CUdeviceptr dptr), with
  // CUdeviceptr an unsigned 64-bit integer and CUresult an int-sized enum (0 = success).
  using GetAddressRange = int (*)(unsigned long long*, size_t*, unsigned long long);
  void* function = nullptr;
  cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
#if CUDART_VERSION >= 12050
  cudaError_t error = cudaGetDriverEntryPointByVersion("cuMemGetAddressRange", &function, 12000,
                                                       cudaEnableDefault, &found);
#else
  cudaError_t error =
      cudaGetDriverEntryPoint("cuMemGetAddressRange", &function, cudaEnableDefault, &found);
#endif
  if (error != cudaSuccess || function == nullptr || found != cudaDriverEntryPointSuccess) {
    return absl::InternalError(absl::StrCat("cannot find the driver's cuMemGetAddressRange: ",
                                            cudaGetErrorString(error)));
  }
  unsigned long long base = 0;
  size_t size = 0;
  const auto address = reinterpret_cast<unsigned long long>(pointer);
  const int result = reinterpret_cast<GetAddressRange>(function)(&base, &size, address);
  if (result != 0) {
    return absl::InternalError(absl::StrCat("cuMemGetAddressRange failed (CUresult ", result, ")"));
  }
  return static_cast<int64_t>(size - (address - base));
}

class OpenedIpcMemory final : public CudaIpcMemory {
 public:
  OpenedIpcMemory(char* base, int device, int64_t byte_size)
      : base_(base), device_(device), byte_size_(byte_size) {}
  ~OpenedIpcMemory() override {
    DeviceScope scope(device_);
    cudaIpcCloseMemHandle(base_);
  }

  int64_t byte_size() const override { return byte_size_; }

  absl::Status CopyToHost(int64_t offset, int64_t size, char* host) const override {
    DeviceScope scope(device_);
    cudaError_t error = scope.status();
    if (error == cudaSuccess && size > 0) {
      error = cudaMemcpy(host, base_ + offset, static_cast<size_t>(size), cudaMemcpyDeviceToHost);
    }
    return Check(error, "device-to-host copy", offset, size);
  }

  absl::Status CopyFromHost(int64_t offset, absl::string_view bytes) const override {
    DeviceScope scope(device_);
    cudaError_t error = scope.status();
    if (error == cudaSuccess && !bytes.empty()) {
      error = cudaMemcpy(base_ + offset, bytes.data(), bytes.size(), cudaMemcpyHostToDevice);
    }
    return Check(error, "host-to-device copy", offset, static_cast<int64_t>(bytes.size()));
  }

 private:
  static absl::Status Check(cudaError_t error, const char* what, int64_t offset, int64_t size) {
    if (error == cudaSuccess) return absl::OkStatus();
    // A failed runtime call stays this thread's last error until read; this thread may be an
    // executor worker whose next batch would then report it as its own.
    (void)cudaGetLastError();
    return absl::InternalError(absl::StrCat("CUDA shared memory: ", what, " of ", size,
                                            " bytes at offset ", offset,
                                            " failed: ", cudaGetErrorString(error)));
  }

  char* const base_;
  const int device_;
  const int64_t byte_size_;
};

}  // namespace

bool CudaIpcAvailable() { return true; }

absl::StatusOr<std::unique_ptr<CudaIpcMemory>> OpenCudaIpcMemory(absl::string_view handle,
                                                                 int64_t device_id,
                                                                 int64_t byte_size) {
  if (handle.size() != sizeof(cudaIpcMemHandle_t)) {
    return absl::InvalidArgumentError(absl::StrCat("raw_handle has ", handle.size(),
                                                   " bytes, expected ",
                                                   sizeof(cudaIpcMemHandle_t),
                                                   " (a cudaIpcMemHandle_t)"));
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess) devices = 0;
  if (device_id < 0 || device_id >= devices) {
    return absl::InvalidArgumentError(absl::StrCat("device_id ", device_id, " is not one of the ",
                                                   devices, " CUDA devices of this server"));
  }
  cudaIpcMemHandle_t ipc;
  std::memcpy(&ipc, handle.data(), sizeof(ipc));
  const int device = static_cast<int>(device_id);
  DeviceScope scope(device);
  if (scope.status() != cudaSuccess) {
    return absl::InternalError(absl::StrCat("cudaSetDevice(", device,
                                            "): ", cudaGetErrorString(scope.status())));
  }
  void* base = nullptr;
  cudaError_t error = cudaIpcOpenMemHandle(&base, ipc, cudaIpcMemLazyEnablePeerAccess);
  if (error != cudaSuccess) {
    cudaGetLastError();  // clears the error, so that it does not surface in LibTorch later
    return absl::InvalidArgumentError(
        absl::StrCat("cudaIpcOpenMemHandle failed: ", cudaGetErrorString(error)));
  }
  auto memory = std::make_unique<OpenedIpcMemory>(static_cast<char*>(base), device, byte_size);
  absl::StatusOr<int64_t> available = AllocationBytesFrom(base);
  if (!available.ok()) return available.status();
  if (byte_size > *available) {
    return absl::InvalidArgumentError(absl::StrCat("byte_size ", byte_size, " exceeds the ",
                                                   *available,
                                                   " bytes of the exported allocation"));
  }
  return memory;
}

#else  // !COALESCE_WITH_CUDA

bool CudaIpcAvailable() { return false; }

absl::StatusOr<std::unique_ptr<CudaIpcMemory>> OpenCudaIpcMemory(absl::string_view, int64_t,
                                                                 int64_t) {
  return absl::UnimplementedError(
      "this build of coalesce has no CUDA: its LibTorch was built without it, so CUDA IPC "
      "memory handles cannot be opened");
}

#endif  // COALESCE_WITH_CUDA

}  // namespace coalesce
