#ifndef COALESCE_SERVER_SHARED_MEMORY_CHECKS_H_
#define COALESCE_SERVER_SHARED_MEMORY_CHECKS_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace coalesce {

// The checks of Triton's shared-memory extension that need no memory: which keys may be opened,
// which region names are accepted, and whether a slice lies inside a region. Pure functions,
// thread-safe. Their messages start with Triton's wording where Triton has a fixed text, so that
// clients written against Triton read the same errors.

// Longest key, not counting its leading '/': NAME_MAX, the longest file name under /dev/shm.
inline constexpr size_t kMaxSharedMemoryKeyLength = 255;
// Longest region name.
inline constexpr size_t kMaxSharedMemoryRegionNameLength = 256;

// OK if `key` names a POSIX shared-memory object directly under /dev/shm: an optional single
// leading '/', then 1 to kMaxSharedMemoryKeyLength characters with no '/', no "..", no NUL or
// other control character, and not ".". INVALID_ARGUMENT naming the region and the key
// otherwise. (A '/' or ".." could reach outside /dev/shm; a NUL would cut the key short.)
absl::Status CheckSharedMemoryKey(absl::string_view region, absl::string_view key);

// OK if `name` can name a region: 1 to kMaxSharedMemoryRegionNameLength bytes, no NUL.
// (Empty means "every region" to Status and Unregister.)
absl::Status CheckSharedMemoryRegionName(absl::string_view name);

// At registration: OK if [offset, offset + byte_size) lies inside an object of `object_bytes`
// and byte_size > 0. Never overflows, whatever the values.
absl::Status CheckRegistrationFits(absl::string_view region, absl::string_view key,
                                   uint64_t offset, uint64_t byte_size, uint64_t object_bytes);

// For a tensor: OK if [offset, offset + byte_size) lies inside a region of `region_bytes`.
// `tensor` names the tensor for the message ("input 'INPUT0'"). INVALID_ARGUMENT naming the
// tensor, the region, the offset, the size and the region's size otherwise: "Invalid offset"
// for an offset that is negative or past the end, "Invalid offset + byte size" for a size that
// is negative or runs past the end (however large: the check cannot overflow).
absl::Status CheckSliceInRegion(absl::string_view tensor, absl::string_view region,
                                int64_t region_bytes, int64_t offset, int64_t byte_size);

// OK if gRPC's `peer` ("ipv4:127.0.0.1:5000", "ipv6:[::1]:5000", "unix:/run/x.sock") is a client
// on this machine: loopback or a Unix socket. The regions a client registers are this machine's
// /dev/shm, so only such a client can mean them; a remote client could otherwise have the server
// read or overwrite any object its user can open. PERMISSION_DENIED naming `rpc` and the peer.
absl::Status CheckLocalPeer(absl::string_view rpc, absl::string_view peer);

}  // namespace coalesce

#endif  // COALESCE_SERVER_SHARED_MEMORY_CHECKS_H_
