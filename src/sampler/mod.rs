//! The sampling machinery, in one of two engines, which `profiler.rs` drives:
//!
//! - [`signal`] (Linux): the sampler thread sends each thread a signal, and the thread walks
//!   its own stack in the handler;
//! - `suspend` (Windows, macOS): the sampler thread suspends each thread, copies its stack,
//!   resumes it, and walks the copy.
//!
//! # The engine contract
//! Each engine provides, under the same names (glob-imported here for its platforms):
//! - `Shared`: what the sampled threads (or the sampler) and the profiler share, built by
//!   `Shared::new(&Settings)` at `build()`, with `pacing` ([`pace::Pacing`]), `ring`,
//!   `ring_full`, `stop`, `generation`, `next_generation()`, `pid()`, `refresh_modules()`,
//!   `mapped_bytes()`;
//! - `Job`: the sampler thread's tables (its `collector` and `series`), and `sampler_main`,
//!   the thread's entry point, which runs until `stop`, ticking as a [`pace::Pacer`] says
//!   (the kernel-timed backends have no ticks: their loop only keeps timers in step and
//!   drains) and taking each thread's weight from `Collector::due_weight`;
//! - `choose_backend`, `claim_handler`, `release_handler`, `release_inherited_handler`
//!   (no-ops where nothing is installed), `drain` and `sample_now`.
//!
//! Building for the other engine's platform (`cargo clippy --target x86_64-pc-windows-gnu`,
//! `aarch64-apple-darwin`, as `.ci/run` does) checks that both keep it.

pub(crate) mod pace;
pub(crate) mod series;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) mod signal;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use signal::*;
#[cfg(any(windows, target_os = "macos"))]
pub(crate) mod suspend;
#[cfg(any(windows, target_os = "macos"))]
pub(crate) use suspend::*;

use crate::profile::Backend;
use crate::sys::mem::MapBox;
use crate::unwind::Unwinder;

/// What the engine's `Shared::new` sets up: the settings `build()` checked (the suspending
/// engine signals no one and needs no per-thread tables).
#[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
pub(crate) struct Settings {
    pub signal: i32,
    pub backend: Backend,
    pub unwinder: Unwinder,
    pub ring_slots: usize,
    pub max_frames: usize,
    pub max_threads: usize,
    pub max_modules: usize,
    /// The overhead budget in millionths (0: none).
    pub budget_ppm: u32,
}
use crate::sys::spawn;
use core::sync::atomic::Ordering::Release;

/// A running sampler thread and the job it owns (the engine's `sampler_main` runs it).
pub(crate) struct Running {
    thread: spawn::RawThread,
    job: *mut Job,
}

impl Running {
    /// Starts the sampler thread on `job`; gives the job back if the thread cannot start.
    pub fn start(job: MapBox<Job>) -> core::result::Result<Running, (crate::Error, MapBox<Job>)> {
        let ptr = job.into_raw();
        // SAFETY: the job stays alive until `finish` joins the thread and takes it back.
        match unsafe { spawn::RawThread::spawn(sampler_main, ptr.cast()) } {
            Ok(thread) => Ok(Running { thread, job: ptr }),
            // SAFETY: the thread did not start, so ptr is still exclusively ours.
            Err(e) => Err((e, unsafe { MapBox::from_raw(ptr) })),
        }
    }

    /// In a child after `fork()`, where the sampler thread does not exist: takes the job back
    /// without joining (never reached on Windows, which has no `fork`).
    pub fn abandon(self) -> MapBox<Job> {
        // SAFETY: fork copies only the calling thread, so no thread of this process uses the
        // job.
        unsafe { MapBox::from_raw(self.job) }
    }

    /// Stops the thread (waking it from its sleep between ticks, on `exchange`'s bell) and
    /// returns its job.
    pub fn finish(self, shared: &Shared, exchange: &series::Exchange) -> MapBox<Job> {
        shared.stop.store(1, Release);
        exchange.ring();
        // A failed join means the thread is already gone; the job is ours either way.
        let _ = self.thread.join();
        shared.stop.store(0, Release);
        // SAFETY: the thread has been joined, so nothing else uses the job.
        unsafe { MapBox::from_raw(self.job) }
    }
}
