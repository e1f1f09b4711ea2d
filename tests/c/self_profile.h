/* What the self-profiling test programs share: profile this process while `work` runs until
 * the calling thread has used `seconds` of CPU time, then write the profile to `path`.
 * Returns 0, or 1 with vignette's error on stderr. */
#include <stdio.h>
#include <time.h>
#include <vignette.h>

static double cpu_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static int profile_while(const char *path, double seconds, void (*work)(void)) {
  vignette_config config;
  vignette_config_default(&config);
  vignette_profiler *p;
  if (vignette_create(&config, &p) != VIGNETTE_OK || vignette_start(p) != VIGNETTE_OK) {
    fprintf(stderr, "%s\n", vignette_last_error());
    return 1;
  }
  double start = cpu_seconds();
  while (cpu_seconds() - start < seconds) work();
  if (vignette_stop(p) != VIGNETTE_OK || vignette_write_path(p, path) != VIGNETTE_OK) {
    fprintf(stderr, "%s\n", vignette_last_error());
    return 1;
  }
  vignette_destroy(p);
  return 0;
}
