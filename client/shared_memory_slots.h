#ifndef COALESCE_CLIENT_SHARED_MEMORY_SLOTS_H_
#define COALESCE_CLIENT_SHARED_MEMORY_SLOTS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/client_security.h"
#include "proto/inference.grpc.pb.h"
#include "proto/inference.pb.h"

namespace coalesce {

// The client side of Triton's system shared-memory extension, for a load generator: one POSIX
// shared-memory object cut into `slots` equal slots, each holding one request's inputs and room
// for its outputs, registered with the server as one region. Slot i's request names only its
// own slices, so that requests in flight at once never share bytes.
//
// The server must run on this machine (it maps the same /dev/shm object).
//
// Not thread-safe; the requests it hands out are constant after Create().
class SharedMemorySlots {
 public:
  struct Options {
    // Region name and /dev/shm key stem; the process id and a counter make them unique.
    std::string name_prefix = "coalesce_bench";
    // Requests that may be in flight at once. >= 1.
    int slots = 1;
    // Bound on each registration RPC.
    absl::Duration rpc_timeout = absl::Seconds(10);
  };

  // Creates and sizes the object, copies `request`'s raw_input_contents into every slot, and
  // registers it through `stub` (with `security`, which may be null). Each output of `probe`
  // (a response to `request`) gets a slice of the size the probe's raw_output_contents had.
  // INVALID_ARGUMENT when `request` has no raw_input_contents for every input or `probe` no raw
  // contents for every output; the object's creation errors (from errno) or the registration's
  // gRPC status otherwise, naming the key.
  static absl::StatusOr<std::unique_ptr<SharedMemorySlots>> Create(
      const Options& options, inference::GRPCInferenceService::StubInterface& stub,
      const ClientSecurity* security, const inference::ModelInferRequest& request,
      const inference::ModelInferResponse& probe);

  // Unregisters the region (best effort), unmaps and unlinks the object.
  ~SharedMemorySlots();
  SharedMemorySlots(const SharedMemorySlots&) = delete;
  SharedMemorySlots& operator=(const SharedMemorySlots&) = delete;

  int slots() const { return static_cast<int>(requests_.size()); }
  // The request of `slot`: its inputs and outputs name the slot's slices, and it carries no
  // raw_input_contents.
  const inference::ModelInferRequest& request(int slot) const { return requests_[slot]; }
  const std::string& region() const { return region_; }
  const std::string& key() const { return key_; }
  int64_t slot_bytes() const { return slot_bytes_; }
  // The bytes of `slot`, for checking what the server wrote there.
  const char* slot_data(int slot) const { return data_ + slot * slot_bytes_; }

 private:
  SharedMemorySlots(inference::GRPCInferenceService::StubInterface& stub,
                    const ClientSecurity* security, absl::Duration rpc_timeout)
      : stub_(stub), security_(security), rpc_timeout_(rpc_timeout) {}

  inference::GRPCInferenceService::StubInterface& stub_;
  const ClientSecurity* const security_;
  const absl::Duration rpc_timeout_;
  std::string region_;
  std::string key_;
  char* data_ = nullptr;
  size_t bytes_ = 0;
  int64_t slot_bytes_ = 0;
  bool registered_ = false;
  std::vector<inference::ModelInferRequest> requests_;
};

}  // namespace coalesce

#endif  // COALESCE_CLIENT_SHARED_MEMORY_SLOTS_H_
