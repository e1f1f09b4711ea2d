// Stops, writes and destroys a profiler from a C++ static object's destructor (run by exit(),
// after the main thread's thread-locals are gone). Usage: static_dtor PROFILE
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>
#include <vignette.h>

static void check(vignette_status s, const char *what) {
  const char *msg = vignette_last_error();
  if (s != VIGNETTE_OK || msg == nullptr || msg[0] != '\0') {
    std::fprintf(stderr, "%s: status %d: %s\n", what, (int)s, msg ? msg : "(null)");
    _exit(3);
  }
}

struct Session {
  vignette_profiler *profiler = nullptr;
  const char *path = nullptr;
  ~Session() {
    if (!profiler) return;
    check(vignette_stop(profiler), "stop in a static destructor");
    check(vignette_write_path(profiler, path), "write in a static destructor");
    vignette_destroy(profiler);
    std::printf("stopped, wrote and destroyed in a static destructor\n");
  }
};

static Session session;
static volatile double sink;

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  vignette_config config;
  vignette_config_default(&config);
  check(vignette_create(&config, &session.profiler), "create");
  check(vignette_start(session.profiler), "start");
  session.path = argv[1];
  for (int line = 0; line < 200; line++) std::printf("line %d\n", line);
  double x = 0;
  for (long i = 0; i < 80000000L; i++) x += (double)(i % 7) * 0.5;
  sink = x;
  return 0;
}
