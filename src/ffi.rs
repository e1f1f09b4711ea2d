//! The C API (feature `ffi`): the same profiler for C and C++ applications. The declarations
//! are in `include/vignette.h`; `ffi/` builds them into `libvignette.a` and `libvignette.so`.
//!
//! Every function returns a [`vignette_status`]; on failure [`vignette_last_error`] gives a
//! message (per thread). No Rust panic crosses the boundary: one would be reported as
//! `VIGNETTE_ERR_PANIC`.
//!
//! Thread safety: a `vignette_profiler` is used by one thread at a time (calls on it must not
//! overlap); `vignette_last_error` and `vignette_current_thread_id` may be called from any
//! thread. Signals: the profiler uses `SIGURG` (or the configured signal) from
//! `vignette_create` on; see [`crate::Builder::signal`].
// Off the signal path: the signal path's lints (lib.rs) do not bind this module.
#![cfg_attr(
    not(test),
    allow(
        clippy::panic,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing
    )
)]
#![allow(non_camel_case_types)]
// Every function here is `unsafe extern "C"` with its contract in the header's docs and the
// `# Safety` section below; pointers are checked for null before use.

use std::cell::Cell;
use std::ffi::{c_char, c_int, CStr};
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::{Backend, Clock, Error, Profiler, Target};

/// Status codes returned by every function.
pub type vignette_status = c_int;
/// Success.
pub const VIGNETTE_OK: vignette_status = 0;
/// A null pointer or an out-of-range argument.
pub const VIGNETTE_ERR_INVALID_ARGUMENT: vignette_status = 1;
/// A configuration value out of range.
pub const VIGNETTE_ERR_CONFIG: vignette_status = 2;
/// Memory for the buffers could not be mapped.
pub const VIGNETTE_ERR_OUT_OF_MEMORY: vignette_status = 3;
/// Another handler owns the signal.
pub const VIGNETTE_ERR_SIGNAL_IN_USE: vignette_status = 4;
/// Another profiler exists in this process.
pub const VIGNETTE_ERR_ALREADY_EXISTS: vignette_status = 5;
/// The profiler is running (stop it first).
pub const VIGNETTE_ERR_RUNNING: vignette_status = 6;
/// The profiler is not running, or there is no profile to write yet.
pub const VIGNETTE_ERR_NOT_RUNNING: vignette_status = 7;
/// The buffer is too small; the needed size was stored.
pub const VIGNETTE_ERR_BUFFER_TOO_SMALL: vignette_status = 8;
/// Writing failed.
pub const VIGNETTE_ERR_IO: vignette_status = 9;
/// A system call failed, or the thread does not exist.
pub const VIGNETTE_ERR_SYSTEM: vignette_status = 10;
/// An internal error (a Rust panic, caught).
pub const VIGNETTE_ERR_PANIC: vignette_status = 11;
/// The delivery thread takes the chunks (`vignette_deliver`); stop the profiler first.
pub const VIGNETTE_ERR_DELIVERING: vignette_status = 12;

/// Sampling clock: per-thread CPU time.
pub const VIGNETTE_CLOCK_CPU: c_int = 0;
/// Sampling clock: wall-clock time.
pub const VIGNETTE_CLOCK_WALL: c_int = 1;

/// Profiler settings (see `vignette_config_init`). The struct grows at its end: `size` says
/// how much of it the caller knows, and fields past that are taken as their defaults.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vignette_config {
    /// `sizeof(vignette_config)` as the caller was compiled (set by `vignette_config_init`).
    pub size: u32,
    /// Samples per second per thread (1..10000).
    pub frequency_hz: u32,
    /// `VIGNETTE_CLOCK_CPU` or `VIGNETTE_CLOCK_WALL`.
    pub clock: c_int,
    /// Deepest stack recorded (1..1024).
    pub max_frames: u32,
    /// Samples kept per session.
    pub sample_capacity: u32,
    /// The signal used to interrupt threads (default SIGURG).
    pub signal: c_int,
    /// What takes the samples: `VIGNETTE_BACKEND_AUTO` (the best this system allows) or one
    /// of the other `VIGNETTE_BACKEND_*`.
    pub backend: c_int,
    /// Nonzero: modules carry their full paths (`Builder::module_paths`); 0, the default: file
    /// names only, since a folder can identify a person.
    pub module_paths: c_int,
    /// The overhead budget in percent of the application's CPU time (`Builder::max_overhead`,
    /// 0.01 to 100); 0, the default: none.
    pub max_overhead_percent: f64,
    /// Sample allocations, one per this many bytes on average (`Builder::sample_allocations`;
    /// the program reports them with `vignette_heap_alloc` and `vignette_heap_free`); 0, the
    /// default: none.
    pub heap_mean_bytes: u64,
}

/// The size of the first `vignette_config` (up to `backend`): the least a caller may pass.
const CONFIG_SIZE_V1: usize = core::mem::offset_of!(vignette_config, module_paths);

impl vignette_config {
    fn defaults() -> Self {
        vignette_config {
            size: core::mem::size_of::<vignette_config>() as u32,
            frequency_hz: 1000,
            clock: VIGNETTE_CLOCK_CPU,
            max_frames: 128,
            sample_capacity: 100_000,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            signal: libc::SIGURG,
            // Windows and macOS suspend threads instead of signalling them: the field is ignored.
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            signal: 0,
            backend: VIGNETTE_BACKEND_AUTO,
            module_paths: 0,
            max_overhead_percent: 0.0,
            heap_mean_bytes: 0,
        }
    }
}

/// The best backend this system allows (`vignette_config.backend`).
pub const VIGNETTE_BACKEND_AUTO: c_int = 0;
/// vignette's sampler thread signals each thread per interval.
pub const VIGNETTE_BACKEND_SAMPLER_THREAD: c_int = 1;
/// The kernel signals each thread per interval of its CPU time (Linux perf events).
pub const VIGNETTE_BACKEND_PERF_EVENTS: c_int = 2;
/// The kernel signals each thread per interval of its CPU time (POSIX CPU timers, tick
/// resolution).
pub const VIGNETTE_BACKEND_CPU_TIMERS: c_int = 3;
/// vignette's sampler thread suspends each thread (Windows).
pub const VIGNETTE_BACKEND_SUSPENSION: c_int = 4;

/// An opaque profiler.
pub struct vignette_profiler {
    inner: Profiler,
    /// What the `vignette_write_*` functions write: the last stopped session, or the chunk
    /// (window) taken last.
    chunk: bool,
}

/// An opaque set of triggers (`vignette_deliver`), usable from any thread.
pub struct vignette_triggers {
    inner: crate::Triggers,
}

/// An opaque heartbeat of one thread for the hang watchdog.
pub struct vignette_heartbeat {
    inner: crate::Heartbeat,
}

/// Trigger kinds passed to a delivery callback: none (a timed chunk).
pub const VIGNETTE_TRIGGER_NONE: c_int = 0;
/// Trigger kind: manual (`vignette_trigger`, `vignette_triggers_fire`).
pub const VIGNETTE_TRIGGER_MANUAL: c_int = 1;
/// Trigger kind: a heartbeat was late (a hang).
pub const VIGNETTE_TRIGGER_HANG: c_int = 2;
/// Trigger kind: a panic (Rust code in the process).
pub const VIGNETTE_TRIGGER_PANIC: c_int = 3;
/// Trigger kind: the heap in use grew past its threshold (`vignette_triggers_heap_over`).
pub const VIGNETTE_TRIGGER_HEAP: c_int = 4;

/// A delivery callback: an encoded profile (`len` bytes, valid during the call), its sequence
/// number, the trigger kind that made it (`VIGNETTE_TRIGGER_*`), and the caller's pointer.
pub type vignette_chunk_fn =
    Option<unsafe extern "C" fn(*const u8, usize, u64, c_int, *mut std::ffi::c_void)>;

/// The longest message [`vignette_last_error`] gives, in bytes with its terminating NUL
/// (a longer one is cut at a character boundary).
const MAX_ERROR: usize = 512;

thread_local! {
    /// The calling thread's last error, NUL-terminated. A fixed buffer without a destructor:
    /// std never destroys such a thread-local, so it stays usable in `atexit` handlers, C++
    /// static destructors and other thread-local destructors, where a thread-local with a
    /// destructor (a `CString`) is already gone and touching it would abort the process.
    static LAST_ERROR: Cell<[u8; MAX_ERROR]> = const { Cell::new([0; MAX_ERROR]) };
}

fn set_error(msg: String) {
    let mut buf = [0u8; MAX_ERROR];
    let mut len = msg.len().min(MAX_ERROR - 1);
    while !msg.is_char_boundary(len) {
        len -= 1;
    }
    for (b, m) in buf.iter_mut().zip(msg.bytes().take(len)) {
        *b = if m == 0 { b' ' } else { m };
    }
    LAST_ERROR.set(buf);
}

fn status_of(e: &Error) -> vignette_status {
    match e {
        Error::InvalidConfig(_) => VIGNETTE_ERR_CONFIG,
        Error::OutOfMemory => VIGNETTE_ERR_OUT_OF_MEMORY,
        Error::SignalInUse(_) => VIGNETTE_ERR_SIGNAL_IN_USE,
        Error::AlreadyExists => VIGNETTE_ERR_ALREADY_EXISTS,
        Error::Running => VIGNETTE_ERR_RUNNING,
        Error::NotRunning => VIGNETTE_ERR_NOT_RUNNING,
        Error::BufferTooSmall { .. } => VIGNETTE_ERR_BUFFER_TOO_SMALL,
        Error::Write => VIGNETTE_ERR_IO,
        Error::Delivering => VIGNETTE_ERR_DELIVERING,
        _ => VIGNETTE_ERR_SYSTEM,
    }
}

/// Runs `f`, turning errors and panics into status codes and messages.
fn guard(f: impl FnOnce() -> Result<(), (vignette_status, String)>) -> vignette_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => {
            set_error(String::new());
            VIGNETTE_OK
        }
        Ok(Err((status, msg))) => {
            set_error(msg);
            status
        }
        Err(_) => {
            set_error("internal error (a panic inside vignette); please report it".into());
            VIGNETTE_ERR_PANIC
        }
    }
}

fn core_err(e: Error) -> (vignette_status, String) {
    (status_of(&e), e.to_string())
}

fn invalid(what: &str) -> (vignette_status, String) {
    (VIGNETTE_ERR_INVALID_ARGUMENT, what.to_string())
}

/// # Safety
/// `p` must be null or a profiler from `vignette_create` not yet destroyed.
unsafe fn profiler<'a>(
    p: *mut vignette_profiler,
) -> Result<&'a mut Profiler, (vignette_status, String)> {
    // SAFETY: the caller's contract; null is checked.
    unsafe { p.as_mut() }
        .map(|p| &mut p.inner)
        .ok_or_else(|| invalid("profiler is NULL"))
}

/// # Safety
/// As for `profiler`.
unsafe fn wrapper<'a>(
    p: *mut vignette_profiler,
) -> Result<&'a vignette_profiler, (vignette_status, String)> {
    // SAFETY: the caller's contract; null is checked.
    unsafe { p.as_ref() }.ok_or_else(|| invalid("profiler is NULL"))
}

/// Fills the `size` bytes of `config` with the defaults (1000 Hz, CPU clock, 128 frames,
/// 100000 samples, SIGURG, no module paths) and `config->size`: the header's
/// `vignette_config_default(config)` calls it with `sizeof *config`, so a program compiled
/// against an older header keeps working when the struct grows.
///
/// # Safety
/// `config` must be NULL or point to `size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn vignette_config_init(
    config: *mut vignette_config,
    size: usize,
) -> vignette_status {
    guard(|| {
        if config.is_null() {
            return Err(invalid("config is NULL"));
        }
        if size < CONFIG_SIZE_V1 {
            return Err(invalid("size must be sizeof(vignette_config)"));
        }
        let n = size.min(core::mem::size_of::<vignette_config>());
        let d = vignette_config {
            size: n as u32,
            ..vignette_config::defaults()
        };
        // SAFETY: `config` has `size` >= n writable bytes (the caller's contract), `d` n
        // readable ones, and they do not overlap.
        unsafe {
            core::ptr::copy_nonoverlapping(
                (&d as *const vignette_config).cast::<u8>(),
                config.cast::<u8>(),
                n,
            )
        };
        Ok(())
    })
}

/// The whole config `config` stands for: what its `size` covers, defaults past it.
///
/// # Safety
/// `config` must be NULL or point to a `vignette_config` of at least its `size` field's bytes.
unsafe fn read_config(
    config: *const vignette_config,
) -> Result<vignette_config, (vignette_status, String)> {
    if config.is_null() {
        return Err(invalid("config is NULL"));
    }
    // SAFETY: every config starts with its size (the caller's contract).
    let size = unsafe { config.cast::<u32>().read_unaligned() } as usize;
    if size < CONFIG_SIZE_V1 {
        return Err(invalid(
            "config->size is not set: fill the config with vignette_config_default first",
        ));
    }
    let mut c = vignette_config::defaults();
    let n = size.min(core::mem::size_of::<vignette_config>());
    // SAFETY: the caller's config has `size` >= n readable bytes; `c` n writable ones.
    unsafe {
        core::ptr::copy_nonoverlapping(
            config.cast::<u8>(),
            (&mut c as *mut vignette_config).cast::<u8>(),
            n,
        )
    };
    c.size = n as u32;
    Ok(c)
}

/// Creates a profiler: maps every buffer and installs the signal handler.
///
/// # Safety
/// `config` must be NULL or point to a `vignette_config` (filled by `vignette_config_default`
/// and then changed) of at least its `size` bytes, and `out` must be NULL or point to writable memory for one pointer.
#[no_mangle]
pub unsafe extern "C" fn vignette_create(
    config: *const vignette_config,
    out: *mut *mut vignette_profiler,
) -> vignette_status {
    // SAFETY: the caller's contract, passed on.
    unsafe { create(config, 0, out) }
}

/// `vignette_create`, with a flight recorder when `window_ms` > 0.
///
/// # Safety
/// As `vignette_create`.
unsafe fn create(
    config: *const vignette_config,
    window_ms: u64,
    out: *mut *mut vignette_profiler,
) -> vignette_status {
    guard(|| {
        // SAFETY: the caller passes a readable config or NULL (checked).
        let c = &unsafe { read_config(config) }?;
        if out.is_null() {
            return Err(invalid("out is NULL"));
        }
        let clock = match c.clock {
            VIGNETTE_CLOCK_CPU => Clock::Cpu,
            VIGNETTE_CLOCK_WALL => Clock::Wall,
            _ => {
                return Err(invalid(
                    "clock must be VIGNETTE_CLOCK_CPU or VIGNETTE_CLOCK_WALL",
                ))
            }
        };
        let mut builder = Profiler::builder()
            .frequency(c.frequency_hz)
            .clock(clock)
            .max_frames(c.max_frames as usize)
            .sample_capacity(c.sample_capacity as usize)
            .signal(c.signal)
            .module_paths(c.module_paths != 0);
        builder = match c.backend {
            VIGNETTE_BACKEND_AUTO => builder,
            VIGNETTE_BACKEND_SAMPLER_THREAD => builder.backend(Backend::SamplerThread),
            VIGNETTE_BACKEND_PERF_EVENTS => builder.backend(Backend::PerfEvents),
            VIGNETTE_BACKEND_CPU_TIMERS => builder.backend(Backend::CpuTimers),
            VIGNETTE_BACKEND_SUSPENSION => builder.backend(Backend::Suspension),
            _ => return Err(invalid("backend must be one of VIGNETTE_BACKEND_*")),
        };
        if c.max_overhead_percent != 0.0 {
            builder = builder.max_overhead(c.max_overhead_percent);
        }
        if c.heap_mean_bytes != 0 {
            builder = builder.sample_allocations(c.heap_mean_bytes);
        }
        if window_ms > 0 {
            builder = builder.flight_recorder(std::time::Duration::from_millis(window_ms));
        }
        let inner = builder.build().map_err(core_err)?;
        let p = Box::into_raw(Box::new(vignette_profiler {
            inner,
            chunk: false,
        }));
        // SAFETY: out is non-null (checked) and writable by the caller's contract.
        unsafe { *out = p };
        Ok(())
    })
}

/// As `vignette_create`, for a flight recorder keeping the last `window_ms` milliseconds
/// (10 ms to 24 hours).
///
/// # Safety
/// As `vignette_create`.
#[no_mangle]
pub unsafe extern "C" fn vignette_create_flight_recorder(
    config: *const vignette_config,
    window_ms: u64,
    out: *mut *mut vignette_profiler,
) -> vignette_status {
    if window_ms == 0 {
        return guard(|| Err(invalid("window_ms must be at least 10")));
    }
    // SAFETY: the caller's contract, passed on.
    unsafe { create(config, window_ms, out) }
}

/// Takes the samples since the start (or the last rotation) as the next chunk, without
/// stopping; the `vignette_write_*` functions then write it, until the next call.
///
/// # Safety
/// `p` must be NULL or a profiler from `vignette_create` not yet destroyed, used by one thread
/// at a time.
#[no_mangle]
pub unsafe extern "C" fn vignette_rotate(p: *mut vignette_profiler) -> vignette_status {
    // SAFETY: the caller's contract.
    unsafe { take(p, |prof| prof.rotate().map(|_| ())) }
}

/// A flight recorder's last window, taken without stopping; the `vignette_write_*` functions
/// then write it, until the next call.
///
/// # Safety
/// As `vignette_rotate`.
#[no_mangle]
pub unsafe extern "C" fn vignette_window(p: *mut vignette_profiler) -> vignette_status {
    // SAFETY: the caller's contract.
    unsafe { take(p, |prof| prof.window().map(|_| ())) }
}

/// A manual trigger: the window (or the chunk since the last one), marked as triggered by the
/// calling thread with `note` (NULL for none); then written by the `vignette_write_*`
/// functions.
///
/// # Safety
/// As `vignette_rotate`; `note` must be NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn vignette_trigger(
    p: *mut vignette_profiler,
    note: *const c_char,
) -> vignette_status {
    // SAFETY: the caller's contract.
    let note = unsafe { text(note) };
    // SAFETY: the caller's contract.
    unsafe { take(p, |prof| prof.trigger(&note).map(|_| ())) }
}

/// Hands chunks to `callback` on vignette's own thread until the profiler stops: every
/// `every_ms` milliseconds (0: only on triggers), and whenever a trigger fires. Stores in
/// `*triggers` (if not NULL) a handle to fire triggers and feed heartbeats from any thread;
/// free it with `vignette_triggers_free`. The profiler must be running.
///
/// # Safety
/// As `vignette_rotate`; `callback` must be safe to call from another thread with `user`;
/// `triggers` must be NULL or point to writable memory for one pointer.
#[no_mangle]
pub unsafe extern "C" fn vignette_deliver(
    p: *mut vignette_profiler,
    every_ms: u64,
    callback: vignette_chunk_fn,
    user: *mut std::ffi::c_void,
    triggers: *mut *mut vignette_triggers,
) -> vignette_status {
    struct User(*mut std::ffi::c_void);
    // SAFETY: the caller promises `user` may be used from the delivery thread.
    unsafe impl Send for User {}
    guard(|| {
        // SAFETY: the caller's contract (see `profiler`).
        let w = unsafe { p.as_mut() }.ok_or_else(|| invalid("profiler is NULL"))?;
        let callback = callback.ok_or_else(|| invalid("callback is NULL"))?;
        let user = User(user);
        let every = (every_ms > 0).then(|| std::time::Duration::from_millis(every_ms));
        let t = w
            .inner
            .deliver(every, move |c| {
                let user = &user;
                let bytes = c.to_vec();
                let kind = c
                    .trigger()
                    .map_or(VIGNETTE_TRIGGER_NONE, |(k, _)| k as c_int);
                // SAFETY: the caller's callback, with the bytes valid for the call.
                unsafe { callback(bytes.as_ptr(), bytes.len(), c.sequence(), kind, user.0) };
            })
            .map_err(core_err)?;
        w.chunk = false;
        // SAFETY: triggers is NULL or writable by the caller's contract.
        if let Some(out) = unsafe { triggers.as_mut() } {
            *out = Box::into_raw(Box::new(vignette_triggers { inner: t }));
        }
        Ok(())
    })
}

/// Fires a manual trigger (from any thread); the delivery thread captures within 10 ms.
///
/// # Safety
/// `t` must be NULL or a handle from `vignette_deliver` not yet freed; `note` NULL or a
/// NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn vignette_triggers_fire(
    t: *const vignette_triggers,
    note: *const c_char,
) -> vignette_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let t = unsafe { t.as_ref() }.ok_or_else(|| invalid("triggers is NULL"))?;
        // SAFETY: the caller's contract.
        t.inner.fire(&unsafe { text(note) });
        Ok(())
    })
}

/// Captures when the heap in use (as sampled, `heap_mean_bytes`) grows past `bytes`, once per
/// crossing; 0 turns it off.
///
/// # Safety
/// `t` must be NULL or a live handle from `vignette_deliver`.
#[no_mangle]
pub unsafe extern "C" fn vignette_triggers_heap_over(
    t: *const vignette_triggers,
    bytes: u64,
) -> vignette_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let t = unsafe { t.as_ref() }.ok_or_else(|| invalid("triggers is NULL"))?;
        t.inner.heap_over(bytes);
        Ok(())
    })
}

/// Frees a triggers handle (heartbeats made from it stay valid). NULL is ignored.
///
/// # Safety
/// `t` must be NULL or a handle from `vignette_deliver`, freed once.
#[no_mangle]
pub unsafe extern "C" fn vignette_triggers_free(t: *mut vignette_triggers) {
    if !t.is_null() {
        // SAFETY: t came from Box::into_raw in vignette_deliver, freed once.
        let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(t) })));
    }
}

/// Watches the calling thread: when its heartbeat is silent for longer than `threshold_ms`,
/// a capture is taken, marked as a hang of this thread with `name`. Stores the heartbeat in
/// `*out`; call `vignette_heartbeat_beat` on progress, `vignette_heartbeat_free` when done.
///
/// # Safety
/// `t` must be NULL or a live triggers handle; `name` NULL or a NUL-terminated string; `out`
/// NULL or writable memory for one pointer.
#[no_mangle]
pub unsafe extern "C" fn vignette_heartbeat_new(
    t: *const vignette_triggers,
    name: *const c_char,
    threshold_ms: u64,
    out: *mut *mut vignette_heartbeat,
) -> vignette_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let t = unsafe { t.as_ref() }.ok_or_else(|| invalid("triggers is NULL"))?;
        // SAFETY: the caller's contract.
        let out = unsafe { out.as_mut() }.ok_or_else(|| invalid("out is NULL"))?;
        // SAFETY: the caller's contract.
        let name = unsafe { text(name) };
        let threshold = std::time::Duration::from_millis(threshold_ms);
        let inner = t.inner.heartbeat(&name, threshold);
        *out = Box::into_raw(Box::new(vignette_heartbeat { inner }));
        Ok(())
    })
}

/// Marks progress: one clock read and one store (no allocation, no lock). NULL is ignored.
///
/// # Safety
/// `h` must be NULL or a heartbeat from `vignette_heartbeat_new` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn vignette_heartbeat_beat(h: *const vignette_heartbeat) {
    // SAFETY: the caller's contract.
    if let Some(h) = unsafe { h.as_ref() } {
        h.inner.beat();
    }
}

/// Stops watching and frees the heartbeat. NULL is ignored.
///
/// # Safety
/// `h` must be NULL or a heartbeat from `vignette_heartbeat_new`, freed once.
#[no_mangle]
pub unsafe extern "C" fn vignette_heartbeat_free(h: *mut vignette_heartbeat) {
    if !h.is_null() {
        // SAFETY: h came from Box::into_raw in vignette_heartbeat_new, freed once.
        let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(h) })));
    }
}

/// The labels a thread had before `vignette_label_set_*`, for `vignette_label_restore`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct vignette_label_saved {
    /// Opaque.
    pub opaque: [u64; 7],
}

const _: () = assert!(core::mem::size_of::<crate::labels::LabelSet>() == 56);

/// Interns a label key `name` (once per name; keep the id) into `*out`.
///
/// # Safety
/// `name` must be NULL or a NUL-terminated string; `out` NULL or a writable `uint32_t`.
#[no_mangle]
pub unsafe extern "C" fn vignette_label_key(name: *const c_char, out: *mut u32) -> vignette_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let out = unsafe { out.as_mut() }.ok_or_else(|| invalid("out is NULL"))?;
        // SAFETY: the caller's contract.
        *out = crate::labels::LabelKey::new(&unsafe { text(name) }).0;
        Ok(())
    })
}

/// Interns a string label value (once per text; keep the id) into `*out`.
///
/// # Safety
/// As `vignette_label_key`.
#[no_mangle]
pub unsafe extern "C" fn vignette_label_string(
    value: *const c_char,
    out: *mut u32,
) -> vignette_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let out = unsafe { out.as_mut() }.ok_or_else(|| invalid("out is NULL"))?;
        // SAFETY: the caller's contract.
        *out = crate::labels::LabelStr::new(&unsafe { text(value) }).0;
        Ok(())
    })
}

/// Labels the calling thread's work with `key` = `value` until `vignette_label_restore(saved)`
/// (which the same thread must call, innermost first). No allocation, no lock.
///
/// # Safety
/// `saved` must be NULL (then nothing is set) or writable; `key` from `vignette_label_key`.
#[no_mangle]
pub unsafe extern "C" fn vignette_label_set_int(
    key: u32,
    value: i64,
    saved: *mut vignette_label_saved,
) {
    // SAFETY: the caller's contract.
    unsafe { set_label(key, crate::labels::Value::Int(value), saved) }
}

/// As `vignette_label_set_int`, with a string value from `vignette_label_string`.
///
/// # Safety
/// As `vignette_label_set_int`.
#[no_mangle]
pub unsafe extern "C" fn vignette_label_set_string(
    key: u32,
    string: u32,
    saved: *mut vignette_label_saved,
) {
    let value = crate::labels::Value::Str(crate::labels::LabelStr(string));
    // SAFETY: the caller's contract.
    unsafe { set_label(key, value, saved) }
}

/// Restores the calling thread's labels saved by `vignette_label_set_*`. NULL is ignored.
///
/// # Safety
/// `saved` must be NULL or filled by `vignette_label_set_*` on this thread.
#[no_mangle]
pub unsafe extern "C" fn vignette_label_restore(saved: *const vignette_label_saved) {
    // SAFETY: the caller's contract.
    if let Some(s) = unsafe { saved.as_ref() } {
        // SAFETY: LabelSet is repr(C), 56 bytes (asserted above), and `opaque` holds one
        // written by `set_label`; any bytes are a valid LabelSet (integers only), read
        // unaligned-safe through the u64 array's alignment.
        let set = unsafe { core::ptr::read(s.opaque.as_ptr().cast::<crate::labels::LabelSet>()) };
        crate::labels::restore(&set);
    }
}

/// # Safety
/// `saved` NULL or writable.
unsafe fn set_label(key: u32, value: crate::labels::Value, saved: *mut vignette_label_saved) {
    // SAFETY: the caller's contract.
    let Some(out) = (unsafe { saved.as_mut() }) else {
        return;
    };
    let previous = crate::labels::set(crate::labels::LabelKey(key), value).into_previous();
    // SAFETY: 56 bytes into the 56-byte, 8-aligned array (asserted above).
    unsafe {
        core::ptr::write(
            out.opaque.as_mut_ptr().cast::<crate::labels::LabelSet>(),
            previous,
        )
    };
}

/// A C string argument as text ("" for NULL).
///
/// # Safety
/// `s` must be NULL or a NUL-terminated string.
unsafe fn text(s: *const c_char) -> String {
    if s.is_null() {
        return String::new();
    }
    // SAFETY: the caller's contract.
    unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
}

/// Takes a chunk or window with `f`; the write functions then write it.
///
/// # Safety
/// `p` as for `vignette_rotate`.
unsafe fn take(
    p: *mut vignette_profiler,
    f: impl FnOnce(&mut Profiler) -> Result<(), Error>,
) -> vignette_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let w = unsafe { p.as_mut() }.ok_or_else(|| invalid("profiler is NULL"))?;
        f(&mut w.inner).map_err(core_err)?;
        w.chunk = true;
        Ok(())
    })
}

/// Stores in `*out` what takes the samples (a `VIGNETTE_BACKEND_*` other than AUTO).
///
/// # Safety
/// `p` must be NULL or a profiler from `vignette_create` not yet destroyed; `out` NULL or a
/// writable `int`.
#[no_mangle]
pub unsafe extern "C" fn vignette_backend(
    p: *const vignette_profiler,
    out: *mut c_int,
) -> vignette_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let w = unsafe { p.as_ref() }.ok_or_else(|| invalid("profiler is NULL"))?;
        // SAFETY: the caller's contract.
        let out = unsafe { out.as_mut() }.ok_or_else(|| invalid("out is NULL"))?;
        *out = match w.inner.backend() {
            Backend::Unrecorded => VIGNETTE_BACKEND_AUTO,
            Backend::SamplerThread => VIGNETTE_BACKEND_SAMPLER_THREAD,
            Backend::PerfEvents => VIGNETTE_BACKEND_PERF_EVENTS,
            Backend::CpuTimers => VIGNETTE_BACKEND_CPU_TIMERS,
            Backend::Suspension => VIGNETTE_BACKEND_SUSPENSION,
        };
        Ok(())
    })
}

/// Sets metadata every profile then carries (`key` = `value`, as `Builder::metadata`): at
/// most 16 keys of 1 to 32 ASCII letters, digits, `_`, `-` or `.`, values of at most 128 bytes
/// of UTF-8 without control characters. Not while running or delivering.
///
/// # Safety
/// `p` must be NULL or a profiler from `vignette_create` not yet destroyed, used by one thread
/// at a time; `key` and `value` NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn vignette_set_metadata(
    p: *mut vignette_profiler,
    key: *const c_char,
    value: *const c_char,
) -> vignette_status {
    guard(|| {
        // SAFETY: the caller's contract: NULL or NUL-terminated strings.
        let text = |s: *const c_char, what| match unsafe { s.as_ref() } {
            None => Err(invalid(what)),
            // SAFETY: as above.
            Some(_) => unsafe { CStr::from_ptr(s) }
                .to_str()
                .map_err(|_| invalid("metadata is UTF-8")),
        };
        let (key, value) = (text(key, "key is NULL")?, text(value, "value is NULL")?);
        // SAFETY: the caller's contract (see `profiler`).
        unsafe { profiler(p) }?
            .set_metadata(key, value)
            .map_err(core_err)
    })
}

/// Starts sampling every thread of the process.
///
/// # Safety
/// `p` must be NULL or a profiler from `vignette_create` not yet destroyed, used by one thread
/// at a time.
#[no_mangle]
pub unsafe extern "C" fn vignette_start(p: *mut vignette_profiler) -> vignette_status {
    // SAFETY: the caller's contract (see `profiler`).
    guard(|| unsafe { profiler(p) }?.start().map_err(core_err))
}

/// Stops sampling; the profile stays in the profiler for the `vignette_write_*` functions
/// until the next start.
///
/// # Safety
/// `p` must be NULL or a profiler from `vignette_create` not yet destroyed, used by one thread
/// at a time.
#[no_mangle]
pub unsafe extern "C" fn vignette_stop(p: *mut vignette_profiler) -> vignette_status {
    guard(|| {
        // SAFETY: the caller's contract (see `profiler`).
        let w = unsafe { p.as_mut() }.ok_or_else(|| invalid("profiler is NULL"))?;
        w.chunk = false;
        w.inner.stop().map(|_| ()).map_err(core_err)
    })
}

/// Samples thread `tid` (0: every thread) right now, synchronously; the session stays open
/// until `vignette_stop`. Stores the number of samples kept in `kept` if not NULL.
///
/// # Safety
/// `p` must be NULL or a profiler from `vignette_create` not yet destroyed, used by one thread
/// at a time. `kept` must be NULL or point to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn vignette_sample_once(
    p: *mut vignette_profiler,
    tid: i32,
    kept: *mut usize,
) -> vignette_status {
    guard(|| {
        // SAFETY: the caller's contract (see `profiler`).
        let prof = unsafe { profiler(p) }?;
        let target = if tid == 0 {
            Target::AllThreads
        } else {
            Target::Thread(tid)
        };
        let n = prof.sample_once(target).map_err(core_err)?;
        // SAFETY: kept is NULL or writable by the caller's contract.
        if let Some(k) = unsafe { kept.as_mut() } {
            *k = n;
        }
        Ok(())
    })
}

fn with_capture<T>(
    p: &vignette_profiler,
    f: impl FnOnce(crate::Capture<'_>) -> Result<T, (vignette_status, String)>,
) -> Result<T, (vignette_status, String)> {
    let c = match p.chunk {
        true => p.inner.last_taken(),
        false => p.inner.last_capture(),
    };
    let c = c.ok_or_else(|| {
        (
            VIGNETTE_ERR_NOT_RUNNING,
            "no profile to write: call vignette_stop (or vignette_rotate) first".to_string(),
        )
    })?;
    f(c)
}

/// Writes the last stopped session's profile to the file at `path` (created or truncated).
///
/// # Safety
/// `p` must be NULL or a profiler from `vignette_create` not yet destroyed, used by one thread
/// at a time. `path` must be NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn vignette_write_path(
    p: *mut vignette_profiler,
    path: *const c_char,
) -> vignette_status {
    guard(|| {
        // SAFETY: the caller's contract (see `profiler`).
        let prof = unsafe { wrapper(p) }?;
        if path.is_null() {
            return Err(invalid("path is NULL"));
        }
        // SAFETY: path is a NUL-terminated string by the caller's contract.
        let path = unsafe { CStr::from_ptr(path) }
            .to_string_lossy()
            .into_owned();
        with_capture(prof, |c| {
            let io = |e: std::io::Error| (VIGNETTE_ERR_IO, format!("{path}: {e}"));
            let mut file = std::io::BufWriter::new(std::fs::File::create(&path).map_err(io)?);
            c.write_to(&mut file).map_err(core_err)?;
            file.flush().map_err(io)
        })
    })
}

/// Writes the last stopped session's profile to the open file descriptor `fd` (not closed).
///
/// # Safety
/// `p` must be NULL or a profiler from `vignette_create` not yet destroyed, used by one thread
/// at a time. `fd` must be open for writing.
#[no_mangle]
pub unsafe extern "C" fn vignette_write_fd(
    p: *mut vignette_profiler,
    fd: c_int,
) -> vignette_status {
    guard(|| {
        // SAFETY: the caller's contract (see `profiler`).
        let prof = unsafe { wrapper(p) }?;
        with_capture(prof, |c| {
            let bytes = c.to_vec();
            let mut done = 0;
            while done < bytes.len() {
                let rest = &bytes[done..];
                // Windows' write takes an unsigned int count: write at most 2 GiB at a time.
                #[cfg(windows)]
                let rest = &rest[..rest.len().min(i32::MAX as usize)];
                // SAFETY: rest is valid for reads of rest.len() bytes; fd is the caller's.
                let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len() as _) };
                if n < 0 {
                    let e = std::io::Error::last_os_error();
                    if e.kind() == std::io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err((VIGNETTE_ERR_IO, format!("writing to fd {fd}: {e}")));
                }
                done += n as usize;
            }
            Ok(())
        })
    })
}

/// Encodes the last stopped session's profile into `buf` (`len` bytes) and stores the bytes
/// used in `written`; with `VIGNETTE_ERR_BUFFER_TOO_SMALL`, `written` holds the size needed
/// (pass `buf = NULL, len = 0` to ask for it).
///
/// # Safety
/// `p` must be NULL or a profiler from `vignette_create` not yet destroyed, used by one thread
/// at a time. `buf` must be NULL or point to `len` writable bytes;
/// `written` must be NULL or point to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn vignette_write_buffer(
    p: *mut vignette_profiler,
    buf: *mut u8,
    len: usize,
    written: *mut usize,
) -> vignette_status {
    guard(|| {
        // SAFETY: the caller's contract (see `profiler`).
        let prof = unsafe { wrapper(p) }?;
        if written.is_null() || (buf.is_null() && len > 0) {
            return Err(invalid("written is NULL, or buf is NULL with len > 0"));
        }
        with_capture(prof, |c| {
            let out: &mut [u8] = if buf.is_null() {
                &mut []
            } else {
                // SAFETY: buf is valid for writes of len bytes by the caller's contract.
                unsafe { std::slice::from_raw_parts_mut(buf, len) }
            };
            let result = c.encode_into(out);
            // SAFETY: written is non-null (checked) and writable.
            unsafe {
                *written = match result {
                    Ok(n) => n,
                    Err(Error::BufferTooSmall { needed }) => needed,
                    Err(_) => 0,
                }
            };
            result.map(|_| ()).map_err(core_err)
        })
    })
}

/// Stops the profiler if running and frees it. NULL is ignored.
///
/// # Safety
/// `p` must be NULL or a profiler from `vignette_create` not yet destroyed, and no other
/// thread may use it during or after this call.
#[no_mangle]
pub unsafe extern "C" fn vignette_destroy(p: *mut vignette_profiler) {
    if !p.is_null() {
        // SAFETY: p came from vignette_create (Box::into_raw) and is destroyed once, by the
        // caller's contract.
        let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(p) })));
    }
}

/// The message of the last failed call on this thread ("" after a success). Valid until the
/// next vignette call on this thread.
#[no_mangle]
pub extern "C" fn vignette_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.as_ptr().cast::<c_char>().cast_const())
}

/// Reports an allocation of `size` bytes at `ptr` from the program's own allocator (or its
/// `malloc` wrapper), after it succeeded: sampled as `vignette::alloc` samples, its stack
/// walked from the caller. Callable at any moment, from inside an allocator: no allocation,
/// no lock; nothing while no profiler samples allocations.
#[no_mangle]
pub extern "C" fn vignette_heap_alloc(ptr: *const std::ffi::c_void, size: usize) {
    crate::alloc::record_alloc(ptr as usize, size);
}

/// Reports the free of the allocation at `ptr`, before the memory is given back (another
/// thread may get the same address once it is). As `vignette_heap_alloc`, callable from
/// inside an allocator.
#[no_mangle]
pub extern "C" fn vignette_heap_free(ptr: *const std::ffi::c_void) {
    crate::alloc::record_free(ptr as usize);
}

/// The calling thread's kernel thread id (for `vignette_sample_once`).
#[no_mangle]
pub extern "C" fn vignette_current_thread_id() -> i32 {
    Profiler::current_thread_id()
}
