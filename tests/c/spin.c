/* Profiles itself while it spends a second of CPU time in its own code.
 * Usage: spin PROFILE */
#include "self_profile.h"

static volatile double sink = 0;

__attribute__((noinline)) static double work(long n) {
  double s = 0;
  for (long i = 0; i < n; i++) s += i * 0.5 / (i + 1);
  return s;
}

static void spin(void) { sink += work(1000000); }

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  return profile_while(argv[1], 1.0, spin);
}
