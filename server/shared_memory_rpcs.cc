// InferenceService's shared-memory RPCs (Triton's system and CUDA shared-memory extensions).
// The regions live in the SharedMemoryManager set with set_shared_memory(); requests name them
// through SharedMemoryTensors (see Infer()).

#include "absl/strings/str_cat.h"
#include "engine/client_text.h"
#include "server/cuda_shared_memory_region.h"
#include "server/inference_service.h"
#include "server/shared_memory_checks.h"
#include "server/shared_memory_manager.h"
#include "server/system_shared_memory_region.h"
#include "spdlog/spdlog.h"

namespace coalesce {
namespace {

absl::Status NoManager(const char* rpc) {
  return absl::UnimplementedError(
      absl::StrCat(rpc, ": shared memory is not enabled on this server; send tensors in "
                        "raw_input_contents instead"));
}

// CUDA regions need a CUDA build (an opener from execution/torch). Without one the extension is not
// listed and registering says why; Status (no regions) and Unregister (nothing to do) still
// answer OK, as Triton's do, because its clients call them to clean up before using system
// shared memory (simple_grpc_shm_client.py starts with unregister_cuda_shared_memory()).
absl::Status NoCuda(const char* rpc) {
  return absl::UnimplementedError(absl::StrCat(
      rpc, ": the cuda_shared_memory extension is not implemented here: this build of coalesce "
           "has no CUDA (LibTorch without CUDA); use system shared memory or raw_input_contents"));
}

}  // namespace

grpc::ServerUnaryReactor* InferenceService::SystemSharedMemoryStatus(
    grpc::CallbackServerContext* context, const inference::SystemSharedMemoryStatusRequest* request,
    inference::SystemSharedMemoryStatusResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  if (shared_memory_ == nullptr) return FinishNow(context, NoManager("SystemSharedMemoryStatus"));
  auto regions = shared_memory_->Status(SharedMemoryKind::kSystem, request->name());
  if (!regions.ok()) return FinishNow(context, regions.status());
  for (const SharedMemoryRegion::Description& d : *regions) {
    auto& status = (*response->mutable_regions())[d.name];
    status.set_name(d.name);
    status.set_key(d.key);
    status.set_offset(d.offset);
    status.set_byte_size(static_cast<uint64_t>(d.byte_size));
  }
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::SystemSharedMemoryRegister(
    grpc::CallbackServerContext* context,
    const inference::SystemSharedMemoryRegisterRequest* request,
    inference::SystemSharedMemoryRegisterResponse*) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  if (shared_memory_ == nullptr) return FinishNow(context, NoManager("SystemSharedMemoryRegister"));
  if (absl::Status s = CheckLocalPeer("SystemSharedMemoryRegister", context->peer()); !s.ok()) {
    return FinishNow(context, s);
  }
  // Refused before anything is opened when the name is taken or there is no room.
  if (absl::Status s = shared_memory_->CheckCanAdd(request->name()); !s.ok()) {
    return FinishNow(context, s);
  }
  auto region = SystemSharedMemoryRegion::Open(request->name(), request->key(),
                                               request->offset(), request->byte_size());
  if (!region.ok()) return FinishNow(context, region.status());
  absl::Status added = shared_memory_->Add(*std::move(region));
  if (added.ok()) {
    spdlog::info("registered system shared memory region '{}' (key '{}', offset {}, {} bytes)",
                 ClientText(request->name()), ClientText(request->key()), request->offset(),
                 request->byte_size());
  }
  return FinishNow(context, added);
}

grpc::ServerUnaryReactor* InferenceService::SystemSharedMemoryUnregister(
    grpc::CallbackServerContext* context,
    const inference::SystemSharedMemoryUnregisterRequest* request,
    inference::SystemSharedMemoryUnregisterResponse*) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  if (shared_memory_ == nullptr) {
    return FinishNow(context, NoManager("SystemSharedMemoryUnregister"));
  }
  const int removed = shared_memory_->Unregister(SharedMemoryKind::kSystem, request->name());
  spdlog::debug("unregistered {} system shared memory region(s) ('{}')", removed,
                ClientText(request->name()));
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::CudaSharedMemoryStatus(
    grpc::CallbackServerContext* context, const inference::CudaSharedMemoryStatusRequest* request,
    inference::CudaSharedMemoryStatusResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  if (shared_memory_ == nullptr) return FinishNow(context, NoManager("CudaSharedMemoryStatus"));
  auto regions = shared_memory_->Status(SharedMemoryKind::kCuda, request->name());
  if (!regions.ok()) return FinishNow(context, regions.status());
  for (const SharedMemoryRegion::Description& d : *regions) {
    auto& status = (*response->mutable_regions())[d.name];
    status.set_name(d.name);
    status.set_device_id(static_cast<uint64_t>(d.device_id));
    status.set_byte_size(static_cast<uint64_t>(d.byte_size));
  }
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::CudaSharedMemoryRegister(
    grpc::CallbackServerContext* context, const inference::CudaSharedMemoryRegisterRequest* request,
    inference::CudaSharedMemoryRegisterResponse*) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  if (shared_memory_ == nullptr) return FinishNow(context, NoManager("CudaSharedMemoryRegister"));
  if (absl::Status s = CheckLocalPeer("CudaSharedMemoryRegister", context->peer()); !s.ok()) {
    return FinishNow(context, s);
  }
  if (!shared_memory_->cuda_opener()) return FinishNow(context, NoCuda("CudaSharedMemoryRegister"));
  if (shared_memory_->cuda_opener()) {
    if (absl::Status s = shared_memory_->CheckCanAdd(request->name()); !s.ok()) {
      return FinishNow(context, s);
    }
  }
  auto region =
      CudaSharedMemoryRegion::Open(shared_memory_->cuda_opener(), request->name(),
                                   request->raw_handle(), request->device_id(),
                                   request->byte_size());
  if (!region.ok()) return FinishNow(context, region.status());
  absl::Status added = shared_memory_->Add(*std::move(region));
  if (added.ok()) {
    spdlog::info("registered CUDA shared memory region '{}' (device {}, {} bytes)",
                 ClientText(request->name()), request->device_id(), request->byte_size());
  }
  return FinishNow(context, added);
}

grpc::ServerUnaryReactor* InferenceService::CudaSharedMemoryUnregister(
    grpc::CallbackServerContext* context,
    const inference::CudaSharedMemoryUnregisterRequest* request,
    inference::CudaSharedMemoryUnregisterResponse*) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  if (shared_memory_ == nullptr) {
    return FinishNow(context, NoManager("CudaSharedMemoryUnregister"));
  }
  shared_memory_->Unregister(SharedMemoryKind::kCuda, request->name());
  return FinishNow(context, absl::OkStatus());
}

}  // namespace coalesce
