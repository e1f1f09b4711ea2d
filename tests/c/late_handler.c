/* A program that takes signals after vignette started, as GNU sort does (a handler for
 * SIGPROF and others that restores the default action and re-raises), then sets the
 * sampling signal itself to a handler of its own, to SIG_IGN and to SIG_DFL. It must run to
 * the end with its output intact, exit 0, and never see a signal it did not send.
 * Usage: late_handler PROFILE */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <vignette.h>

static volatile sig_atomic_t own_calls;

static void sort_like(int sig) {
  /* What sort does to remove its temporary files on a signal. */
  signal(sig, SIG_DFL);
  raise(sig);
}

static void counting(int sig) {
  (void)sig;
  own_calls++;
}

static double cpu_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static volatile double sink;

static void burn(double seconds) {
  double start = cpu_seconds(), x = 0;
  while (cpu_seconds() - start < seconds)
    for (int i = 0; i < 10000; i++) x += (double)(i % 7) * 0.5;
  sink = x;
}

static void check(vignette_status s, const char *what) {
  if (s != VIGNETTE_OK) {
    fprintf(stderr, "%s: %s\n", what, vignette_last_error());
    _exit(3);
  }
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  vignette_config config;
  vignette_config_default(&config);
  vignette_profiler *p;
  check(vignette_create(&config, &p), "create");
  check(vignette_start(p), "start");
  burn(0.05);
  int caught[] = {SIGALRM, SIGHUP, SIGINT, SIGPIPE, SIGQUIT, SIGTERM, SIGIO, SIGPROF, SIGVTALRM, SIGXCPU, SIGXFSZ};
  for (size_t i = 0; i < sizeof caught / sizeof caught[0]; i++) signal(caught[i], sort_like);
  for (int line = 0; line < 100; line++) printf("line %d\n", line);
  burn(0.2);
  /* SIGPROF ignored, then back to its default: nobody sends it. */
  signal(SIGPROF, SIG_IGN);
  raise(SIGPROF);
  burn(0.05);
  signal(SIGPROF, SIG_DFL);
  burn(0.05);
  /* The sampling signal: the program's own handler, then ignored, then the default. */
  signal(config.signal, counting);
  burn(0.3);
  int seen = own_calls;
  raise(config.signal);
  if (own_calls != seen + 1) {
    fprintf(stderr, "the program's own handler did not run for its own signal\n");
    return 4;
  }
  signal(config.signal, SIG_IGN);
  burn(0.05);
  signal(config.signal, SIG_DFL);
  burn(0.1);
  check(vignette_stop(p), "stop");
  check(vignette_write_path(p, argv[1]), "write");
  vignette_destroy(p);
  for (int line = 100; line < 200; line++) printf("line %d\n", line);
  printf("calls of the program's handler before vignette noticed: %d\n", seen);
  return 0;
}
