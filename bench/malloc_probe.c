// An LD_PRELOAD probe for soaks (bench/cpu-soak.sh): every PROBE_S seconds (default 5) it appends
// to PROBE_OUT one line of the process's resident memory (all, anonymous, file-backed), threads,
// open descriptors and glibc's malloc totals (mallinfo2: heap size, mmapped, in use, free, free
// at the top of the main heap), and malloc_info()'s XML every 6th time to PROBE_OUT.xml. In use
// flat while resident memory rises says the allocator holds free memory, not a leak.
//
//   gcc -O2 -shared -fPIC -o build/malloc_probe.so bench/malloc_probe.c -lpthread
#define _GNU_SOURCE
#include <dirent.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long status_kb(const char* key) {
  FILE* f = fopen("/proc/self/status", "r");
  char line[256];
  long v = -1;
  size_t n = strlen(key);
  while (f && fgets(line, sizeof line, f)) {
    if (strncmp(line, key, n) == 0) { v = atol(line + n); break; }
  }
  if (f) fclose(f);
  return v;
}
static int count_fds(void) {
  DIR* d = opendir("/proc/self/fd");
  int n = 0;
  struct dirent* e;
  while (d && (e = readdir(d))) n++;
  if (d) closedir(d);
  return n - 2;
}
static void* run(void* arg) {
  (void)arg;
  const char* out = getenv("PROBE_OUT");
  int every = getenv("PROBE_S") ? atoi(getenv("PROBE_S")) : 5;
  char xml[512];
  snprintf(xml, sizeof xml, "%s.xml", out);
  sleep(3);  // after main() capped the arenas
  FILE* f = fopen(out, "w");
  FILE* x = fopen(xml, "w");
  fprintf(f, "t_s rss_kb anon_kb file_kb threads fds arena_kb mmap_kb inuse_kb free_kb topfree_kb\n");
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0;; ++i) {
    struct mallinfo2 m = mallinfo2();
    clock_gettime(CLOCK_MONOTONIC, &t);
    fprintf(f, "%ld %ld %ld %ld %ld %d %zu %zu %zu %zu %zu\n", (long)(t.tv_sec - t0.tv_sec),
            status_kb("VmRSS:"), status_kb("RssAnon:"), status_kb("RssFile:"),
            status_kb("Threads:"), count_fds(), m.arena / 1024, m.hblkhd / 1024,
            m.uordblks / 1024, m.fordblks / 1024, m.keepcost / 1024);
    fflush(f);
    if (i % 6 == 0) {
      fprintf(x, "<sample t=\"%ld\">\n", (long)(t.tv_sec - t0.tv_sec));
      malloc_info(0, x);
      fprintf(x, "</sample>\n");
      fflush(x);
    }
    sleep(every);
  }
  return NULL;
}
__attribute__((constructor)) static void start(void) {
  if (!getenv("PROBE_OUT")) return;
  // Signals stay with the process's own threads (the server sigwait()s for them).
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  pthread_t th;
  pthread_create(&th, NULL, run, NULL);
  pthread_detach(th);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
}
