/* Profiles itself while it spends a second of CPU time in its own code.
 * Usage: spin PROFILE */
#include <stdio.h>
#include <time.h>
#include <vignette.h>

static double cpu_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

__attribute__((noinline)) static double work(long n) {
  double s = 0;
  for (long i = 0; i < n; i++) s += i * 0.5 / (i + 1);
  return s;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  vignette_config config;
  vignette_config_default(&config);
  vignette_profiler *p;
  if (vignette_create(&config, &p) != VIGNETTE_OK || vignette_start(p) != VIGNETTE_OK) {
    fprintf(stderr, "%s\n", vignette_last_error());
    return 1;
  }
  volatile double sink = 0;
  double start = cpu_seconds();
  while (cpu_seconds() - start < 1.0) sink += work(1000000);
  if (vignette_stop(p) != VIGNETTE_OK || vignette_write_path(p, argv[1]) != VIGNETTE_OK) {
    fprintf(stderr, "%s\n", vignette_last_error());
    return 1;
  }
  vignette_destroy(p);
  return 0;
}
