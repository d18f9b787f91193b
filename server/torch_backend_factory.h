#ifndef COALESCE_SERVER_TORCH_BACKEND_FACTORY_H_
#define COALESCE_SERVER_TORCH_BACKEND_FACTORY_H_

#include "execution/torch/torch_backend.h"
#include "repository/model_repository.h"

namespace coalesce {

// How the repository turns a model file into a backend: TorchBackend::Load() with `defaults`
// (the server's --device, --precision, --max_precision_error), the config's device and
// instance count taking precedence. Lives outside execution/torch/ because the repository's header
// brings protobuf, which a Torch file must not see.
ModelRepository::BackendFactory TorchBackendFactory(const TorchBackend::Options& defaults);

}  // namespace coalesce

#endif  // COALESCE_SERVER_TORCH_BACKEND_FACTORY_H_
