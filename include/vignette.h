/*
 * vignette: a sampling profiler you can ship inside release binaries. C API.
 *
 * Build the library:  cargo build --release --manifest-path ffi/Cargo.toml
 *   -> ffi/target/release/libvignette.a and libvignette.so
 * Link:               cc app.c -Iinclude ffi/target/release/libvignette.a -lpthread -ldl -lm
 * Windows (mingw):     cargo build --release --manifest-path ffi/Cargo.toml
 *                        --target x86_64-pc-windows-gnu
 *   -> vignette.dll, its import library libvignette.dll.a, and libvignette.a; link with
 *      x86_64-w64-mingw32-gcc app.c -Iinclude .../libvignette.dll.a -Wl,--build-id
 *      (--build-id gives the executable the CodeView record its debug ID comes from).
 *      There, threads are suspended instead of signalled: `signal` is ignored and
 *      VIGNETTE_ERR_SIGNAL_IN_USE does not occur.
 *
 * Every function returns a vignette_status (VIGNETTE_OK on success); after a failure
 * vignette_last_error() describes it. A profiler is used by one thread at a time; calls on it
 * must not overlap. vignette uses SIGURG (or the configured signal) from vignette_create on;
 * vignette_create fails with VIGNETTE_ERR_SIGNAL_IN_USE if the application has a handler for
 * it. If the application installs one later, vignette stops signalling until the signal is
 * back at its default action (counted in the profile as lost to `signal_taken`). The profile is un-symbolicated: resolve it on a developer machine with the `vignette`
 * tool (`vignette convert profile.vignette --to speedscope -o out.json --symbols app`).
 */
#ifndef VIGNETTE_H
#define VIGNETTE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Status codes. */
typedef int vignette_status;
#define VIGNETTE_OK 0
#define VIGNETTE_ERR_INVALID_ARGUMENT 1 /* a NULL pointer or an out-of-range argument */
#define VIGNETTE_ERR_CONFIG 2           /* a configuration value out of range */
#define VIGNETTE_ERR_OUT_OF_MEMORY 3    /* buffers could not be mapped */
#define VIGNETTE_ERR_SIGNAL_IN_USE 4    /* another handler owns the signal */
#define VIGNETTE_ERR_ALREADY_EXISTS 5   /* another profiler exists in this process */
#define VIGNETTE_ERR_RUNNING 6          /* the profiler is running: stop it first */
#define VIGNETTE_ERR_NOT_RUNNING 7      /* not running, or no profile to write yet */
#define VIGNETTE_ERR_BUFFER_TOO_SMALL 8 /* the needed size was stored in *written */
#define VIGNETTE_ERR_IO 9               /* writing failed */
#define VIGNETTE_ERR_SYSTEM 10          /* a system call failed, or no such thread */
#define VIGNETTE_ERR_PANIC 11           /* an internal error (please report it) */
#define VIGNETTE_ERR_DELIVERING 12      /* the delivery thread takes the chunks */

/* What made a delivered chunk be captured (the callback's trigger argument). */
#define VIGNETTE_TRIGGER_NONE 0   /* a timed chunk */
#define VIGNETTE_TRIGGER_MANUAL 1 /* vignette_trigger or vignette_triggers_fire */
#define VIGNETTE_TRIGGER_HANG 2   /* a heartbeat was later than its threshold */
#define VIGNETTE_TRIGGER_PANIC 3  /* a Rust panic in the process */
#define VIGNETTE_TRIGGER_HEAP 4   /* the heap in use grew past vignette_triggers_heap_over's */

#define VIGNETTE_CLOCK_CPU 0  /* sample each thread per interval of CPU time it uses */
#define VIGNETTE_CLOCK_WALL 1 /* sample every thread every interval, running or blocked */

#define VIGNETTE_BACKEND_AUTO 0           /* the best this system allows */
#define VIGNETTE_BACKEND_SAMPLER_THREAD 1 /* vignette's thread signals each thread per interval */
#define VIGNETTE_BACKEND_PERF_EVENTS 2    /* the kernel, per interval of a thread's CPU (perf) */
#define VIGNETTE_BACKEND_CPU_TIMERS 3     /* the same with POSIX CPU timers, at tick resolution */
#define VIGNETTE_BACKEND_SUSPENSION 4     /* vignette's thread suspends each thread (Windows) */

/** Profiler settings; start from vignette_config_default. */
typedef struct vignette_config {
    uint32_t size;            /* sizeof(vignette_config) as this program was compiled, set by
                                 vignette_config_default: the struct grows at its end, and
                                 vignette takes fields past `size` as their defaults */
    uint32_t frequency_hz;    /* samples per second per thread, 1..10000 */
    int clock;                /* VIGNETTE_CLOCK_CPU or VIGNETTE_CLOCK_WALL */
    uint32_t max_frames;      /* deepest stack recorded, 1..1024 */
    uint32_t sample_capacity; /* samples kept per session */
    int signal;               /* the signal used to interrupt threads (default SIGURG,
                                 whose default action is to ignore it; ignored on Windows
                                 and macOS) */
    int backend;              /* what takes the samples: VIGNETTE_BACKEND_AUTO (default) or
                                 another VIGNETTE_BACKEND_* */
    int module_paths;         /* nonzero: modules carry their full paths; 0 (default): file
                                 names only, since a folder can identify a person */
    double max_overhead_percent; /* keep vignette's cost within this percent of the program's
                                    own CPU time (0.01..100), sampling less often when
                                    needed; 0 (default): no budget */
    uint64_t heap_mean_bytes; /* sample allocations reported with vignette_heap_alloc, one per
                                 this many bytes on average (524288 is Go's); profiles then
                                 carry the heap; 0 (default): none */
} vignette_config;

/** An opaque profiler. */
typedef struct vignette_profiler vignette_profiler;

/** Triggers of a delivering profiler (vignette_deliver): usable from any thread. */
typedef struct vignette_triggers vignette_triggers;

/** One thread's heartbeat for the hang watchdog. */
typedef struct vignette_heartbeat vignette_heartbeat;

/** A delivery callback, called on vignette's own thread: an encoded profile (len bytes, valid
    during the call), its sequence number, the VIGNETTE_TRIGGER_* that made it, and user. */
typedef void (*vignette_chunk_fn)(const uint8_t *profile, size_t len, uint64_t sequence,
                                  int trigger, void *user);

/** Fills the first `size` bytes of *config with the defaults and sets config->size; use
    vignette_config_default, which passes sizeof *config. */
vignette_status vignette_config_init(vignette_config *config, size_t size);

/* Fills *config with the defaults: 1000 Hz, CPU clock, 128 frames, 100000 samples, SIGURG, no
   module paths, no overhead budget. */
static inline vignette_status vignette_config_default(vignette_config *config) {
    return vignette_config_init(config, sizeof *config);
}

/** Creates a profiler in *out: maps every buffer and installs the signal handler. At most one
    profiler exists per process. */
vignette_status vignette_create(const vignette_config *config, vignette_profiler **out);

/** As vignette_create, for a flight recorder: it keeps only the last window_ms milliseconds
    (10 ms to 24 hours), and vignette_window or a trigger captures that window at any moment
    without stopping. vignette_stop then leaves the last window to write. */
vignette_status vignette_create_flight_recorder(const vignette_config *config, uint64_t window_ms, vignette_profiler **out);

/** Stores in *out what takes the samples (a VIGNETTE_BACKEND_* other than AUTO). */
vignette_status vignette_backend(const vignette_profiler *p, int *out);

/** Sets metadata every profile then carries (key = value): at most 16 keys of 1 to 32 ASCII
 * letters, digits, '_', '-' or '.', values of at most 128 bytes of UTF-8 without control
 * characters (VIGNETTE_ERR_CONFIG otherwise). Not while running or delivering
 * (VIGNETTE_ERR_RUNNING). For example "app", "version", "build", "channel", "session". */
vignette_status vignette_set_metadata(vignette_profiler *p, const char *key, const char *value);

/** Starts sampling every thread of the process, including threads created later. */
vignette_status vignette_start(vignette_profiler *p);

/** Stops sampling. The profile stays in the profiler for the vignette_write_* functions
    until the next start or sample. */
vignette_status vignette_stop(vignette_profiler *p);

/** Samples thread tid (a kernel thread id; 0 for every thread) right now, synchronously, into
    the open session (call vignette_stop to close it). Stores the samples kept in *kept if
    kept is not NULL. Not while the profiler is running. */
vignette_status vignette_sample_once(vignette_profiler *p, int32_t tid, size_t *kept);

/** Takes the samples since the start (or the last rotation) as the next chunk, without
    stopping: no sample is lost or counted twice between chunks, and their sequence numbers
    follow on. The vignette_write_* functions then write that chunk, until the next call. */
vignette_status vignette_rotate(vignette_profiler *p);

/** A flight recorder's last window, taken without stopping; then written by the
    vignette_write_* functions. */
vignette_status vignette_window(vignette_profiler *p);

/** A manual trigger: the window (or, without a flight recorder, the chunk since the last
    one), marked as triggered by the calling thread with note (NULL for none; at most 96 bytes
    are kept); then written by the vignette_write_* functions. */
vignette_status vignette_trigger(vignette_profiler *p, const char *note);

/** Hands chunks to callback on vignette's own thread until the profiler stops: every every_ms
    milliseconds (0: only on triggers) and whenever a trigger fires. *triggers (if not NULL)
    receives a handle for firing triggers and making heartbeats from any thread; free it with
    vignette_triggers_free. The profiler must be running; meanwhile vignette_rotate,
    vignette_window and vignette_trigger answer VIGNETTE_ERR_DELIVERING. */
vignette_status vignette_deliver(vignette_profiler *p, uint64_t every_ms, vignette_chunk_fn callback, void *user, vignette_triggers **triggers);

/** Fires a manual trigger from any thread; the delivery thread captures within 10 ms. */
vignette_status vignette_triggers_fire(const vignette_triggers *t, const char *note);

/** Captures when the heap in use (sampled: config.heap_mean_bytes) grows past bytes, once per
    crossing (again after it fell below 90% of it); 0 turns it off. */
vignette_status vignette_triggers_heap_over(const vignette_triggers *t, uint64_t bytes);

/** Frees a triggers handle (its heartbeats stay valid). NULL is ignored. */
void vignette_triggers_free(vignette_triggers *t);

/** Watches the calling thread: when its heartbeat is silent for longer than threshold_ms, the
    window is captured, marked as a hang of this thread with name (once per silence). *out
    receives the heartbeat. */
vignette_status vignette_heartbeat_new(const vignette_triggers *t, const char *name, uint64_t threshold_ms, vignette_heartbeat **out);

/** Marks progress: one clock read and one store, no allocation, no lock. NULL is ignored. */
void vignette_heartbeat_beat(const vignette_heartbeat *h);

/** Stops watching and frees the heartbeat. NULL is ignored. */
void vignette_heartbeat_free(vignette_heartbeat *h);

/** The labels a thread had before vignette_label_set_*: keep it (on the stack) until the
    matching vignette_label_restore. */
typedef struct vignette_label_saved {
    uint64_t opaque[7];
} vignette_label_saved;

/** Interns a label key (once per name; keep the id in *out). */
vignette_status vignette_label_key(const char *name, uint32_t *out);

/** Interns a string label value (once per text; keep the id in *out). */
vignette_status vignette_label_string(const char *value, uint32_t *out);

/** Labels the calling thread's work with key = value (an integer) until
    vignette_label_restore(saved) on the same thread (innermost first); samples taken meanwhile
    carry it. No allocation, no lock. Does nothing if saved is NULL. */
void vignette_label_set_int(uint32_t key, int64_t value, vignette_label_saved *saved);

/** As vignette_label_set_int, with a string value interned by vignette_label_string. */
void vignette_label_set_string(uint32_t key, uint32_t string, vignette_label_saved *saved);

/** Restores the labels saved by vignette_label_set_*. NULL is ignored. */
void vignette_label_restore(const vignette_label_saved *saved);

/** Writes the last stopped session's profile (or the chunk or window taken last) to the file
    at path (created or truncated). */
vignette_status vignette_write_path(vignette_profiler *p, const char *path);

/** Writes the last stopped session's profile to the open file descriptor fd (not closed). */
vignette_status vignette_write_fd(vignette_profiler *p, int fd);

/** Encodes the last stopped session's profile into buf (len bytes); *written receives the
    bytes used, or with VIGNETTE_ERR_BUFFER_TOO_SMALL the size needed (buf may be NULL when
    len is 0, to ask for the size). Never allocates. */
vignette_status vignette_write_buffer(vignette_profiler *p, uint8_t *buf, size_t len, size_t *written);

/** Stops the profiler if running and frees it. NULL is ignored. In the child of a fork(), a
    profiler created by the parent answers every other call with VIGNETTE_ERR_SYSTEM; this
    call frees it without waiting for the parent's sampler thread, and the child may then
    create its own. */
void vignette_destroy(vignette_profiler *p);

/** The message of the last failed call on this thread ("" after a success); valid until the
    next vignette call on this thread. */
const char *vignette_last_error(void);

/** Reports an allocation of size bytes at ptr from the program's allocator (or its malloc
    wrapper), after it succeeded: sampled by bytes, its stack walked from the caller. Safe at
    any moment and inside an allocator (no allocation, no lock); nothing while no profiler
    samples allocations. Wrapping malloc in a C program:

        void *my_malloc(size_t n) { void *p = malloc(n); vignette_heap_alloc(p, n); return p; }
        void my_free(void *p) { vignette_heap_free(p); free(p); }
*/
void vignette_heap_alloc(const void *ptr, size_t size);

/** Reports the free of the allocation at ptr, before the memory is given back. */
void vignette_heap_free(const void *ptr);

/** The calling thread's kernel thread id (for vignette_sample_once). */
int32_t vignette_current_thread_id(void);

#ifdef __cplusplus
}
#endif

#endif /* VIGNETTE_H */
