// InferenceService's shared-memory RPCs (Triton's system and CUDA shared-memory extensions).

#include "server/inference_service.h"

#include "absl/strings/str_cat.h"

namespace coalesce {
namespace {

absl::Status NotOffered(const char* rpc) {
  return absl::UnimplementedError(
      absl::StrCat(rpc, ": the shared-memory extension is not implemented by this server; send "
                        "tensors in raw_input_contents instead"));
}

}  // namespace

grpc::ServerUnaryReactor* InferenceService::SystemSharedMemoryStatus(
    grpc::CallbackServerContext* context, const inference::SystemSharedMemoryStatusRequest*,
    inference::SystemSharedMemoryStatusResponse*) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  return FinishNow(context, NotOffered("SystemSharedMemoryStatus"));
}

grpc::ServerUnaryReactor* InferenceService::SystemSharedMemoryRegister(
    grpc::CallbackServerContext* context, const inference::SystemSharedMemoryRegisterRequest*,
    inference::SystemSharedMemoryRegisterResponse*) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  return FinishNow(context, NotOffered("SystemSharedMemoryRegister"));
}

grpc::ServerUnaryReactor* InferenceService::SystemSharedMemoryUnregister(
    grpc::CallbackServerContext* context, const inference::SystemSharedMemoryUnregisterRequest*,
    inference::SystemSharedMemoryUnregisterResponse*) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  return FinishNow(context, NotOffered("SystemSharedMemoryUnregister"));
}

grpc::ServerUnaryReactor* InferenceService::CudaSharedMemoryStatus(
    grpc::CallbackServerContext* context, const inference::CudaSharedMemoryStatusRequest*,
    inference::CudaSharedMemoryStatusResponse*) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  return FinishNow(context, NotOffered("CudaSharedMemoryStatus"));
}

grpc::ServerUnaryReactor* InferenceService::CudaSharedMemoryRegister(
    grpc::CallbackServerContext* context, const inference::CudaSharedMemoryRegisterRequest*,
    inference::CudaSharedMemoryRegisterResponse*) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  return FinishNow(context, NotOffered("CudaSharedMemoryRegister"));
}

grpc::ServerUnaryReactor* InferenceService::CudaSharedMemoryUnregister(
    grpc::CallbackServerContext* context, const inference::CudaSharedMemoryUnregisterRequest*,
    inference::CudaSharedMemoryUnregisterResponse*) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  return FinishNow(context, NotOffered("CudaSharedMemoryUnregister"));
}

}  // namespace coalesce
