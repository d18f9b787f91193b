#include "execution/torch/torch_device_faults.h"

#include <algorithm>
#include <atomic>

#include "execution/torch/torch_backend_impl.h"

namespace coalesce {

void InjectDeviceFailures(TorchBackend& backend, int n) {
  TorchBackendInternals::Of(backend).injected_failures.store(std::max(0, n),
                                                            std::memory_order_relaxed);
}

}  // namespace coalesce
