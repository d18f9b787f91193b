#include "client/shared_memory_slots.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace coalesce {
namespace {

constexpr int64_t kAlignment = 64;

int64_t AlignUp(int64_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }

void SetSlice(google::protobuf::Map<std::string, inference::InferParameter>& params,
              const std::string& region, int64_t offset, int64_t byte_size) {
  params["shared_memory_region"].set_string_param(region);
  params["shared_memory_offset"].set_int64_param(offset);
  params["shared_memory_byte_size"].set_int64_param(byte_size);
}

absl::Status Errno(const std::string& what, const std::string& key) {
  return absl::InternalError(absl::StrCat(what, " of shared-memory object '", key,
                                          "' failed: ", std::strerror(errno)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<SharedMemorySlots>> SharedMemorySlots::Create(
    const Options& options, inference::GRPCInferenceService::StubInterface& stub,
    const ClientSecurity* security, const inference::ModelInferRequest& request,
    const inference::ModelInferResponse& probe) {
  if (options.slots < 1) {
    return absl::InvalidArgumentError(absl::StrCat("slots must be >= 1; got ", options.slots));
  }
  if (request.raw_input_contents_size() != request.inputs_size()) {
    return absl::InvalidArgumentError(
        "shared memory needs a request with raw_input_contents for every input");
  }
  if (probe.raw_output_contents_size() != probe.outputs_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shared memory needs the server's raw_output_contents to size the outputs; the probe "
        "answered ",
        probe.raw_output_contents_size(), " for ", probe.outputs_size(), " outputs"));
  }
  std::unique_ptr<SharedMemorySlots> slots(
      new SharedMemorySlots(stub, security, options.rpc_timeout));
  static std::atomic<int> counter{0};
  slots->region_ = absl::StrCat(options.name_prefix, "_", getpid(), "_", counter.fetch_add(1));
  slots->key_ = absl::StrCat("/", slots->region_);

  // Slot layout: inputs, then outputs, each 64-byte aligned.
  std::vector<int64_t> input_at;
  std::vector<int64_t> output_at;
  int64_t cursor = 0;
  for (const std::string& bytes : request.raw_input_contents()) {
    input_at.push_back(cursor);
    cursor += AlignUp(static_cast<int64_t>(bytes.size()));
  }
  for (const std::string& bytes : probe.raw_output_contents()) {
    output_at.push_back(cursor);
    cursor += AlignUp(std::max<int64_t>(static_cast<int64_t>(bytes.size()), 1));
  }
  slots->slot_bytes_ = cursor;
  slots->bytes_ = static_cast<size_t>(cursor * options.slots);

  const int fd = shm_open(slots->key_.c_str(), O_RDWR | O_CREAT | O_EXCL, S_IRUSR | S_IWUSR);
  if (fd < 0) return Errno("shm_open", slots->key_);
  const bool sized = ftruncate(fd, static_cast<off_t>(slots->bytes_)) == 0;
  void* mapped = sized ? mmap(nullptr, slots->bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                       : MAP_FAILED;
  const int error = errno;
  close(fd);
  if (mapped == MAP_FAILED) {
    shm_unlink(slots->key_.c_str());
    errno = error;
    return Errno(sized ? "mmap" : "ftruncate", slots->key_);
  }
  slots->data_ = static_cast<char*>(mapped);

  inference::ModelInferRequest shared = request;
  shared.clear_raw_input_contents();
  shared.clear_outputs();
  for (int s = 0; s < options.slots; ++s) {
    const int64_t base = s * slots->slot_bytes_;
    inference::ModelInferRequest slot_request = shared;
    for (int i = 0; i < request.inputs_size(); ++i) {
      const std::string& bytes = request.raw_input_contents(i);
      std::memcpy(slots->data_ + base + input_at[i], bytes.data(), bytes.size());
      SetSlice(*slot_request.mutable_inputs(i)->mutable_parameters(), slots->region_,
               base + input_at[i], static_cast<int64_t>(bytes.size()));
    }
    for (int o = 0; o < probe.outputs_size(); ++o) {
      auto* output = slot_request.add_outputs();
      output->set_name(probe.outputs(o).name());
      SetSlice(*output->mutable_parameters(), slots->region_, base + output_at[o],
               std::max<int64_t>(static_cast<int64_t>(probe.raw_output_contents(o).size()), 1));
    }
    slots->requests_.push_back(std::move(slot_request));
  }

  inference::SystemSharedMemoryRegisterRequest registration;
  registration.set_name(slots->region_);
  registration.set_key(slots->key_);
  registration.set_offset(0);
  registration.set_byte_size(slots->bytes_);
  inference::SystemSharedMemoryRegisterResponse response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options.rpc_timeout));
  if (security != nullptr) security->Apply(context);
  grpc::Status status = stub.SystemSharedMemoryRegister(&context, registration, &response);
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        absl::StrCat("SystemSharedMemoryRegister of '", slots->key_,
                                     "' failed: ", status.error_message()));
  }
  slots->registered_ = true;
  return slots;
}

SharedMemorySlots::~SharedMemorySlots() {
  if (registered_) {
    inference::SystemSharedMemoryUnregisterRequest request;
    request.set_name(region_);
    inference::SystemSharedMemoryUnregisterResponse response;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + rpc_timeout_));
    if (security_ != nullptr) security_->Apply(context);
    stub_.SystemSharedMemoryUnregister(&context, request, &response);
  }
  if (data_ != nullptr) {
    munmap(data_, bytes_);
    shm_unlink(key_.c_str());
  }
}

}  // namespace coalesce
