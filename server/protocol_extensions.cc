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
          // "system_shared_memory" and "cuda_shared_memory" depend on how the server runs (a
          // region limit of 0 turns both off; CUDA needs a CUDA build): ServerMetadata adds them
          // where they are served (InferenceService::ServedExtensions).
      };
  return *extensions;
}

}  // namespace coalesce
