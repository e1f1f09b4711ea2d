/* A C program whose own allocator wrapper reports to vignette (vignette_heap_alloc and
 * vignette_heap_free, as the header shows): one site leaks 32 MiB, another allocates and frees
 * 128 MiB. It writes the profile, with the heap, to PROFILE.
 * Usage: c_heap PROFILE */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vignette.h>

static void *my_malloc(size_t n) {
  void *p = malloc(n);
  vignette_heap_alloc(p, n);
  return p;
}

static void my_free(void *p) {
  vignette_heap_free(p);
  free(p);
}

static void *volatile keep[8192];

__attribute__((noinline)) static void leak_site(int i) {
  keep[i] = my_malloc(4096);
  memset(keep[i], 1, 4096);
}

__attribute__((noinline)) static void churn_site(void) {
  void *p = my_malloc(4096);
  memset(p, 2, 4096);
  my_free(p);
}

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  vignette_config config;
  vignette_config_default(&config);
  config.heap_mean_bytes = 64 * 1024;
  vignette_profiler *p;
  if (vignette_create(&config, &p) != VIGNETTE_OK || vignette_start(p) != VIGNETTE_OK) {
    fprintf(stderr, "%s\n", vignette_last_error());
    return 1;
  }
  for (int i = 0; i < 8192; i++) {
    leak_site(i);
    for (int j = 0; j < 4; j++) churn_site();
  }
  if (vignette_stop(p) != VIGNETTE_OK || vignette_write_path(p, argv[1]) != VIGNETTE_OK) {
    fprintf(stderr, "%s\n", vignette_last_error());
    return 1;
  }
  vignette_destroy(p);
  return 0;
}
