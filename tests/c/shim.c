/* Profiles an unmodified program: injected with LD_PRELOAD, it starts a profiler with the
 * defaults when the program loads and writes the profile to $VIGNETTE_SHIM_OUT.<pid> at exit.
 * It prints nothing: the program's output must stay exactly as without it. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <vignette.h>

static vignette_profiler *profiler;
static pid_t owner;

static void stop_and_write(void) {
  /* A child forked without exec inherits the pointer, not the sampler: it writes nothing. */
  if (!profiler || getpid() != owner) return;
  const char *out = getenv("VIGNETTE_SHIM_OUT");
  char path[4096];
  snprintf(path, sizeof path, "%s.%d", out ? out : "shim", (int)owner);
  vignette_stop(profiler);
  vignette_write_path(profiler, path);
  vignette_destroy(profiler);
  profiler = NULL;
}

__attribute__((constructor)) static void start(void) {
  if (!getenv("VIGNETTE_SHIM_OUT")) return;
  vignette_config config;
  vignette_config_default(&config);
  if (vignette_create(&config, &profiler) != VIGNETTE_OK) return;
  if (vignette_start(profiler) != VIGNETTE_OK) {
    vignette_destroy(profiler);
    profiler = NULL;
    return;
  }
  owner = getpid();
  atexit(stop_and_write);
}
