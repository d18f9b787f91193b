#include "server/malloc_arenas.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace coalesce {

std::string CapMallocArenas(int max_arenas) {
#if defined(__GLIBC__)
  if (const char* env = std::getenv("MALLOC_ARENA_MAX"); env != nullptr && *env != '\0') {
    return absl::StrCat("malloc arenas: at most ", env, " (MALLOC_ARENA_MAX)");
  }
  if (max_arenas <= 0) return "malloc arenas: glibc's default (8 per core)";
  if (mallopt(M_ARENA_MAX, max_arenas) != 1) {
    return absl::StrCat("malloc arenas: glibc refused a cap of ", max_arenas, "; its default holds");
  }
  return absl::StrCat("malloc arenas: at most ", max_arenas, " (--malloc_arena_max)");
#else
  (void)max_arenas;
  return "malloc arenas: not glibc; the system allocator's own policy";
#endif
}

}  // namespace coalesce
