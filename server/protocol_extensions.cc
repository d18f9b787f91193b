#include "server/protocol_extensions.h"

namespace coalesce {

const std::vector<ProtocolExtension>& ImplementedExtensions() {
  static const std::vector<ProtocolExtension>* const extensions =
      new std::vector<ProtocolExtension>{
          {"model_repository", {"RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload"}},
          {"model_repository(unload_dependents)", {"RepositoryModelUnload"}},
          {"model_configuration", {"ModelConfig"}},
          {"statistics", {"ModelStatistics"}},
          {"schedule_policy", {}},
          {"logging", {"LogSettings"}},
          {"trace", {"TraceSetting"}},
          // Shared memory: "system_shared_memory" {SystemSharedMemoryStatus, ...Register,
          // ...Unregister} and "cuda_shared_memory" {CudaSharedMemory...} go here once
          // server/shared_memory_rpcs.cc implements them.
      };
  return *extensions;
}

}  // namespace coalesce
