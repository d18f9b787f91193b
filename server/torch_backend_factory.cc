#include "server/torch_backend_factory.h"

#include <memory>
#include <string>
#include <utility>

namespace coalesce {

ModelRepository::BackendFactory TorchBackendFactory(const TorchBackend::Options& defaults) {
  return [defaults](const std::string& path, const ModelMetadata& metadata,
                    const ModelRepository::BackendSettings& settings)
             -> absl::StatusOr<std::unique_ptr<Backend>> {
    TorchBackend::Options options = defaults;
    if (settings.device.has_value()) options.device = settings.device;
    if (settings.gpu >= 0) options.cuda_device = settings.gpu;
    options.num_workers = settings.num_workers;
    if (settings.cuda_graphs) options.cuda_graphs = true;
    auto backend = TorchBackend::Load(path, metadata, options);
    if (!backend.ok()) return backend.status();
    return std::unique_ptr<Backend>(*std::move(backend));
  };
}

}  // namespace coalesce
