/* A C program that profiles itself with vignette: three threads run known call chains
   (worker_main -> compute_outer -> compute_inner), one thread is sampled on demand, and the
   profile is written to the path given as the first argument.

   Build: cargo build --release --manifest-path ffi/Cargo.toml
          cc -O1 -g -pthread -Iinclude examples/c/profile_threads.c \
             ffi/target/release/libvignette.a -ldl -lm -o profile_threads
   Run:   ./profile_threads out.vignette */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "vignette.h"

static volatile int stop;

__attribute__((noinline)) static unsigned long compute_inner(unsigned long x) {
    for (int i = 0; i < 2000; i++) x = x * 6364136223846793005UL + 1442695040888963407UL;
    return x;
}

__attribute__((noinline)) static unsigned long compute_outer(unsigned long x) {
    return compute_inner(x) ^ compute_inner(x + 1);
}

static void *worker_main(void *arg) {
    unsigned long acc = (unsigned long)(size_t)arg;
    while (!stop) acc = compute_outer(acc);
    return (void *)(size_t)acc;
}

static int check(vignette_status s, const char *what) {
    if (s != VIGNETTE_OK) {
        fprintf(stderr, "%s failed (%d): %s\n", what, s, vignette_last_error());
        exit(1);
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *out = argc > 1 ? argv[1] : "c-demo.vignette";
    pthread_t threads[3];
    for (size_t i = 0; i < 3; i++) pthread_create(&threads[i], NULL, worker_main, (void *)(i + 1));

    vignette_config config;
    check(vignette_config_default(&config), "vignette_config_default");
    config.frequency_hz = 500;
    vignette_profiler *p = NULL;
    check(vignette_create(&config, &p), "vignette_create");
    int backend = VIGNETTE_BACKEND_AUTO;
    check(vignette_backend(p, &backend), "vignette_backend");
    printf("backend %d\n", backend);

    /* Errors are reported, not fatal: a second profiler is refused. */
    vignette_profiler *second = NULL;
    if (vignette_create(&config, &second) != VIGNETTE_ERR_ALREADY_EXISTS) return 2;
    printf("second profiler refused: %s\n", vignette_last_error());

    check(vignette_sample_once(p, 0, NULL), "vignette_sample_once");
    check(vignette_start(p), "vignette_start");
    struct timespec ts = {0, 500 * 1000 * 1000};
    nanosleep(&ts, NULL);
    check(vignette_stop(p), "vignette_stop");
    stop = 1;
    for (int i = 0; i < 3; i++) pthread_join(threads[i], NULL);

    size_t needed = 0;
    if (vignette_write_buffer(p, NULL, 0, &needed) != VIGNETTE_ERR_BUFFER_TOO_SMALL) return 3;
    uint8_t *buf = malloc(needed);
    size_t written = 0;
    check(vignette_write_buffer(p, buf, needed, &written), "vignette_write_buffer");
    check(vignette_write_path(p, out), "vignette_write_path");
    printf("wrote %s (%zu bytes)\n", out, written);
    free(buf);
    vignette_destroy(p);
    return 0;
}
