//! Heap profiles: a wrapping global allocator that samples allocations by bytes, as Go's
//! runtime, tcmalloc and jemalloc do, and keeps the live heap per stack.
//!
//! ```no_run
//! use std::alloc::System;
//! use vignette::alloc::Sampled;
//!
//! #[global_allocator]
//! static ALLOC: Sampled<System> = Sampled::new(System);
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut profiler = vignette::Profiler::builder()
//!     .sample_allocations(vignette::alloc::DEFAULT_MEAN_BYTES)
//!     .build()?;
//! profiler.start()?;
//! // ... the work to profile ...
//! let capture = profiler.stop()?; // its profile has the heap: allocated and in use, per stack
//! # Ok(()) }
//! ```
//!
//! **Sampling.** Each thread counts down the bytes it allocates from a draw of an
//! exponential distribution (mean [`DEFAULT_MEAN_BYTES`], or what
//! [`crate::Builder::sample_allocations`] sets); the allocation that crosses zero is sampled and
//! a new draw starts. An allocation of `s` bytes is so sampled with probability
//! `p = 1 - exp(-s / mean)`, and stands for `s / p` bytes and `1 / p` objects: unbiased
//! estimates, and every allocation much larger than the mean is seen.
//!
//! **A sample** walks the allocating thread's own stack there and then (no signal), with the
//! running profiler's unwinders and code map, leaving out the allocator's own frames; finds or
//! adds its stack in a fixed table of sites and adds the estimates; and tracks the address as
//! live. Every free looks its address up (one cache line; nothing while no sampled allocation
//! lives) and takes a sampled one off its site's live counts, so the live heap per stack is
//! known at any moment. Every profile the profiler captures carries it (`Profile::heap`).
//!
//! **Inside the allocator** nothing allocates, locks or panics: the tables are mapped once per
//! process ([`crate::Builder::build`]) and never unmapped, the thread's state is a few plain
//! thread-locals, and an allocation made while the thread is already inside the sampler (a
//! program's signal handler that allocates) is not sampled. Samples keep their stacks on Linux;
//! on Windows and macOS they are counted with no stack for now.

mod table;

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering::*};

pub(crate) use table::{HeapTables, MAX_SITES, OBJECT_SCALE, SITE_FRAMES};

use crate::error::Result;
use crate::sys::here;

/// The mean bytes between sampled allocations unless the application sets another: 512 KiB,
/// Go's `MemProfileRate`.
pub const DEFAULT_MEAN_BYTES: u64 = 512 * 1024;

/// The tables, once mapped (never unmapped).
static TABLES: AtomicPtr<HeapTables> = AtomicPtr::new(core::ptr::null_mut());
/// The mean bytes between samples while sampling is on; 0 while it is off.
static MEAN: AtomicU64 = AtomicU64::new(0);

/// A global allocator that samples the allocations of `A` (see the [module docs](self)).
/// Until a profiler that samples allocations starts, it only passes calls on.
#[derive(Debug, Default)]
pub struct Sampled<A> {
    inner: A,
}

impl<A> Sampled<A> {
    /// Wraps `inner`.
    pub const fn new(inner: A) -> Self {
        Sampled { inner }
    }
}

// SAFETY: every call is passed to `inner` unchanged; the sampling around it only reads and
// writes vignette's own tables.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Sampled<A> {
    // Not inlined, so that the frame of the program's call is always above this one's: the
    // walk leaves out this frame and the ones it calls by their stack pointers.
    #[inline(never)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { self.inner.alloc(layout) };
        if !p.is_null() && due(layout.size()) {
            sample(p as usize, layout.size(), here::sp());
        }
        p
    }

    #[inline(never)]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { self.inner.alloc_zeroed(layout) };
        if !p.is_null() && due(layout.size()) {
            sample(p as usize, layout.size(), here::sp());
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Before the memory goes back: once it has, another thread may get the same address.
        forget(ptr as usize);
        // SAFETY: the caller's contract, passed on.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    #[inline(never)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A reallocation is a new allocation of `new_size` bytes (jemalloc counts it so);
        // the old one is forgotten first, as in `dealloc`. If it fails, the old block stays
        // with the program, no longer counted live.
        forget(ptr as usize);
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if !p.is_null() && due(new_size) {
            sample(p as usize, new_size, here::sp());
        }
        p
    }
}

/// Counts a sampled allocation of `size` bytes at `ptr` from a program's own allocator (the C
/// API's `vignette_heap_alloc`): sampled as [`Sampled`] samples, its stack walked from the
/// caller of this function.
///
/// # Signal safety
/// As an allocator: no allocation, no lock, no panic.
#[inline(never)]
pub fn record_alloc(ptr: usize, size: usize) {
    if ptr != 0 && due(size) {
        sample(ptr, size, here::sp());
    }
}

/// Counts the free of the allocation at `ptr` from a program's own allocator (the C API's
/// `vignette_heap_free`), before the memory is given back.
///
/// # Signal safety
/// As an allocator: no allocation, no lock, no panic.
#[inline]
pub fn record_free(ptr: usize) {
    forget(ptr);
}

/// Maps the tables if they are not yet (at a profiler's `build()`, never inside the
/// allocator).
pub(crate) fn prepare() -> Result<()> {
    if !TABLES.load(Acquire).is_null() {
        return Ok(());
    }
    let tables = crate::sys::mem::MapBox::new(HeapTables::new()?)?.into_raw();
    if TABLES
        .compare_exchange(core::ptr::null_mut(), tables, AcqRel, Acquire)
        .is_err()
    {
        // Another profiler's build mapped them first.
        // SAFETY: ours, never published.
        drop(unsafe { crate::sys::mem::MapBox::from_raw(tables) });
    }
    Ok(())
}

/// Starts sampling with `mean_bytes` between samples (after [`prepare`]).
pub(crate) fn start(mean_bytes: u64) {
    MEAN.store(mean_bytes.max(1), Release);
}

/// Stops sampling (frees of sampled allocations are still taken off the live counts).
pub(crate) fn stop() {
    MEAN.store(0, Release);
}

/// The tables, once mapped.
#[inline]
pub(crate) fn tables() -> Option<&'static HeapTables> {
    // SAFETY: published once, never unmapped.
    unsafe { TABLES.load(Acquire).as_ref() }
}

/// A thread's sampling state: plain cells, no destructor, so they work at any moment of the
/// thread's life, exit included.
struct ThreadState {
    /// Bytes left before the next sample (at or below 0: due).
    left: Cell<i64>,
    /// The random generator's state; 0 until the thread's first sample decision.
    rng: Cell<u64>,
    /// Inside [`sample`].
    busy: Cell<bool>,
}

std::thread_local! {
    static STATE: ThreadState = const {
        ThreadState {
            left: Cell::new(0),
            rng: Cell::new(0),
            busy: Cell::new(false),
        }
    };
}

/// Counts `size` bytes down on this thread: whether this allocation is to be sampled. While
/// sampling is off, one relaxed load.
///
/// # Signal safety
/// As an allocator: thread-local cells only.
#[inline(always)]
fn due(size: usize) -> bool {
    if MEAN.load(Relaxed) == 0 {
        return false;
    }
    STATE
        .try_with(|s| {
            let left = s
                .left
                .get()
                .saturating_sub(size.min(i64::MAX as usize) as i64);
            s.left.set(left);
            left < 0
        })
        .unwrap_or(false)
}

/// Forgets the allocation at `ptr` if it was sampled.
///
/// # Signal safety
/// As an allocator: see [`HeapTables::forget`].
#[inline(always)]
fn forget(ptr: usize) {
    if let Some(t) = tables() {
        t.forget(ptr);
    }
}

/// Samples the allocation of `size` bytes at `ptr` that made this thread's count cross zero,
/// walking the stack above `above_sp` (an address in the frame of the allocator's entry), and
/// draws the next count.
///
/// # Signal safety
/// As an allocator: see the [module docs](self).
#[cold]
#[inline(never)]
fn sample(ptr: usize, size: usize, above_sp: u64) {
    let mean = MEAN.load(Relaxed);
    let Some(tables) = tables().filter(|_| mean > 0) else {
        return;
    };
    let _ = STATE.try_with(|s| {
        if s.busy.replace(true) {
            tables.misses.reentrant.fetch_add(1, Relaxed);
            return;
        }
        let mut take = true;
        if s.rng.get() == 0 {
            // The thread's first count: it had none to cross, so draw it now and count this
            // allocation against it.
            s.rng.set(seed(&s.rng as *const Cell<u64> as u64));
            let left = draw(&s.rng, mean).saturating_sub(size.min(i64::MAX as usize) as i64);
            s.left.set(left);
            take = left < 0;
        }
        if take {
            s.left.set(draw(&s.rng, mean));
            let (bytes, objects) = estimate(size as u64, mean);
            let mut frames = [0u64; SITE_FRAMES];
            let regs = here::regs();
            let walked = crate::sampler::walk_own_stack(&regs, above_sp, &mut frames);
            let frames =
                walked.map(|(len, _, epoch)| (frames.get(..len).unwrap_or_default(), epoch));
            tables.record(ptr, frames, bytes, objects);
        }
        s.busy.set(false);
    });
}

/// The estimates one sampled allocation of `size` bytes stands for at `mean` bytes between
/// samples: `size / p` bytes and `1 / p` objects (scaled by [`OBJECT_SCALE`]), where
/// `p = 1 - exp(-size / mean)` is its chance of being sampled.
fn estimate(size: u64, mean: u64) -> (u64, u64) {
    let x = size as f64 / mean as f64;
    // 1 - exp(-x), accurate for small x too.
    let p = -(-x).exp_m1();
    if p.is_nan() || p <= 0.0 {
        return (mean, mean.saturating_mul(OBJECT_SCALE) / size.max(1));
    }
    ((size as f64 / p) as u64, (OBJECT_SCALE as f64 / p) as u64)
}

/// A draw of an exponential distribution with mean `mean`, in bytes.
fn draw(rng: &Cell<u64>, mean: u64) -> i64 {
    // xorshift64*: the top 53 bits as a uniform in (0, 1].
    let mut x = rng.get();
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng.set(x);
    let u = ((x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    let d = -u.ln() * mean as f64;
    d.min(i64::MAX as f64 / 2.0) as i64
}

/// A thread's first random state: from its address and the time, never 0; or
/// [`set_seed`]'s when a test fixed one.
fn seed(salt: u64) -> u64 {
    let fixed = SEED.load(Relaxed);
    let s = match fixed {
        0 => salt ^ crate::sys::time::monotonic_ns().rotate_left(32),
        fixed => fixed,
    };
    (s.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5851_F42D_4C95_7F2D) | 1
}

/// A fixed seed for threads' first draws (0: from the address and time).
static SEED: AtomicU64 = AtomicU64::new(0);

/// Makes every thread that has not yet decided a sample draw from `seed` (0: from its address
/// and the time): for tests whose bounds must hold on every run.
pub fn set_seed(seed: u64) {
    SEED.store(seed, Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_are_unbiased_for_small_and_large_allocations() {
        let mean = 512 * 1024;
        // Much larger than the mean: always sampled, stands for itself.
        let (b, o) = estimate(64 << 20, mean);
        assert_eq!((b, o), (64 << 20, OBJECT_SCALE));
        // Small: about mean bytes and mean / size objects.
        let (b, o) = estimate(64, mean);
        assert!((b as f64 - mean as f64).abs() < 64.0, "{b}");
        assert!(((o / OBJECT_SCALE) as f64 - 8192.0).abs() < 2.0, "{o}");
        // Draws average the mean.
        let rng = Cell::new(seed(7));
        let n = 100_000;
        let sum: i64 = (0..n).map(|_| draw(&rng, 1000)).sum();
        let avg = sum as f64 / n as f64;
        assert!((avg - 1000.0).abs() < 15.0, "{avg}");
    }
}
