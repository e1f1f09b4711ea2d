//! A session as a series: rotation into chunks and the flight recorder's window, both taken
//! while the sampler thread runs.
//!
//! The sampler thread fills the active session's tables. Whoever reads (the application
//! through the profiler, or vignette's delivery thread) asks for the next chunk through the
//! [`Exchange`] and waits; the sampler thread serves the request between two ticks, off the
//! signal path: it drains the ring into the active tables, then either swaps them with the
//! exchange's output tables and continues in those (rotation: not one sample lost or counted
//! twice, time ranges that abut), or merges the flight recorder's sealed segments and the
//! active tables, from the window's start on, into the output (the window). The reader then
//! reads the output alone until it asks again; the sampler touches the output only while
//! serving a request. Every table is allocated at `build()`.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};

use arrayvec::ArrayVec;

use crate::collector::{Capacities, ChunkRec, Collector, TriggerRec};
use crate::error::{Error, Result};
use crate::sys::{threads, time};

/// Sealed segments the flight recorder keeps besides the active one; each spans a quarter of
/// the window, so together they always cover it.
pub(crate) const SEGMENTS: usize = 4;

/// How long a reader waits for the sampler thread to serve its request.
const SERVE_TIMEOUT_NS: u64 = 5_000_000_000;

/// The longest the sampler thread sleeps before looking for requests again.
pub(crate) const REQUEST_POLL_NS: u64 = 5_000_000;

/// The tables a reader gets, and its requests; shared by the profiler (or its delivery thread)
/// and the sampler thread.
pub(crate) struct Exchange {
    output: UnsafeCell<Collector>,
    /// The trigger of the pending request, written before `state` says `REQUESTED`.
    trigger: UnsafeCell<TriggerRec>,
    /// Who owns `output` and `trigger`: `IDLE` or `SERVED` the reader, `REQUESTED` nobody
    /// yet (the reader may still withdraw), `SERVING` the sampler thread.
    state: AtomicU32,
    /// Bytes mapped for the output tables (fixed at `build()`).
    output_bytes: usize,
    /// The futex word the sampler thread sleeps on between ticks: a request, and stopping,
    /// change it and wake the sampler at once.
    bell: AtomicU32,
    /// Samples the flight recorder has evicted with whole segments.
    evicted: AtomicU64,
    /// How long the sampler thread paused to serve the last request, in nanoseconds, and the
    /// CPU time it spent on it.
    pub handover_ns: AtomicU64,
    pub handover_cpu_ns: AtomicU64,
}

/// No request yet, or the reader withdrew one.
const IDLE: u32 = 0;
/// The reader asked; the sampler thread has not taken it up.
const REQUESTED: u32 = 1;
/// The sampler thread took the request up (by compare-and-swap) and writes the output.
const SERVING: u32 = 2;
/// Served: the output is the reader's until it asks again.
const SERVED: u32 = 3;

// SAFETY: `output` and `trigger` are accessed by one side at a time, as `state` says, handed
// over with Release/Acquire (see the module docs).
unsafe impl Sync for Exchange {}
// SAFETY: as above; the collector's memory mappings may move between threads.
unsafe impl Send for Exchange {}

impl Exchange {
    /// Output tables of the given capacities.
    pub fn new(cap: Capacities) -> Result<Exchange> {
        let output = Collector::new(cap)?;
        Ok(Exchange {
            output_bytes: output.mapped_bytes(),
            output: UnsafeCell::new(output),
            trigger: UnsafeCell::new(TriggerRec::NONE),
            state: AtomicU32::new(IDLE),
            bell: AtomicU32::new(0),
            evicted: AtomicU64::new(0),
            handover_ns: AtomicU64::new(0),
            handover_cpu_ns: AtomicU64::new(0),
        })
    }

    /// The output tables, for the reader between its requests.
    ///
    /// # Safety
    /// No request may be pending (asked and not yet served): the sampler thread writes the
    /// output only while serving one.
    pub unsafe fn output(&self) -> &Collector {
        // SAFETY: per the caller's promise, the sampler thread does not touch it now.
        unsafe { &*self.output.get() }
    }

    /// Bytes mapped for the output tables (readable while a request is served).
    pub fn mapped_bytes(&self) -> usize {
        self.output_bytes
    }

    /// The output tables, exclusively (no sampler thread running).
    pub fn output_mut(&mut self) -> &mut Collector {
        self.output.get_mut()
    }

    /// Asks the sampler thread for the next chunk (or window), marked with `trigger`, and
    /// waits until it is served. A request not taken up within 5 s is withdrawn
    /// ([`Error::NotRunning`]); one taken up is always waited for, since the sampler thread
    /// is writing the output.
    ///
    /// # Safety
    /// The caller is the only reader, and holds no reference from [`Exchange::output`].
    pub unsafe fn request(&self, trigger: TriggerRec) -> Result<()> {
        // SAFETY: no request is pending (the caller is the only reader and each request is
        // waited for or withdrawn), so the sampler does not read the trigger now.
        unsafe { *self.trigger.get() = trigger };
        self.state.store(REQUESTED, Release);
        self.ring();
        let deadline = time::monotonic_ns() + SERVE_TIMEOUT_NS;
        while self.state.load(Acquire) != SERVED {
            if time::monotonic_ns() > deadline
                && (self.state)
                    .compare_exchange(REQUESTED, IDLE, AcqRel, Acquire)
                    .is_ok()
            {
                return Err(Error::NotRunning);
            }
            time::sleep_ns(100_000);
        }
        Ok(())
    }

    /// Starts a new session's series: no samples evicted yet (no sampler thread runs).
    pub fn reset(&mut self) {
        *self.evicted.get_mut() = 0;
    }

    /// Wakes the sampler thread if it sleeps between ticks (after a request, or `stop`, was
    /// set).
    pub fn ring(&self) {
        self.bell.fetch_add(1, AcqRel);
        time::wake(&self.bell);
    }

    /// Whether a request waits to be taken up.
    pub fn pending(&self) -> bool {
        self.state.load(Relaxed) == REQUESTED
    }
}

/// The flight recorder's sealed segments, oldest first.
pub(crate) struct Recorder {
    window_ns: u64,
    /// The sampling interval: a window's first sample per thread weighs no more than the
    /// intervals since the window's start.
    interval_ns: u64,
    segments: ArrayVec<Collector, SEGMENTS>,
    /// Sealed segments that hold samples (the others are spare), oldest first.
    sealed: usize,
    /// Windows taken so far (the next one's sequence number).
    windows: u64,
}

impl Recorder {
    /// A recorder keeping `window_ns` of samples taken every `interval_ns`, with segments of
    /// the given capacities.
    pub fn new(window_ns: u64, interval_ns: u64, cap: Capacities) -> Result<Recorder> {
        let mut segments = ArrayVec::new();
        for _ in 0..SEGMENTS {
            segments.push(Collector::new(cap)?);
        }
        Ok(Recorder {
            window_ns,
            interval_ns,
            segments,
            sealed: 0,
            windows: 0,
        })
    }

    /// Bytes mapped for the segments.
    pub fn mapped_bytes(&self) -> usize {
        self.segments.iter().map(Collector::mapped_bytes).sum()
    }

    /// Forgets every segment and window (a new session starts).
    pub fn clear(&mut self) {
        self.sealed = 0;
        self.windows = 0;
    }
}

/// What a job needs to serve readers: the exchange and, in flight-recorder mode, the sealed
/// segments.
pub(crate) struct Series {
    pub exchange: *const Exchange,
    pub recorder: Option<Recorder>,
}

impl Series {
    /// Serves a pending request, and in flight-recorder mode seals the active segment once it
    /// spans a quarter of the window. `drain` empties the sample ring into the tables it is
    /// given; `ring_full` counts samples the ring had no room for.
    pub fn tick(
        &mut self,
        active: &mut Collector,
        drain: impl FnMut(&mut Collector),
        ring_full: &AtomicU64,
    ) {
        // SAFETY: the profiler keeps the exchange alive while a job refers to it.
        let exchange = unsafe { &*self.exchange };
        let now = time::monotonic_ns();
        let taken = (exchange.state).compare_exchange(REQUESTED, SERVING, AcqRel, Relaxed);
        if taken.is_ok() {
            // SAFETY: the request is taken up: the reader waits and does not touch the
            // output or the trigger until `state` says `SERVED`.
            let (output, trigger) =
                unsafe { (&mut *exchange.output.get(), *exchange.trigger.get()) };
            let me = threads::gettid();
            let cpu = time::thread_cpu_ns(me).unwrap_or(0);
            self.serve(active, output, trigger, drain, ring_full);
            let pause = time::monotonic_ns().saturating_sub(now);
            let spent = time::thread_cpu_ns(me).unwrap_or(0).saturating_sub(cpu);
            exchange.handover_ns.store(pause, Relaxed);
            exchange.handover_cpu_ns.store(spent, Relaxed);
            exchange.state.store(SERVED, Release);
            return;
        }
        if let Some(r) = &mut self.recorder {
            if now.saturating_sub(active.start_ns) >= r.window_ns / SEGMENTS as u64 {
                seal(r, active, drain, ring_full, &exchange.evicted);
            }
        }
    }

    /// Sleeps until `deadline_ns` (monotonic), serving requests that arrive meanwhile, and
    /// returns early once `stop` is raised.
    pub fn sleep_serving(
        &mut self,
        deadline_ns: u64,
        active: &mut Collector,
        mut drain: impl FnMut(&mut Collector),
        ring_full: &AtomicU64,
        stop: &core::sync::atomic::AtomicU32,
    ) {
        // SAFETY: the profiler keeps the exchange alive while a job refers to it.
        let exchange = unsafe { &*self.exchange };
        loop {
            // Read before looking: a request or a stop after this changes the bell, and the
            // sleep below does not begin (or ends).
            let seen = exchange.bell.load(Acquire);
            if exchange.pending() {
                self.tick(active, &mut drain, ring_full);
            }
            let now = time::monotonic_ns();
            if now >= deadline_ns || stop.load(Acquire) != 0 {
                return;
            }
            // Where the bell is a futex the sleep lasts to the deadline, however far;
            // elsewhere the sampler looks for requests every REQUEST_POLL_NS.
            let wake_at = match time::WAKES {
                true => deadline_ns,
                false => deadline_ns.min(now + REQUEST_POLL_NS),
            };
            time::sleep_unless_changed(wake_at, &exchange.bell, seen);
        }
    }

    /// Makes `output` the next chunk (or window), marked with `trigger`; the active tables go
    /// on. Also used without a sampler thread, by the profiler itself.
    pub fn serve(
        &mut self,
        active: &mut Collector,
        output: &mut Collector,
        trigger: TriggerRec,
        mut drain: impl FnMut(&mut Collector),
        ring_full: &AtomicU64,
    ) {
        drain(active);
        active.lost.ring_full += ring_full.swap(0, Relaxed);
        // SAFETY: as in `tick`.
        let evicted = &unsafe { &*self.exchange }.evicted;
        match &mut self.recorder {
            None => {
                active.finish();
                core::mem::swap(active, output);
                active.begin_after(output);
                output.chunk.trigger = trigger;
            }
            Some(r) => {
                let now = time::monotonic_ns();
                let since = now.saturating_sub(r.window_ns).max(oldest_start(r, active));
                let chunk = ChunkRec {
                    sequence: r.windows,
                    window_ns: r.window_ns,
                    evicted: 0,
                    trigger,
                };
                output.begin_merged(since, now, chunk);
                let mut older = evicted.load(Relaxed);
                for seg in r.segments.iter().take(r.sealed) {
                    older += output.absorb(seg, since, r.interval_ns);
                }
                older += output.absorb(active, since, r.interval_ns);
                output.chunk.evicted = older;
                output.read_heap();
                r.windows += 1;
            }
        }
    }
}

/// When the recorder's oldest samples were taken: its oldest segment's start.
fn oldest_start(r: &Recorder, active: &Collector) -> u64 {
    match r.sealed {
        0 => active.start_ns,
        _ => r.segments.first().map_or(active.start_ns, |s| s.start_ns),
    }
}

/// Seals the active segment into the recorder (evicting the oldest when all are in use) and
/// opens the next one.
fn seal(
    r: &mut Recorder,
    active: &mut Collector,
    mut drain: impl FnMut(&mut Collector),
    ring_full: &AtomicU64,
    evicted: &AtomicU64,
) {
    drain(active);
    active.lost.ring_full += ring_full.swap(0, Relaxed);
    active.finish();
    if r.sealed == SEGMENTS {
        // The oldest goes, with what it lost.
        if let Some(oldest) = r.segments.first() {
            evicted.fetch_add(oldest.samples_len as u64, Relaxed);
        }
        r.segments.rotate_left(1);
        r.sealed -= 1;
    }
    let Some(slot) = r.segments.get_mut(r.sealed) else {
        return;
    };
    core::mem::swap(active, slot);
    // Lost counts stay with the segment whose time they belong to; a window adds up those of
    // the segments it covers.
    active.begin_after(slot);
    r.sealed += 1;
}

/// The error for asking a profiler without a flight recorder for a window, or one with a
/// flight recorder to rotate.
pub(crate) fn mode_error(window: bool) -> Error {
    Error::InvalidConfig(if window {
        "this profiler has no flight recorder (Builder::flight_recorder)"
    } else {
        "a flight recorder keeps a window: take it with window(), not rotate()"
    })
}
