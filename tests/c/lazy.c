/* Calls a shared library's function through its PLT for a second of CPU time. Run with
 * LD_BIND_NOT=1, every call goes through the loader's lazy-binding trampoline
 * (_dl_runtime_resolve_xsavec on x86_64), so many samples have it on their stack.
 * Usage: lazy PROFILE */
#include <stdio.h>
#include <time.h>
#include <vignette.h>

int lazy_add(int);

static double cpu_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
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
  volatile int x = 0;
  double start = cpu_seconds();
  while (cpu_seconds() - start < 1.0)
    for (int i = 0; i < 1000; i++) x = lazy_add(x);
  if (vignette_stop(p) != VIGNETTE_OK || vignette_write_path(p, argv[1]) != VIGNETTE_OK) {
    fprintf(stderr, "%s\n", vignette_last_error());
    return 1;
  }
  vignette_destroy(p);
  return 0;
}
