#include "server/gpu_utilization.h"

#include <dlfcn.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "spdlog/spdlog.h"

namespace coalesce {
namespace {

constexpr int kNvmlSuccess = 0;

// `symbol` of `library` as a function pointer of `fn`'s type; false if it is missing.
template <typename Fn>
bool Find(void* library, const char* symbol, Fn& fn) {
  fn = reinterpret_cast<Fn>(dlsym(library, symbol));
  return fn != nullptr;
}

}  // namespace

absl::StatusOr<GpuUtilization::NvmlDeviceRef> GpuUtilization::NvmlDeviceFor(
    absl::string_view device, const std::optional<std::string>& cuda_visible_devices) {
  absl::string_view number = device;
  unsigned int index = 0;
  if (!absl::ConsumePrefix(&number, "cuda:") || !absl::SimpleAtoi(number, &index)) {
    return absl::InvalidArgumentError(absl::StrCat("'", device, "' is not a CUDA device"));
  }
  if (!cuda_visible_devices.has_value()) return index;
  std::vector<std::string> visible = absl::StrSplit(*cuda_visible_devices, ',');
  if (index >= visible.size()) {
    return absl::NotFoundError(absl::StrCat("CUDA_VISIBLE_DEVICES='", *cuda_visible_devices,
                                            "' names no device ", index));
  }
  const std::string entry(absl::StripAsciiWhitespace(visible[index]));
  unsigned int nvml_index = 0;
  if (absl::SimpleAtoi(entry, &nvml_index)) return nvml_index;
  if (absl::StartsWith(entry, "GPU-")) return entry;
  return absl::NotFoundError(absl::StrCat("CUDA_VISIBLE_DEVICES entry '", entry,
                                          "' is no GPU NVML reports utilisation for"));
}

absl::StatusOr<std::unique_ptr<GpuUtilization>> GpuUtilization::Load(
    const std::string& library, prometheus::Registry& registry,
    std::optional<std::string> cuda_visible_devices) {
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* error = dlerror();
    return absl::UnavailableError(
        absl::StrCat("cannot load ", library, ": ", error != nullptr ? error : "unknown error"));
  }
  Nvml nvml;
  const bool found = Find(handle, "nvmlInit_v2", nvml.init) &&
                     Find(handle, "nvmlShutdown", nvml.shutdown) &&
                     Find(handle, "nvmlErrorString", nvml.error_string) &&
                     Find(handle, "nvmlDeviceGetHandleByIndex_v2", nvml.device_by_index) &&
                     Find(handle, "nvmlDeviceGetHandleByUUID", nvml.device_by_uuid) &&
                     Find(handle, "nvmlDeviceGetUtilizationRates", nvml.utilization_rates);
  if (!found) {
    dlclose(handle);
    return absl::UnavailableError(absl::StrCat(library, " lacks an NVML entry point"));
  }
  absl::StatusOr<std::unique_ptr<GpuUtilization>> created =
      Create(nvml, registry, std::move(cuda_visible_devices), handle);
  if (!created.ok()) dlclose(handle);
  return created;
}

absl::StatusOr<std::unique_ptr<GpuUtilization>> GpuUtilization::Create(
    const Nvml& nvml, prometheus::Registry& registry,
    std::optional<std::string> cuda_visible_devices, void* library) {
  if (int code = nvml.init(); code != kNvmlSuccess) {
    return absl::UnavailableError(absl::StrCat("nvmlInit failed: ", nvml.error_string(code)));
  }
  return std::unique_ptr<GpuUtilization>(
      new GpuUtilization(nvml, registry, std::move(cuda_visible_devices), library));
}

GpuUtilization::GpuUtilization(const Nvml& nvml, prometheus::Registry& registry,
                               std::optional<std::string> cuda_visible_devices, void* library)
    : nvml_(nvml),
      cuda_visible_devices_(std::move(cuda_visible_devices)),
      library_(library),
      family_(prometheus::BuildGauge()
                  .Name("coalesce_gpu_utilization_ratio")
                  .Help("NVML's utilisation of the GPU (0 to 1): the share of its last sample "
                        "period (1/6 s to 1 s, by product) in which a kernel ran on it, from any "
                        "process. Sampled at scrape time; absent where NVML does not load.")
                  .Register(registry)) {}

GpuUtilization::~GpuUtilization() {
  nvml_.shutdown();
  if (library_ != nullptr) dlclose(library_);
}

std::string GpuUtilization::Error(int code) const {
  const char* text = nvml_.error_string(code);
  return text != nullptr ? text : absl::StrCat("NVML error ", code);
}

absl::StatusOr<GpuUtilization::Nvml::Device> GpuUtilization::Handle(const std::string& device) {
  if (auto it = handles_.find(device); it != handles_.end()) return it->second;
  absl::StatusOr<NvmlDeviceRef> ref = NvmlDeviceFor(device, cuda_visible_devices_);
  if (!ref.ok()) return ref.status();
  Nvml::Device handle = nullptr;
  const int code = std::holds_alternative<unsigned int>(*ref)
                       ? nvml_.device_by_index(std::get<unsigned int>(*ref), &handle)
                       : nvml_.device_by_uuid(std::get<std::string>(*ref).c_str(), &handle);
  if (code != kNvmlSuccess) {
    return absl::NotFoundError(absl::StrCat("NVML has no device for ", device, ": ", Error(code)));
  }
  handles_[device] = handle;
  return handle;
}

void GpuUtilization::Sample(const std::vector<std::string>& devices) {
  absl::MutexLock lock(&mu_);
  for (const std::string& device : devices) {
    if (!absl::StartsWith(device, "cuda:")) continue;
    absl::StatusOr<Nvml::Device> handle = Handle(device);
    Nvml::Utilization utilization{};
    absl::Status status = handle.status();
    if (status.ok()) {
      if (int code = nvml_.utilization_rates(*handle, &utilization); code != kNvmlSuccess) {
        status = absl::UnavailableError(Error(code));
      }
    }
    prometheus::Gauge*& gauge = gauges_[device];
    if (!status.ok()) {
      // Absent rather than stale.
      if (gauge != nullptr) family_.Remove(gauge);
      gauge = nullptr;
      if (warned_.insert(device).second) {
        spdlog::warn("no NVML utilisation for {}: {}", device, std::string(status.message()));
      }
      continue;
    }
    if (gauge == nullptr) gauge = &family_.Add({{"device", device}});
    gauge->Set(utilization.gpu / 100.0);
  }
}

}  // namespace coalesce
