#include "server/torch_backend_factory.h"

#include <memory>
#include <string>
#include <utility>

namespace coalesce {

ModelRepository::BackendFactory TorchBackendFactory(const TorchBackend::Options& defaults) {
  return [defaults](const std::string& path, const ModelMetadata& metadata,
                    const std::string& device,
                    int num_workers) -> absl::StatusOr<std::unique_ptr<Backend>> {
    TorchBackend::Options options = defaults;
    if (!device.empty()) options.device = device;
    options.num_workers = num_workers;
    auto backend = TorchBackend::Load(path, metadata, options);
    if (!backend.ok()) return backend.status();
    return std::unique_ptr<Backend>(*std::move(backend));
  };
}

}  // namespace coalesce
