/* Stops, writes and destroys a profiler from an atexit handler (where glibc has already
 * destroyed the main thread's thread-locals), and checks every call's status and message.
 * stdout is a pipe in the test, so it is fully buffered: it must still be flushed at exit.
 * Usage: at_exit PROFILE */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vignette.h>

static vignette_profiler *profiler;
static const char *path;

static void check(vignette_status s, const char *what) {
  const char *msg = vignette_last_error();
  if (s != VIGNETTE_OK || msg == NULL || msg[0] != '\0') {
    fprintf(stderr, "%s: status %d: %s\n", what, (int)s, msg ? msg : "(null)");
    _exit(3);
  }
}

static void at_exit(void) {
  check(vignette_stop(profiler), "stop at exit");
  check(vignette_write_path(profiler, path), "write at exit");
  /* A failing call's message is there too. */
  if (vignette_stop(profiler) != VIGNETTE_ERR_NOT_RUNNING || strlen(vignette_last_error()) == 0) {
    fprintf(stderr, "stop twice: no error message\n");
    _exit(4);
  }
  vignette_destroy(profiler);
  printf("stopped, wrote and destroyed at exit\n");
}

static volatile double sink;

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  path = argv[1];
  vignette_config config;
  vignette_config_default(&config);
  check(vignette_create(&config, &profiler), "create");
  check(vignette_set_metadata(profiler, "app", "at_exit"), "metadata");
  if (vignette_set_metadata(profiler, "bad key", "x") != VIGNETTE_ERR_CONFIG) {
    fprintf(stderr, "a bad metadata key was taken\n");
    return 5;
  }
  check(vignette_start(profiler), "start");
  atexit(at_exit);
  for (int line = 0; line < 200; line++) printf("line %d\n", line);
  double x = 0;
  for (long i = 0; i < 80000000L; i++) x += (double)(i % 7) * 0.5;
  sink = x;
  return 0;
}
