//! The suspend-copy-resume engine (Windows, macOS), as Chromium's `StackSamplingProfiler`
//! and the Gecko profiler sample there: the sampler thread, for each thread due a sample,
//! suspends it, reads its registers, copies the live part of its stack into a buffer
//! allocated at `build()`, resumes it, and only then walks the copy (with the x64 `.pdata`
//! unwinder on Windows, compact unwind and `__eh_frame` on macOS, or frame pointers) into the
//! sample ring, which the session tables drain as on Linux.
//!
//! # While a thread is suspended
//! It may hold the heap lock, the loader lock or any other: between suspending and resuming,
//! the engine runs only `sys::suspend::Target::capture`, which makes lock-free system calls
//! into memory allocated before. Listing threads and modules (both take locks) happens between
//! samples, with no thread suspended.

mod code;
mod image_cache;

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::*};

use super::pace::{Pacer, Pacing, Spent};
use super::series::Series;
use crate::collector::{Collector, SlotState};
use crate::error::{Error, Result};
use crate::modules::ModuleMap;
use crate::profile::Clock;
use crate::profiler::Target;
use crate::ring::{SampleMeta, SampleRing};
use crate::sys::mem::{MapBox, Region};
use crate::sys::{loader, suspend, threads, time};
use crate::unwind::{fp, only_ip, EndReason, SliceStack, Unwinder};
use code::CodeMap;
use image_cache::ImageCache;

/// How often the sampler thread re-lists the process's threads (and, if the loader's
/// notifications are not available, its modules).
const SCAN_NS: u64 = 10_000_000;

/// Scans between listings of the modules when the loader's notifications say nothing changed.
const FULL_MODULE_SCANS: u64 = 100;

/// Blocks of module memory cached for the unwinder (64 bytes each).
const IMAGE_CACHE_BLOCKS: usize = 4096;

/// The most stack copied per sample.
const MAX_STACK_COPY: usize = 512 * 1024;

/// What sampling by suspension has cost ([`crate::Profiler::suspensions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Suspensions {
    /// Threads suspended (one per sample taken).
    pub count: u64,
    /// Nanoseconds they were suspended in all (reading registers, copying the stack).
    pub suspended_ns: u64,
    /// The longest one suspension took.
    pub longest_ns: u64,
    /// Nanoseconds the sampler spent walking the copied stacks (after resuming them).
    pub walk_ns: u64,
    /// Blocks of module memory (unwind info, code) the walks read, and how many of them came
    /// from vignette's cache rather than a system call (`ReadProcessMemory`,
    /// `mach_vm_read_overwrite`).
    pub image_reads: u64,
    /// See `image_reads`.
    pub image_reads_cached: u64,
}

/// The profiler that exists, if any (one at a time, as on Linux).
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The state shared by the profiler and its sampler thread.
pub(crate) struct Shared {
    pub generation: AtomicU32,
    pub ring: SampleRing,
    pub code: CodeMap,
    pub unwinder: Unwinder,
    /// Samples dropped because the ring was full.
    pub ring_full: AtomicU64,
    /// Asks the sampler thread to finish.
    pub stop: AtomicU32,
    /// The overhead budget (the sampler thread's CPU is all of vignette's cost here).
    pub pacing: Pacing,
    /// How many suspensions, the nanoseconds threads spent suspended (total and longest), and
    /// the nanoseconds spent walking the copies.
    suspensions: AtomicU64,
    suspended_ns: AtomicU64,
    longest_ns: AtomicU64,
    walk_ns: AtomicU64,
    image_hits: AtomicU64,
    image_misses: AtomicU64,
    pid: i32,
}

impl Shared {
    pub fn new(settings: &super::Settings) -> Result<Self> {
        let &super::Settings {
            unwinder,
            ring_slots,
            max_frames,
            max_modules,
            budget_ppm,
            ..
        } = settings;
        Ok(Shared {
            generation: AtomicU32::new(0),
            ring: SampleRing::new(ring_slots, max_frames)?,
            code: CodeMap::new(max_modules)?,
            unwinder,
            ring_full: AtomicU64::new(0),
            stop: AtomicU32::new(0),
            pacing: Pacing::new(budget_ppm),
            suspensions: AtomicU64::new(0),
            suspended_ns: AtomicU64::new(0),
            longest_ns: AtomicU64::new(0),
            walk_ns: AtomicU64::new(0),
            image_hits: AtomicU64::new(0),
            image_misses: AtomicU64::new(0),
            pid: threads::getpid(),
        })
    }

    pub fn mapped_bytes(&self) -> usize {
        self.ring.mapped_bytes() + self.code.mapped_bytes()
    }

    /// Re-reads the module list if it changed (or `force`).
    pub fn refresh_modules(&self, modules: &mut ModuleMap, force: bool) {
        self.code.refresh(modules, force);
    }

    /// Starts a new generation.
    pub fn next_generation(&self) -> u32 {
        let g = self.generation.load(SeqCst).wrapping_add(1);
        self.generation.store(g, SeqCst);
        g
    }

    /// The process the state belongs to.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// What the suspensions have cost so far.
    pub fn suspension_stats(&self) -> Suspensions {
        Suspensions {
            count: self.suspensions.load(Relaxed),
            suspended_ns: self.suspended_ns.load(Relaxed),
            longest_ns: self.longest_ns.load(Relaxed),
            walk_ns: self.walk_ns.load(Relaxed),
            image_reads: self.image_hits.load(Relaxed) + self.image_misses.load(Relaxed),
            image_reads_cached: self.image_hits.load(Relaxed),
        }
    }
}

/// What the sampler works with; owned by the sampler thread while it runs.
pub(crate) struct Job {
    pub shared: *const Shared,
    /// The active session's tables.
    pub collector: Collector,
    /// Rotation and the flight recorder.
    pub series: Series,
    pub clock: Clock,
    pub interval_ns: u64,
    pub generation: u32,
    /// Per slot, the thread's handle.
    threads: Region<suspend::Target>,
    stack: Region<u8>,
    /// Module memory the walks read, and the code map epoch it was filled under.
    image: ImageCache,
    image_epoch: u32,
}

/// The backend: threads are always suspended here.
pub(crate) fn choose_backend(
    _clock: crate::profile::Clock,
    forced: Option<crate::profile::Backend>,
) -> crate::Result<crate::profile::Backend> {
    use crate::profile::Backend;
    match forced {
        None | Some(Backend::Suspension) => Ok(Backend::Suspension),
        Some(_) => Err(crate::Error::InvalidConfig(
            "this system samples by thread suspension only",
        )),
    }
}

impl Job {
    /// The job of a profiler whose shared state is `shared`.
    pub fn new(
        shared: &MapBox<Shared>,
        collector: Collector,
        series: Series,
        clock: Clock,
        _backend: crate::profile::Backend,
        interval_ns: u64,
    ) -> Result<Job> {
        let slots = collector.slots.len();
        Ok(Job {
            shared: &**shared,
            collector,
            series,
            clock,
            interval_ns,
            generation: 0,
            threads: Region::new(slots)?,
            stack: Region::new(MAX_STACK_COPY)?,
            image: ImageCache::new(IMAGE_CACHE_BLOCKS)?,
            image_epoch: 0,
        })
    }

    /// Re-lists the threads ([`Collector::scan_threads`]), opening each new one's target while
    /// the listing holds it (so that the id cannot come to name another thread, or on macOS
    /// another port, before the target holds it itself).
    fn scan_threads(&mut self, skip: i32, missed_each: u64, new_cpu_mark: impl Fn(i32) -> u64) {
        let threads = &mut self.threads;
        self.collector
            .scan_threads_then(skip, missed_each, new_cpu_mark, |slot, tid| {
                if let Some(t) = threads.get_mut(slot) {
                    t.open(tid);
                }
            });
    }

    /// Samples the thread in slot `slot` now, with `weight`: suspend, copy, resume, walk the
    /// copy into the ring. A thread found gone is marked dead.
    fn sample(&mut self, shared: &Shared, slot: usize, weight: u32) {
        let Some(&rec) = self.collector.slots.get(slot) else {
            return;
        };
        let Some(t) = self.threads.get_mut(slot) else {
            return;
        };
        if !t.open(rec.tid) {
            self.collector.mark_dead(slot);
            return;
        }
        let (cap, stopped) = match t.capture(&mut self.stack) {
            Ok(c) => c,
            Err(_) => {
                t.close();
                self.collector.mark_dead(slot);
                return;
            }
        };
        shared.suspended_ns.fetch_add(stopped, Relaxed);
        shared.suspensions.fetch_add(1, Relaxed);
        shared.longest_ns.fetch_max(stopped, Relaxed);
        let walk_start = time::monotonic_ns();
        // A library loaded or unloaded since the tables were made: update them (the thread
        // runs again, so the loader lock may be taken) before walking, so that the walk and
        // the frames' modules are as new as the sample.
        if shared.code.loader_changed() {
            shared.code.refresh(&mut self.collector.modules, false);
        }
        let time_ns = time::monotonic_ns();
        let Some(mut out) = shared.ring.claim() else {
            shared.ring_full.fetch_add(weight as u64, Relaxed);
            return;
        };
        let regs = cap.regs();
        let mut stack = SliceStack {
            base: regs.sp(),
            bytes: self.stack.get(..cap.copied).unwrap_or(&[]),
        };
        let frames = out.frames();
        // Cached module memory is good only for the tables it was read under.
        if self.image_epoch != shared.code.epoch() {
            self.image.clear();
            self.image_epoch = shared.code.epoch();
        }
        let (len, end) = match shared.unwinder {
            Unwinder::FramePointers => fp::walk(&regs, &stack, frames),
            Unwinder::Cfi => {
                let image = self.image.reader();
                shared
                    .code
                    .with(|tables| tables.walk(&regs, &mut stack, &image, frames))
                    .unwrap_or_else(|| only_ip(&regs, frames, EndReason::NoUnwindInfo))
            }
        };
        shared
            .walk_ns
            .fetch_add(time::monotonic_ns().saturating_sub(walk_start), Relaxed);
        shared
            .image_hits
            .fetch_add(core::mem::take(&mut self.image.hits), Relaxed);
        shared
            .image_misses
            .fetch_add(core::mem::take(&mut self.image.misses), Relaxed);
        out.publish(SampleMeta {
            time_ns,
            thread: slot as u32,
            weight,
            len: len as u32,
            end: end as u8,
            generation: self.generation,
            code_epoch: shared.code.epoch(),
            labels: cap.labels,
        });
    }
}

impl Job {
    /// Bytes mapped for the job's tables and buffers.
    pub fn mapped_bytes(&self) -> usize {
        self.collector.mapped_bytes()
            + self
                .series
                .recorder
                .as_ref()
                .map_or(0, |r| r.mapped_bytes())
            + self.threads.mapped_bytes()
            + self.stack.mapped_bytes()
            + self.image.mapped_bytes()
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        for t in self.threads.iter_mut() {
            t.close();
        }
    }
}

/// One round: every live thread (clock `Wall`, with `wall_weight`) or every thread that used
/// at least one interval of CPU since its last sample (clock `Cpu`) is sampled.
fn round(job: &mut Job, shared: &Shared, wall_weight: u32) {
    for i in 0..job.collector.slots_len {
        let Some(&s) = job.collector.slots.get(i) else {
            break;
        };
        if s.state != SlotState::Live {
            continue;
        }
        let thread = job.threads.get_mut(i);
        // The thread's handle, opened once and kept for its samples.
        let cpu = || thread.and_then(|t| if t.open(s.tid) { t.cpu_ns() } else { None });
        let Some(weight) =
            (job.collector).due_weight(i, job.clock, wall_weight, job.interval_ns, cpu)
        else {
            continue;
        };
        job.sample(shared, i, weight);
    }
}

/// The sampler thread's entry point (Windows' thread signature).
#[cfg(windows)]
pub(super) unsafe extern "system" fn sampler_main(arg: *mut c_void) -> u32 {
    // SAFETY: as `start_job`'s contract.
    unsafe { start_job(arg) };
    0
}

/// The sampler thread's entry point (a pthread's signature).
#[cfg(target_os = "macos")]
pub(super) extern "C" fn sampler_main(arg: *mut c_void) -> *mut c_void {
    crate::sys::spawn::set_current_name(c"vignette");
    // SAFETY: as `start_job`'s contract.
    unsafe { start_job(arg) };
    core::ptr::null_mut()
}

/// Runs the job `arg` points to.
///
/// # Safety
/// `arg` is the Job pointer `Running::start` passes, which it keeps alive (and does not
/// touch) until it has joined this thread.
unsafe fn start_job(arg: *mut c_void) {
    // SAFETY: the caller's promise.
    let job = unsafe { &mut *(arg as *mut Job) };
    // SAFETY: the profiler frees Shared only after joining this thread.
    let shared = unsafe { &*job.shared };
    run(job, shared);
}

fn run(job: &mut Job, shared: &Shared) {
    let me = threads::gettid();
    let interval = job.interval_ns;
    let missed_per_scan = (SCAN_NS / interval).max(1);
    job.scan_threads(me, missed_per_scan, |tid| {
        time::thread_cpu_ns(tid).unwrap_or(0)
    });
    job.collector.reset_cpu_marks();
    shared.refresh_modules(&mut job.collector.modules, false);
    let mut now = time::monotonic_ns();
    let mut pacer = Pacer::new(interval, now, &shared.pacing, 0);
    let mut next_scan = now + SCAN_NS;
    let mut scans = 0u64;
    let mut wall_weight = 1;
    while shared.stop.load(Acquire) == 0 {
        if now >= next_scan {
            job.scan_threads(me, missed_per_scan, |_| 0);
            // Listing modules costs a system call or more per module (hundreds of them on
            // macOS): with the loader's notifications it is done when they report a change,
            // and every `FULL_MODULE_SCANS` scans in case a removal was reported before the
            // module left the list.
            scans += 1;
            if shared.code.loader_changed()
                || loader::changes().is_none()
                || scans.is_multiple_of(FULL_MODULE_SCANS)
            {
                shared.refresh_modules(&mut job.collector.modules, false);
            }
            next_scan = now + SCAN_NS;
        }
        round(job, shared, wall_weight);
        let generation = job.generation;
        let mut drain_into = |c: &mut Collector| {
            drain(c, shared, generation);
        };
        drain_into(&mut job.collector);
        job.series
            .tick(&mut job.collector, &mut drain_into, &shared.ring_full);
        // Under a budget: every sample is taken by this thread, whose CPU is all vignette
        // costs the process here.
        pacer.review(now, &shared.pacing, |_, _| Spent {
            process_ns: time::process_cpu_ns().unwrap_or(0),
            vignette_ns: time::thread_cpu_ns(me).unwrap_or(0),
        });
        job.series.sleep_serving(
            pacer.next_tick(),
            &mut job.collector,
            &mut drain_into,
            &shared.ring_full,
            &shared.stop,
        );
        now = time::monotonic_ns();
        wall_weight = pacer.tick(now);
    }
    drain(&mut job.collector, shared, job.generation);
}

/// Drains the ring into the session's tables (the modules are current: the sampler thread
/// refreshed them before the walks).
pub(crate) fn drain(c: &mut Collector, shared: &Shared, generation: u32) -> usize {
    c.drain(&shared.ring, |_| {}, generation)
}

/// Samples `target` now, from the calling thread, into the open session.
pub(crate) fn sample_now(
    shared: &Shared,
    job: &mut Job,
    generation: u32,
    target: Target,
    _timeout_ns: u64,
) -> Result<usize> {
    let me = threads::gettid();
    job.generation = generation;
    job.scan_threads(-1, 1, |_| 0);
    shared.refresh_modules(&mut job.collector.modules, false);
    match target {
        Target::AllThreads => {
            for i in 0..job.collector.slots_len {
                let Some(&s) = job.collector.slots.get(i) else {
                    break;
                };
                if s.state == SlotState::Live && s.tid != me {
                    job.sample(shared, i, 1);
                }
            }
        }
        Target::Thread(tid) if tid == me => return Err(Error::NoSuchThread(tid)),
        Target::Thread(tid) => {
            let i = job
                .collector
                .find_thread(tid)
                .ok_or(Error::NoSuchThread(tid))?;
            job.sample(shared, i, 1);
        }
    }
    Ok(drain(&mut job.collector, shared, generation))
}

/// Makes `shared` the live profiler's (fails if another profiler exists) and starts counting
/// the loader's loads and unloads (without that count, the module tables are checked at every
/// thread scan instead).
pub(crate) fn claim_handler(_shared: &MapBox<Shared>) -> Result<()> {
    if ACTIVE.swap(true, SeqCst) {
        return Err(Error::AlreadyExists);
    }
    loader::watch();
    Ok(())
}

/// Releases what [`claim_handler`] took; always succeeds (no handler can be running).
pub(crate) fn release_handler(_shared: &Shared) -> bool {
    loader::unwatch();
    ACTIVE.store(false, SeqCst);
    true
}

/// As [`release_handler`] (in a forked child on macOS, where the sampler thread does not
/// exist; Windows has no `fork`).
pub(crate) fn release_inherited_handler(shared: &Shared) {
    release_handler(shared);
}

/// A thread's walk of its own stack (the heap sampler's, with `std`): not done by this engine yet, so
/// heap samples here keep no stack (`None`).
///
/// # Signal safety
/// Async-signal-safe: returns at once.
#[cfg(feature = "std")]
pub(crate) fn walk_own_stack(
    _regs: &crate::unwind::Regs,
    _above_sp: u64,
    _frames: &mut [u64],
) -> Option<(usize, EndReason, u32)> {
    None
}
