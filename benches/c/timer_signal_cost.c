/* What one timer-driven signal costs the thread it interrupts, with an empty handler: the
 * floor under any sampler that interrupts a running thread per sample. The thread computes
 * a fixed amount (timed on its own CPU clock) with no timer, with a perf event (software
 * task-clock, the signal routed to the thread, as vignette's PerfEvents backend), and with a
 * POSIX timer on CLOCK_MONOTONIC aimed at the thread.
 *
 *   gcc -O1 benches/c/timer_signal_cost.c -o /tmp/tsc && /tmp/tsc 250000
 *
 * (argument: the period in ns; 250000 is 4000 Hz). BENCHMARKS.md quotes it. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile long signals;
static void on_signal(int sig, siginfo_t *si, void *uc) { (void)sig; (void)si; (void)uc; signals++; }

static double cpu(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static double work(void) {
  double t0 = cpu();
  volatile double x = 0;
  for (long i = 0; i < 300000000; i++) x += i * 0.5;
  return cpu() - t0;
}

int main(int argc, char **argv) {
  long period = argc > 1 ? atol(argv[1]) : 250000;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_signal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigaction(SIGPROF, &sa, 0);
  double base = work();
  printf("no timer: %.3f s of CPU\n", base);

  struct perf_event_attr a;
  memset(&a, 0, sizeof a);
  a.size = sizeof a;
  a.type = PERF_TYPE_SOFTWARE;
  a.config = PERF_COUNT_SW_TASK_CLOCK;
  a.sample_period = period;
  a.disabled = 1;
  a.wakeup_events = 1;
  int fd = syscall(SYS_perf_event_open, &a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
  if (fd >= 0) {
    struct f_owner_ex o = {F_OWNER_TID, (pid_t)syscall(SYS_gettid)};
    fcntl(fd, F_SETFL, O_ASYNC);
    fcntl(fd, F_SETSIG, SIGPROF);
    fcntl(fd, F_SETOWN_EX, &o);
    ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
    signals = 0;
    double s = work();
    ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
    printf("perf event: %.3f s, %ld signals, %.1f us each\n", s, signals, (s - base) * 1e6 / signals);
  }

  timer_t tm;
  struct sigevent se;
  memset(&se, 0, sizeof se);
  se.sigev_notify = SIGEV_THREAD_ID;
  se.sigev_signo = SIGPROF;
  se._sigev_un._tid = syscall(SYS_gettid);
  timer_create(CLOCK_MONOTONIC, &se, &tm);
  struct itimerspec its = {{0, period}, {0, period}};
  timer_settime(tm, 0, &its, 0);
  signals = 0;
  double s = work();
  printf("monotonic timer: %.3f s, %ld signals, %.1f us each\n", s, signals, (s - base) * 1e6 / signals);
  return 0;
}
