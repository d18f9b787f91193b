#ifndef COALESCE_SERVER_MALLOC_ARENAS_H_
#define COALESCE_SERVER_MALLOC_ARENAS_H_

#include <string>

namespace coalesce {

// Caps glibc's malloc arenas at `max_arenas` for the rest of the process, unless the operator set
// MALLOC_ARENA_MAX in the environment (which glibc has already applied, and which wins). glibc
// gives each new thread an arena of its own up to 8 per core; gRPC's and the executor's threads
// come and go, so on a many-core host resident memory creeps for hours as arenas fill; two
// arenas held the soak's bound at the same throughput (docs/operations.md). `max_arenas` 0
// leaves glibc's default. Call before starting threads: arenas
// already made are kept. Returns a line for the log saying what is in force. Not glibc (macOS):
// does nothing and says so.
std::string CapMallocArenas(int max_arenas);

}  // namespace coalesce

#endif  // COALESCE_SERVER_MALLOC_ARENAS_H_
