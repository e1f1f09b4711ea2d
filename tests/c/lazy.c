/* Calls a shared library's function through its PLT for a second of CPU time. Run with
 * LD_BIND_NOT=1, every call goes through the loader's lazy-binding trampoline
 * (_dl_runtime_resolve_xsavec on x86_64), so many samples have it on their stack.
 * Usage: lazy PROFILE */
#include "self_profile.h"

int lazy_add(int);

static volatile int x = 0;

static void calls(void) {
  for (int i = 0; i < 1000; i++) x = lazy_add(x);
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  return profile_while(argv[1], 1.0, calls);
}
