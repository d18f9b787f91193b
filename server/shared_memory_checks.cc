#include "server/shared_memory_checks.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/client_text.h"

namespace coalesce {
namespace {

absl::Status BadKey(absl::string_view region, absl::string_view key, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("cannot register shared memory region '",
                                                 ClientText(region), "' - invalid shm key '",
                                                 ClientText(key), "': ", why));
}

}  // namespace

absl::Status CheckSharedMemoryKey(absl::string_view region, absl::string_view key) {
  absl::string_view name = key;
  if (!name.empty() && name.front() == '/') name.remove_prefix(1);
  if (name.empty()) {
    return BadKey(region, key, "expected the name of an object in /dev/shm, such as '/input0'");
  }
  if (name.size() > kMaxSharedMemoryKeyLength) {
    return BadKey(region, key,
                  absl::StrCat("it has ", name.size(), " characters after the leading '/', at most ",
                               kMaxSharedMemoryKeyLength, " are allowed"));
  }
  if (name.find('/') != absl::string_view::npos) {
    return BadKey(region, key,
                  "only a single leading '/' is allowed (keys name objects directly in /dev/shm)");
  }
  if (name == "." || name.find("..") != absl::string_view::npos) {
    return BadKey(region, key, "'.' and '..' are not allowed");
  }
  for (char c : name) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return BadKey(region, key, "control characters (NUL included) are not allowed");
    }
  }
  return absl::OkStatus();
}

absl::Status CheckSharedMemoryRegionName(absl::string_view name) {
  if (name.empty()) {
    return absl::InvalidArgumentError("shared memory region name must not be empty");
  }
  if (name.size() > kMaxSharedMemoryRegionNameLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("shared memory region name has ", name.size(), " bytes, at most ",
                     kMaxSharedMemoryRegionNameLength, " are allowed"));
  }
  if (name.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("shared memory region name '", ClientText(name), "' holds a NUL byte"));
  }
  return absl::OkStatus();
}

absl::Status CheckRegistrationFits(absl::string_view region, absl::string_view key,
                                   uint64_t offset, uint64_t byte_size, uint64_t object_bytes) {
  if (byte_size == 0) {
    return absl::InvalidArgumentError(absl::StrCat("failed to register shared memory region '",
                                                   ClientText(region),
                                                   "': invalid args: byte_size is 0"));
  }
  // offset + byte_size > object_bytes, written so that it cannot wrap.
  if (offset > object_bytes || byte_size > object_bytes - offset) {
    return absl::InvalidArgumentError(absl::StrCat(
        "failed to register shared memory region '", ClientText(region), "': invalid args: offset ",
        offset, " + byte_size ", byte_size, " exceeds the ", object_bytes,
        " bytes of shared-memory object '", ClientText(key), "'"));
  }
  return absl::OkStatus();
}

absl::Status CheckSliceInRegion(absl::string_view tensor, absl::string_view region,
                                int64_t region_bytes, int64_t offset, int64_t byte_size) {
  auto detail = [&] {
    return absl::StrCat(" (", tensor, ": offset ", offset, ", byte_size ", byte_size,
                        "; the region holds ", region_bytes, " bytes)");
  };
  if (offset < 0 || offset > region_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("Invalid offset for shared memory region: '",
                                                   ClientText(region), "'", detail()));
  }
  // offset + byte_size > region_bytes, written so that it cannot overflow (0 <= offset <=
  // region_bytes here).
  if (byte_size < 0 || byte_size > region_bytes - offset) {
    return absl::InvalidArgumentError(
        absl::StrCat("Invalid offset + byte size for shared memory region: '", ClientText(region),
                     "'", detail()));
  }
  return absl::OkStatus();
}

absl::Status CheckLocalPeer(absl::string_view rpc, absl::string_view peer) {
  for (absl::string_view local : {"ipv4:127.", "ipv6:[::1]:", "ipv6:[::ffff:127.", "unix:",
                                  "unix-abstract:"}) {
    if (absl::StartsWith(peer, local)) return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat(
      rpc, ": shared memory can be registered only by a client on this machine (loopback or a "
           "Unix socket), and this call comes from '",
      ClientText(peer), "'; send tensors in raw_input_contents instead"));
}

}  // namespace coalesce
