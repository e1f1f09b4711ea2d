/* Capture for telemetry from C: chunks rotated without stopping, then a flight recorder whose
   delivery thread hands each captured window to a callback, with a hang watchdog and a manual
   trigger. Files go to the folder given as the first argument:
     chunk-0.vignette, chunk-1.vignette   two rotated chunks (vignette_rotate)
     window-<sequence>.vignette           each window delivered (a hang, a manual trigger)
   It prints the hung thread's id as "hung thread: <tid>".

   Build: cargo build --release --manifest-path ffi/Cargo.toml
          cc -O1 -g -pthread -Iinclude examples/c/telemetry.c \
             ffi/target/release/libvignette.a -ldl -lm -o telemetry
   Run:   ./telemetry out-folder */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "vignette.h"

static const char *folder;
static atomic_int hangs_seen, manual_seen, release_worker;
static vignette_triggers *triggers;

static void check(vignette_status s, const char *what) {
    if (s != VIGNETTE_OK) {
        fprintf(stderr, "%s failed (%d): %s\n", what, s, vignette_last_error());
        exit(1);
    }
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

__attribute__((noinline)) static unsigned long stuck_in_here(unsigned long x) {
    while (!atomic_load(&release_worker)) x = x * 6364136223846793005UL + 1;
    return x;
}

/* Works for ms milliseconds of CPU time. */
__attribute__((noinline)) static unsigned long busy_ms(long ms) {
    struct timespec t0, t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    unsigned long x = 1;
    do {
        for (int i = 0; i < 10000; i++) x = x * 6364136223846793005UL + 1;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
    return x;
}

/* Beats for a while, then hangs in stuck_in_here until released. */
static void *worker_main(void *arg) {
    (void)arg;
    vignette_heartbeat *beat = NULL;
    check(vignette_heartbeat_new(triggers, "worker loop", 150, &beat), "vignette_heartbeat_new");
    for (int i = 0; i < 20; i++) {
        vignette_heartbeat_beat(beat);
        sleep_ms(5);
    }
    printf("hung thread: %d\n", vignette_current_thread_id());
    fflush(stdout);
    unsigned long r = stuck_in_here(1);
    vignette_heartbeat_free(beat);
    return (void *)(size_t)r;
}

/* The delivery callback: runs on vignette's thread. */
static void on_window(const uint8_t *profile, size_t len, uint64_t sequence, int trigger, void *user) {
    (void)user;
    char path[4096];
    snprintf(path, sizeof path, "%s/window-%llu.vignette", folder, (unsigned long long)sequence);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(profile, 1, len, f) != len) exit(3);
    fclose(f);
    if (trigger == VIGNETTE_TRIGGER_HANG) atomic_fetch_add(&hangs_seen, 1);
    if (trigger == VIGNETTE_TRIGGER_MANUAL) atomic_fetch_add(&manual_seen, 1);
}

int main(int argc, char **argv) {
    folder = argc > 1 ? argv[1] : ".";
    char path[4096];
    vignette_config config;
    check(vignette_config_default(&config), "vignette_config_default");

    /* Rotation: two chunks while sampling, each written as it is taken; the work in them is
       labelled phase=rotating and chunk=<i>. */
    vignette_profiler *p = NULL;
    check(vignette_create(&config, &p), "vignette_create");
    check(vignette_start(p), "vignette_start");
    uint32_t phase, chunk, rotating;
    check(vignette_label_key("phase", &phase), "vignette_label_key");
    check(vignette_label_key("chunk", &chunk), "vignette_label_key");
    check(vignette_label_string("rotating", &rotating), "vignette_label_string");
    for (int i = 0; i < 2; i++) {
        vignette_label_saved outer, inner;
        vignette_label_set_string(phase, rotating, &outer);
        vignette_label_set_int(chunk, i, &inner);
        busy_ms(100);
        vignette_label_restore(&inner);
        vignette_label_restore(&outer);
        check(vignette_rotate(p), "vignette_rotate");
        snprintf(path, sizeof path, "%s/chunk-%d.vignette", folder, i);
        check(vignette_write_path(p, path), "vignette_write_path");
    }
    check(vignette_stop(p), "vignette_stop");
    vignette_destroy(p);

    /* A flight recorder of the last 500 ms, delivering on triggers only. */
    config.clock = VIGNETTE_CLOCK_WALL;
    check(vignette_create_flight_recorder(&config, 500, &p), "vignette_create_flight_recorder");
    check(vignette_start(p), "vignette_start");
    check(vignette_deliver(p, 0, on_window, NULL, &triggers), "vignette_deliver");
    if (vignette_window(p) != VIGNETTE_ERR_DELIVERING) return 2;
    pthread_t worker;
    pthread_create(&worker, NULL, worker_main, NULL);
    for (int i = 0; i < 6000 && !atomic_load(&hangs_seen); i++) sleep_ms(10);
    atomic_store(&release_worker, 1);
    pthread_join(worker, NULL);
    check(vignette_triggers_fire(triggers, "from C"), "vignette_triggers_fire");
    for (int i = 0; i < 6000 && !atomic_load(&manual_seen); i++) sleep_ms(10);
    check(vignette_stop(p), "vignette_stop");
    vignette_triggers_free(triggers);
    vignette_destroy(p);
    printf("hangs: %d, manual: %d\n", atomic_load(&hangs_seen), atomic_load(&manual_seen));
    return atomic_load(&hangs_seen) && atomic_load(&manual_seen) ? 0 : 4;
}
