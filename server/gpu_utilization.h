#ifndef COALESCE_SERVER_GPU_UTILIZATION_H_
#define COALESCE_SERVER_GPU_UTILIZATION_H_

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace coalesce {

// NVML's utilisation of the GPUs that models run on, as the gauge
// coalesce_gpu_utilization_ratio{device="cuda:N"}: the share of NVML's last sample period (1/6 s
// to 1 s, by product) in which at least one kernel ran on the GPU, from any process. It is the
// driver's view beside coalesce's own (coalesce_device_busy_ratio, execution/device_busy.h).
//
// NVML (libnvidia-ml.so.1) ships with the NVIDIA driver, not with CUDA's toolkit, and is loaded
// at run time with dlopen, so that a build on a machine without the driver runs unchanged: where
// it does not load, the gauge is absent and nothing else changes.
//
// "cuda:N" is the Nth device CUDA sees. With CUDA_VISIBLE_DEVICES unset that is NVML's device N
// (NVML enumerates by PCI bus; CUDA does too with CUDA_DEVICE_ORDER=PCI_BUS_ID, and on a host of
// identical GPUs also by default). With it set, the Nth entry names the GPU: an index (as above)
// or a UUID ("GPU-..."). A MIG instance ("MIG-...") has no utilisation in NVML, so it gets no
// gauge.
//
// Thread-safe.
class GpuUtilization {
 public:
  // The NVML entry points used, with NVML's C types spelt out so that no NVML header is needed:
  // nvmlReturn_t is an int-sized enum (0 is NVML_SUCCESS), nvmlDevice_t an opaque pointer.
  struct Nvml {
    using Device = struct nvmlDevice_st*;
    struct Utilization {
      unsigned int gpu;     // Percent of the sample period a kernel ran.
      unsigned int memory;  // Percent of it device memory was read or written.
    };
    int (*init)() = nullptr;                                      // nvmlInit_v2
    int (*shutdown)() = nullptr;                                  // nvmlShutdown
    const char* (*error_string)(int) = nullptr;                   // nvmlErrorString
    int (*device_by_index)(unsigned int, Device*) = nullptr;      // nvmlDeviceGetHandleByIndex_v2
    int (*device_by_uuid)(const char*, Device*) = nullptr;        // nvmlDeviceGetHandleByUUID
    int (*utilization_rates)(Device, Utilization*) = nullptr;     // nvmlDeviceGetUtilizationRates
  };

  // Where NVML's device for a "cuda:N" device is: its NVML index, or its UUID.
  using NvmlDeviceRef = std::variant<unsigned int, std::string>;
  // The NVML device of `device` ("cuda:N"), given CUDA_VISIBLE_DEVICES (nullopt: unset).
  // INVALID_ARGUMENT for a device that is not "cuda:N"; NOT_FOUND when CUDA_VISIBLE_DEVICES
  // names no such device or names a MIG instance.
  static absl::StatusOr<NvmlDeviceRef> NvmlDeviceFor(
      absl::string_view device, const std::optional<std::string>& cuda_visible_devices);

  // dlopens `library`, finds the entry points and initialises NVML (Create()). UNAVAILABLE,
  // saying why, where the library is missing (no NVIDIA driver), lacks an entry point or
  // fails to initialise.
  static absl::StatusOr<std::unique_ptr<GpuUtilization>> Load(
      const std::string& library, prometheus::Registry& registry,
      std::optional<std::string> cuda_visible_devices);

  // Initialises NVML through `nvml` (every entry point set) and registers the gauge in
  // `registry`. `library`, if not null, is the dlopen handle `nvml` came from, closed at
  // destruction. UNAVAILABLE, with NVML's error, if initialisation fails.
  static absl::StatusOr<std::unique_ptr<GpuUtilization>> Create(
      const Nvml& nvml, prometheus::Registry& registry,
      std::optional<std::string> cuda_visible_devices, void* library = nullptr);

  // Shuts NVML down and closes the library.
  ~GpuUtilization();
  GpuUtilization(const GpuUtilization&) = delete;
  GpuUtilization& operator=(const GpuUtilization&) = delete;

  // Sets the gauge of every "cuda:N" device among `devices` to NVML's utilisation of its GPU
  // now; other devices are ignored. A device NVML cannot answer for (no such GPU, a MIG
  // instance, an error) gets no gauge, and a warning once.
  void Sample(const std::vector<std::string>& devices);

 private:
  GpuUtilization(const Nvml& nvml, prometheus::Registry& registry,
                 std::optional<std::string> cuda_visible_devices, void* library);
  // NVML's error text for `code`.
  std::string Error(int code) const;
  // The NVML handle of `device`, found once.
  absl::StatusOr<Nvml::Device> Handle(const std::string& device)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const Nvml nvml_;
  const std::optional<std::string> cuda_visible_devices_;
  void* const library_;
  prometheus::Family<prometheus::Gauge>& family_;

  absl::Mutex mu_;
  std::map<std::string, Nvml::Device> handles_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, prometheus::Gauge*> gauges_ ABSL_GUARDED_BY(mu_);
  // Devices already warned about.
  std::set<std::string> warned_ ABSL_GUARDED_BY(mu_);
};

}  // namespace coalesce

#endif  // COALESCE_SERVER_GPU_UTILIZATION_H_
