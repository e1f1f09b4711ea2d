//! The public face of sampling: [`Builder`], [`Profiler`], sessions and on-demand samples.
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

use core::mem::ManuallyDrop;

use crate::collector::TriggerRec;
use crate::collector::{Capacities, Collector};
use crate::error::{Error, Result};
use crate::metadata::Metadata;
use crate::profile::TriggerKind;
use crate::profile::{Backend, Capture, CaptureConfig, Clock};
use crate::sampler::series::{mode_error, Exchange, Recorder, Series};
use crate::sampler::{self, Job, Running, Shared};
use crate::sys::mem::MapBox;
use crate::sys::threads;
use crate::unwind::Unwinder;
use core::sync::atomic::Ordering::SeqCst;

/// Configures a [`Profiler`]. Every capacity is fixed at [`Builder::build`].
#[derive(Debug, Clone)]
pub struct Builder {
    frequency_hz: u32,
    clock: Clock,
    max_frames: usize,
    sample_capacity: usize,
    frame_capacity: usize,
    ring_capacity: usize,
    max_threads: usize,
    max_modules: usize,
    signal: i32,
    unwinder: Unwinder,
    module_paths: bool,
    /// The flight recorder's window (0: no flight recorder).
    window_ns: u64,
    /// The backend asked for (`None`: the best available).
    backend: Option<Backend>,
    /// The overhead budget in millionths of the application's CPU time (0: none).
    max_overhead_ppm: u32,
    /// What the application says about itself, and the first metadata it got wrong.
    metadata: Metadata,
    metadata_error: Option<&'static str>,
    /// The heap sampler's mean bytes between samples (0: allocations are not sampled).
    heap_mean: u64,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            frequency_hz: 1000,
            clock: Clock::Cpu,
            max_frames: 128,
            sample_capacity: 100_000,
            frame_capacity: 65_536,
            ring_capacity: 512,
            max_threads: 1024,
            max_modules: 512,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            signal: libc::SIGURG,
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            signal: 0,
            unwinder: Unwinder::Cfi,
            module_paths: false,
            window_ns: 0,
            backend: None,
            max_overhead_ppm: 0,
            metadata: Metadata::default(),
            metadata_error: None,
            heap_mean: 0,
        }
    }
}

impl Builder {
    /// Says what the profiles come from: `key` (such as `app`, `version`, `build`, `channel`,
    /// `session`) gets `value`, replacing an earlier value. At most
    /// [`crate::metadata::MAX_METADATA`] keys of 1 to 32 ASCII letters, digits, `_`, `-` or `.`,
    /// values of at most 128 bytes without control characters; [`Builder::build`] refuses
    /// others. Every profile, chunk and window carries them, with facts about the system
    /// ([`crate::metadata::system_facts`]). Never read on the signal path.
    pub fn metadata(mut self, key: &str, value: &str) -> Self {
        if let Err(e) = self.metadata.set(key, value) {
            self.metadata_error.get_or_insert(e);
        }
        self
    }

    /// Samples per second per thread (1 to 10 000; default 1000).
    pub fn frequency(mut self, hz: u32) -> Self {
        self.frequency_hz = hz;
        self
    }

    /// The sampling clock (default [`Clock::Cpu`]).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Deepest stack recorded, in frames (1 to 1024; default 128). Deeper stacks are cut
    /// and marked [`crate::EndReason::DepthLimit`].
    pub fn max_frames(mut self, frames: usize) -> Self {
        self.max_frames = frames;
        self
    }

    /// Samples kept per session (default 100 000). Further samples are counted as lost.
    pub fn sample_capacity(mut self, samples: usize) -> Self {
        self.sample_capacity = samples;
        self
    }

    /// Distinct frame addresses per session (default 65 536); stack-tree nodes get twice that.
    pub fn frame_capacity(mut self, frames: usize) -> Self {
        self.frame_capacity = frames;
        self
    }

    /// Samples that may wait to be drained (default 512).
    pub fn ring_capacity(mut self, slots: usize) -> Self {
        self.ring_capacity = slots;
        self
    }

    /// Live threads sampled at once (1 to 65 535; default 1024). A thread that exits frees its
    /// slot for a new one, so any number of threads may come and go in a session; all that had
    /// samples are listed in the profile. Live threads beyond this many are not sampled, and
    /// the intervals they miss are counted in [`crate::Lost::threads_over_capacity`].
    pub fn max_threads(mut self, threads: usize) -> Self {
        self.max_threads = threads;
        self
    }

    /// The signal used to interrupt threads (default `SIGURG`). Ignored on Windows and macOS,
    /// where threads are suspended, not signalled.
    ///
    /// [`Builder::build`] refuses a signal the program has a handler for. If the program
    /// installs one later, vignette stops signalling (its sampler thread looks at every tick;
    /// CPU timers and perf events are disarmed) until the program leaves the signal at its
    /// default action or ignores it again, and counts the intervals it missed in
    /// [`crate::Lost::signal_taken`]. Until it notices (up to 10 ms under the kernel-timed
    /// backends, one interval under the sampler thread), a signal already armed may still
    /// reach the program's handler, or the default action: so prefer a signal whose default
    /// action is to ignore it, as `SIGURG`'s is (Go's runtime chose it for preemption for
    /// the same reason), over `SIGPROF`, whose default action ends the process. A standard
    /// signal also keeps at most one pending while a thread blocks it.
    pub fn signal(mut self, signal: i32) -> Self {
        self.signal = signal;
        self
    }

    /// How stacks are walked (default [`Unwinder::Cfi`]: `.eh_frame` with frame pointers as
    /// fallback).
    pub fn unwinder(mut self, unwinder: Unwinder) -> Self {
        self.unwinder = unwinder;
        self
    }

    /// Whether profiles record each module's full path on this machine (default `false`:
    /// only its file name, build ID and debug ID, which is all symbol lookup needs). Profiles
    /// often come from machines you do not control, and a path such as `/home/<user>/...` can
    /// identify a person: turn this on only where that is acceptable.
    pub fn module_paths(mut self, record: bool) -> Self {
        self.module_paths = record;
        self
    }

    /// Makes the profiler a flight recorder: it keeps only the samples of the last `window`
    /// (evicting older ones, and counting them), and [`Profiler::window`] or a trigger
    /// produces a profile of that window at any moment without stopping. `window` is 10 ms to
    /// 24 hours; the samples in it must fit `sample_capacity`. Memory: four more sets of
    /// session tables (mapped at `build()`, touched as they fill).
    pub fn flight_recorder(mut self, window: core::time::Duration) -> Self {
        self.window_ns = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        self
    }

    /// What takes the samples (default: the best this system allows). Linux under
    /// [`Clock::Cpu`]: [`Backend::PerfEvents`] where the kernel allows perf events (the kernel
    /// times each thread's CPU precisely, idle threads cost nothing), else
    /// [`Backend::CpuTimers`] (the same, at the kernel's tick resolution), else
    /// [`Backend::SamplerThread`]; under [`Clock::Wall`] the sampler thread. Windows and macOS:
    /// [`Backend::Suspension`]. Asking for one that cannot run here makes `build()` fail.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Keeps what vignette costs the process within `percent` of the application's own CPU
    /// time (0.01 to 100; default: no budget, the requested rate throughout). vignette measures
    /// its cost (its sampler thread's CPU, its handler's time, each signal's delivery as
    /// calibrated at the start) and samples every second, third, ... interval when needed,
    /// raising the rate again when it can; every sample's weight still counts the intervals
    /// it stands for, so a profile adds up to the CPU used at any rate.
    /// [`Profiler::overhead`] reports the figures. A budget samples with
    /// [`Backend::SamplerThread`] on Linux (the interruptions a kernel timer causes cannot be
    /// measured from inside the process): asking for a kernel-timed backend as well makes
    /// `build()` fail. For release builds, 1% is a budget nobody measures.
    pub fn max_overhead(mut self, percent: f64) -> Self {
        self.max_overhead_ppm = match percent {
            p if (0.01..=100.0).contains(&p) => (p * 10_000.0) as u32,
            // Out of range (NaN included): refused by build().
            _ => u32::MAX,
        };
        self
    }

    /// Samples allocations while the profiler runs, one per `mean_bytes` allocated on average
    /// (1 byte to 1 TiB; [`crate::alloc::DEFAULT_MEAN_BYTES`] is Go's 512 KiB): every
    /// profile then has the heap, allocated bytes and objects since sampling began and those
    /// still live when it was captured, per stack. Needs [`crate::alloc::Sampled`] as the
    /// program's global allocator (or the C API's calls from its own allocator).
    #[cfg(feature = "std")]
    pub fn sample_allocations(mut self, mean_bytes: u64) -> Self {
        self.heap_mean = match mean_bytes {
            1..=0x100_0000_0000 => mean_bytes,
            // Refused by build().
            _ => u64::MAX,
        };
        self
    }

    /// Preallocates every buffer and installs the signal handler. Fails, never panics, if a
    /// setting is out of range, memory cannot be mapped, another profiler exists, or a foreign
    /// handler owns the signal.
    pub fn build(self) -> Result<Profiler> {
        let check = |ok: bool, what| {
            if ok {
                Ok(())
            } else {
                Err(Error::InvalidConfig(what))
            }
        };
        if let Some(what) = self.metadata_error {
            return Err(Error::InvalidConfig(what));
        }
        check(
            (1..=10_000).contains(&self.frequency_hz),
            "frequency must be 1..=10000 Hz",
        )?;
        check(
            (1..=1024).contains(&self.max_frames),
            "max_frames must be 1..=1024",
        )?;
        check(
            (1..=1 << 20).contains(&self.ring_capacity),
            "ring_capacity must be 1..=1048576",
        )?;
        check(
            (1..=65_535).contains(&self.max_threads),
            "max_threads must be 1..=65535",
        )?;
        check(
            (1..u32::MAX as usize / 2).contains(&self.sample_capacity),
            "sample_capacity out of range",
        )?;
        check(
            (1..u32::MAX as usize / 4).contains(&self.frame_capacity),
            "frame_capacity out of range",
        )?;
        check(
            self.window_ns == 0 || (10_000_000..=86_400_000_000_000).contains(&self.window_ns),
            "the flight recorder's window must be 10 ms to 24 hours",
        )?;
        check(
            self.max_overhead_ppm <= 1_000_000,
            "max_overhead must be 0.01 to 100 percent",
        )?;
        check(
            self.heap_mean <= 0x100_0000_0000,
            "sample_allocations takes 1 byte to 1 TiB",
        )?;
        #[cfg(feature = "std")]
        if self.heap_mean > 0 {
            crate::alloc::prepare()?;
        }
        let forced = match (self.max_overhead_ppm, self.backend) {
            (0, forced) => forced,
            (_, Some(Backend::PerfEvents | Backend::CpuTimers)) => {
                return Err(Error::InvalidConfig(
                    "an overhead budget samples with the sampler thread, not kernel timers",
                ))
            }
            #[cfg(any(target_os = "linux", target_os = "android"))]
            (_, None) => Some(Backend::SamplerThread),
            (_, forced) => forced,
        };
        let backend = sampler::choose_backend(self.clock, forced)?;
        let shared = MapBox::new(Shared::new(&sampler::Settings {
            signal: self.signal,
            backend,
            unwinder: self.unwinder,
            ring_slots: self.ring_capacity,
            max_frames: self.max_frames,
            max_threads: self.max_threads,
            max_modules: self.max_modules,
            budget_ppm: self.max_overhead_ppm,
        })?)?;
        let capacities = Capacities {
            samples: self.sample_capacity,
            frames: self.frame_capacity,
            stack_nodes: self.frame_capacity * 2,
            slots: self.max_threads,
            // A profile lists every thread that had a sample: at most one per sample.
            threads: self.sample_capacity.clamp(self.max_threads, 1 << 20),
            modules: self.max_modules,
            ring: self.ring_capacity,
            heap_mean: self.heap_mean,
        };
        let exchange = MapBox::new(Exchange::new(capacities)?)?;
        let interval_ns = 1_000_000_000 / self.frequency_hz as u64;
        let series = Series {
            exchange: &*exchange,
            recorder: match self.window_ns {
                0 => None,
                w => Some(Recorder::new(w, interval_ns, capacities)?),
            },
        };
        let job = MapBox::new(Job::new(
            &shared,
            Collector::new(capacities)?,
            series,
            self.clock,
            backend,
            interval_ns,
        )?)?;
        sampler::claim_handler(&shared)?;
        let capture = CaptureConfig {
            clock: self.clock,
            interval_ns,
            max_frames: self.max_frames as u32,
            module_paths: self.module_paths,
            backend,
            metadata: self.metadata.clone(),
            system: crate::metadata::system_facts(),
        };
        Ok(Profiler {
            config: self,
            capture,
            backend,
            shared: ManuallyDrop::new(shared),
            state: State::Idle(job),
            exchange,
            #[cfg(feature = "std")]
            delivery: None,
        })
    }
}

/// What vignette measured it costs the process under an overhead budget
/// ([`Profiler::overhead`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Overhead {
    /// The budget, in percent of the application's own CPU time.
    pub budget_percent: f64,
    /// vignette's cost over the latest review period (50 ms), in percent of the application's
    /// own CPU time in it (0 before the first review).
    pub measured_percent: f64,
    /// The same over the session so far (from its first review, 12.5 ms in).
    pub session_percent: f64,
    /// The rate sampling runs at now: the requested rate, or a fraction of it.
    pub rate_hz: f64,
}

/// How long [`Profiler::sample_once`] waits for the threads it signalled to answer.
const ON_DEMAND_ANSWER_NS: u64 = 100_000_000;

/// Which threads [`Profiler::sample_once`] samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Every thread of the process, the calling one included.
    AllThreads,
    /// One thread, by kernel thread id.
    Thread(i32),
}

/// A sampling profiler for this process. At most one exists at a time.
///
/// A session runs from [`Profiler::start`] (or the first [`Profiler::sample_once`]) to
/// [`Profiler::stop`], which returns the [`Capture`]; the profiler can then start again.
pub struct Profiler {
    config: Builder,
    /// What its captures report besides their tables.
    capture: CaptureConfig,
    /// What takes the samples.
    backend: Backend,
    /// Dropped only once no signal handler can still be using it (see `Drop`).
    shared: ManuallyDrop<MapBox<Shared>>,
    state: State,
    /// The tables chunks and windows are handed over in (the job points to it).
    exchange: MapBox<Exchange>,
    /// vignette's delivery thread, while it takes the chunks.
    #[cfg(feature = "std")]
    delivery: Option<crate::delivery::Delivery>,
}

/// Who holds the sampler's job (the session tables): the profiler itself, or its sampler
/// thread.
enum State {
    /// No sampler thread: the profiler holds the job (a session may be open for
    /// `sample_once`).
    Idle(MapBox<Job>),
    /// The sampler thread runs and holds the job until it is joined.
    Running(Running),
    /// Only inside a method, while the job moves between the two.
    Moving,
}

// SAFETY: the raw job pointer inside `State::Running` is owned by this profiler (shared only
// with the sampler thread it joins); every other field is Send.
unsafe impl Send for Profiler {}

impl Profiler {
    /// A builder with the defaults.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Sets metadata as [`Builder::metadata`] does, for values known only after `build()` (a
    /// session id, say). Only while not running and not delivering ([`Error::Running`]):
    /// captures read it.
    pub fn set_metadata(&mut self, key: &str, value: &str) -> Result<()> {
        #[cfg(feature = "std")]
        let delivering = self.delivery.is_some();
        #[cfg(not(feature = "std"))]
        let delivering = false;
        if self.is_running() || delivering {
            return Err(Error::Running);
        }
        self.capture
            .metadata
            .set(key, value)
            .map_err(Error::InvalidConfig)
    }

    /// The configured sampling interval in nanoseconds.
    pub fn interval_ns(&self) -> u64 {
        1_000_000_000 / self.config.frequency_hz as u64
    }

    /// What takes the samples (see [`Builder::backend`]); profiles record it too.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the sampler thread is running.
    pub fn is_running(&self) -> bool {
        matches!(self.state, State::Running(_))
    }

    /// Bytes of memory mapped for all buffers (fixed after `build`).
    pub fn mapped_bytes(&self) -> usize {
        let job = match &self.state {
            State::Idle(job) => job.mapped_bytes(),
            _ => 0,
        };
        #[cfg(feature = "std")]
        let heap = match self.config.heap_mean {
            0 => 0,
            _ => crate::alloc::tables().map_or(0, |t| t.mapped_bytes()),
        };
        #[cfg(not(feature = "std"))]
        let heap = 0;
        self.shared.mapped_bytes() + job + self.exchange.mapped_bytes() + heap
    }

    /// The job, when the sampler thread does not hold it.
    fn job(&mut self) -> Result<&mut Job> {
        match &mut self.state {
            State::Idle(job) => Ok(job),
            _ => Err(Error::Running),
        }
    }

    /// Joins the sampler thread, if it runs (or, in a child after `fork()`, where it does not
    /// exist, takes its job back without joining); the profiler holds the job after.
    fn join_sampler(&mut self, forked: bool) {
        // The delivery thread first: it asks the sampler thread for chunks.
        #[cfg(feature = "std")]
        if let Some(d) = self.delivery.take() {
            if forked {
                // The parent's thread, which does not exist here.
                core::mem::forget(d);
            } else {
                d.finish();
            }
        }
        self.state = match core::mem::replace(&mut self.state, State::Moving) {
            State::Running(r) if forked => State::Idle(r.abandon()),
            State::Running(r) => State::Idle(r.finish(&self.shared, &self.exchange)),
            other => other,
        };
    }

    /// For sampling on demand (the sampler thread not running): the open session's
    /// generation (opening one if needed), the shared state and the collector.
    fn on_demand_session(&mut self) -> Result<(u32, &Shared, &mut Job)> {
        self.check_process()?;
        let generation = self.ensure_session()?;
        let State::Idle(job) = &mut self.state else {
            return Err(Error::Running);
        };
        Ok((generation, &self.shared, job))
    }

    /// [`Error::Forked`] in a child process that inherited this profiler across `fork()`.
    fn check_process(&self) -> Result<()> {
        if threads::getpid() == self.shared.pid() {
            Ok(())
        } else {
            Err(Error::Forked)
        }
    }

    /// Opens a new session unless one is open; returns its generation.
    fn ensure_session(&mut self) -> Result<u32> {
        let shared = &*self.shared;
        let State::Idle(job) = &mut self.state else {
            return Err(Error::Running);
        };
        if !job.collector.open {
            job.generation = shared.next_generation();
            shared.ring_full.store(0, SeqCst);
            job.collector
                .begin(|modules| shared.refresh_modules(modules, true));
            if let Some(r) = &mut job.series.recorder {
                r.clear();
            }
            self.exchange.reset();
        }
        Ok(job.generation)
    }

    /// Starts sampling every thread of the process, including threads created later, on a
    /// sampler thread of its own. Continues the open session (after `sample_once`) or opens
    /// a new one.
    pub fn start(&mut self) -> Result<()> {
        self.check_process()?;
        self.ensure_session()?;
        let job = match core::mem::replace(&mut self.state, State::Moving) {
            State::Idle(job) => job,
            other => {
                self.state = other;
                return Err(Error::Running);
            }
        };
        let (state, result) = match Running::start(job) {
            Ok(r) => (State::Running(r), Ok(())),
            Err((e, job)) => (State::Idle(job), Err(e)),
        };
        self.state = state;
        #[cfg(feature = "std")]
        if result.is_ok() && self.config.heap_mean > 0 {
            crate::alloc::start(self.config.heap_mean);
        }
        result
    }

    /// Stops sampling and closes the session, returning what it captured since the start (or
    /// the last rotation; a flight recorder: its window). The capture borrows the profiler;
    /// encode it before starting again.
    pub fn stop(&mut self) -> Result<Capture<'_>> {
        self.check_process()?;
        #[cfg(feature = "std")]
        if self.config.heap_mean > 0 {
            crate::alloc::stop();
        }
        self.join_sampler(false);
        if !self.job()?.collector.open {
            return Err(Error::NotRunning);
        }
        if self.config.window_ns != 0 {
            self.serve_here(TriggerRec::NONE)?;
        }
        self.job()?.collector.finish();
        // Signals still in flight belong to the old generation from now on and are ignored.
        self.shared.next_generation();
        self.last_capture().ok_or(Error::NotRunning)
    }

    /// The capture of the last session stopped, until the next `start` or `sample_once`
    /// (`None` while a session is open or before the first one).
    pub fn last_capture(&self) -> Option<Capture<'_>> {
        let State::Idle(job) = &self.state else {
            return None;
        };
        let c = &job.collector;
        if c.open || c.end_ns == 0 {
            return None;
        }
        if self.config.window_ns != 0 {
            // SAFETY: no sampler thread runs (the profiler holds the job), so nothing is
            // pending.
            return Some(self.capture_of(unsafe { self.exchange.output() }));
        }
        let mut capture = self.capture_of(c);
        capture.lost.ring_full += self.shared.ring_full.load(SeqCst);
        Some(capture)
    }

    /// The chunk or window taken last (by `rotate`, `window` or `trigger`), while no
    /// delivery thread takes them; `None` before the first.
    #[cfg(feature = "ffi")]
    pub(crate) fn last_taken(&self) -> Option<Capture<'_>> {
        if self.delivery.is_some() {
            return None;
        }
        // SAFETY: no delivery thread runs and `take` needs `&mut self`: no request is pending.
        let c = unsafe { self.exchange.output() };
        (c.end_ns != 0).then(|| self.capture_of(c))
    }

    /// A capture of the tables `c`.
    fn capture_of<'a>(&'a self, c: &'a Collector) -> Capture<'a> {
        self.capture.capture(c)
    }

    /// Takes the samples since the start or the previous rotation as a complete profile (its
    /// own modules, threads, time range and lost counts, and the next sequence number, from 0
    /// at each start) **without stopping**: not one sample is lost or counted twice between
    /// consecutive chunks, and their time ranges abut. The sampler thread hands the chunk over
    /// between two ticks (a pause of well under a millisecond; it continues into spare tables
    /// allocated at `build()`). The capture borrows the profiler; encode it before the next
    /// call. A flight recorder has [`Profiler::window`] instead.
    pub fn rotate(&mut self) -> Result<Capture<'_>> {
        if self.config.window_ns != 0 {
            return Err(mode_error(false));
        }
        self.take(TriggerRec::NONE)
    }

    /// How long the sampler thread paused to hand over the last chunk or window it served
    /// (while it runs; 0 before the first), as (wall, CPU) nanoseconds: sampling stops for
    /// the first (the next samples' weights cover what it missed), and the second is the
    /// work (the rest is the system scheduling other threads meanwhile).
    pub fn last_handover_ns(&self) -> (u64, u64) {
        let x = &self.exchange;
        (
            x.handover_ns.load(core::sync::atomic::Ordering::Relaxed),
            x.handover_cpu_ns
                .load(core::sync::atomic::Ordering::Relaxed),
        )
    }

    /// A flight recorder's profile of its last window (see [`Builder::flight_recorder`]),
    /// taken without stopping. The capture borrows the profiler; encode it before the next
    /// call.
    pub fn window(&mut self) -> Result<Capture<'_>> {
        if self.config.window_ns == 0 {
            return Err(mode_error(true));
        }
        self.take(TriggerRec::NONE)
    }

    /// A manual trigger: the flight recorder's window (or, without a flight recorder, the
    /// chunk since the last rotation), marked as triggered now by the calling thread with
    /// `note` (at most [`crate::MAX_TRIGGER_NOTE`] bytes are kept).
    pub fn trigger(&mut self, note: &str) -> Result<Capture<'_>> {
        self.take(TriggerRec::new(
            TriggerKind::Manual,
            threads::gettid(),
            0,
            note,
        ))
    }

    /// The next chunk or window, marked with `trigger`, from the sampler thread or (when
    /// none runs) made here.
    pub(crate) fn take(&mut self, trigger: TriggerRec) -> Result<Capture<'_>> {
        self.check_process()?;
        #[cfg(feature = "std")]
        if self.delivery.is_some() {
            return Err(Error::Delivering);
        }
        match &self.state {
            // SAFETY: `&mut self` makes this the only reader, and no capture of the output
            // lives (captures borrow the profiler).
            State::Running(_) => unsafe { self.exchange.request(trigger)? },
            _ => self.serve_here(trigger)?,
        }
        // SAFETY: the request has been served and the next needs `&mut self`.
        Ok(self.capture_of(unsafe { self.exchange.output() }))
    }

    /// Hands chunks to `on_chunk` on vignette's own delivery thread until the profiler
    /// stops: every `every` (if given; a flight recorder's window, otherwise the chunk since
    /// the last one, as [`Profiler::rotate`]), and whenever one of the returned [`crate::Triggers`]
    /// fires (a manual trigger, a late [`crate::Heartbeat`], a panic). Meanwhile `rotate`,
    /// `window` and `trigger` answer [`Error::Delivering`]. `stop` returns what came after the
    /// last delivered chunk (a flight recorder: its window).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), vignette::Error> {
    /// let mut profiler = vignette::Profiler::builder().build()?;
    /// profiler.start()?;
    /// let mut n = 0;
    /// profiler.deliver(Some(std::time::Duration::from_secs(10)), move |chunk| {
    ///     let _ = std::fs::write(format!("chunk-{n}.vignette"), chunk.to_vec());
    ///     n += 1;
    /// })?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "std")]
    pub fn deliver(
        &mut self,
        every: Option<core::time::Duration>,
        on_chunk: impl FnMut(&Capture<'_>) + Send + 'static,
    ) -> Result<crate::Triggers> {
        self.check_process()?;
        if self.delivery.is_some() {
            return Err(Error::Delivering);
        }
        if !self.is_running() {
            return Err(Error::NotRunning);
        }
        let config = self.capture.clone();
        // SAFETY: the sampler thread runs and serves the exchange until `join_sampler`, which
        // finishes the delivery first; `take` refuses other readers while it runs.
        let d = unsafe {
            crate::delivery::Delivery::start(
                &*self.exchange,
                config,
                every,
                std::boxed::Box::new(on_chunk),
            )?
        };
        let triggers = d.triggers();
        self.delivery = Some(d);
        Ok(triggers)
    }

    /// Makes the next chunk or window without a sampler thread (it is not running).
    fn serve_here(&mut self, trigger: TriggerRec) -> Result<()> {
        let State::Idle(job) = &mut self.state else {
            return Err(Error::Running);
        };
        let job: &mut Job = job;
        if !job.collector.open {
            return Err(Error::NotRunning);
        }
        let (shared, generation) = (&**self.shared, job.generation);
        job.series.serve(
            &mut job.collector,
            self.exchange.output_mut(),
            trigger,
            |c| {
                sampler::drain(c, shared, generation);
            },
            &shared.ring_full,
        );
        Ok(())
    }

    /// Samples `target` right now, synchronously, and adds the samples to the open session
    /// (opening one if needed). Returns how many samples were kept. Threads that do not answer
    /// within 100 ms (they block the signal, or are stopped) are counted as lost.
    ///
    /// Not available while the sampler thread runs ([`Error::Running`]).
    pub fn sample_once(&mut self, target: Target) -> Result<usize> {
        let (generation, shared, job) = self.on_demand_session()?;
        sampler::sample_now(shared, job, generation, target, ON_DEMAND_ANSWER_NS)
    }

    /// Benchmark support (`benches/sample_cost.rs`), not a stable API: the calling thread
    /// sends itself `count` sampling signals one after another (a signal a thread sends itself
    /// is handled before the send returns) and gets back the CPU time, in nanoseconds, that
    /// took on this thread. The samples then join the session like `sample_once`'s; keep
    /// `count` within the ring capacity, or the excess is dropped as `ring_full`.
    #[cfg(all(
        feature = "unstable-internals",
        any(target_os = "linux", target_os = "android")
    ))]
    #[doc(hidden)]
    pub fn sample_self_timed(&mut self, count: usize) -> Result<u64> {
        let (generation, shared, job) = self.on_demand_session()?;
        let c = &mut job.collector;
        let tid = threads::gettid();
        if c.find_thread(tid).is_none() {
            c.scan_threads(-1, 1, |_| 0);
            shared.stacks.refresh();
            shared.refresh_modules(&mut c.modules, false);
        }
        let i = c.find_thread(tid).ok_or(Error::NoSuchThread(tid))?;
        let cpu = || crate::sys::time::thread_cpu_ns(tid).unwrap_or(0);
        let t0 = cpu();
        for _ in 0..count {
            sampler::send_sample_signal(shared, c, generation, i, tid);
        }
        let spent = cpu().saturating_sub(t0);
        sampler::drain(c, shared, generation);
        Ok(spent)
    }

    /// What sampling by suspension has cost since the profiler was built (Windows and
    /// macOS, where threads are suspended to be sampled).
    #[cfg(any(windows, target_os = "macos"))]
    pub fn suspensions(&self) -> crate::Suspensions {
        self.shared.suspension_stats()
    }

    /// Under an overhead budget ([`Builder::max_overhead`]): what vignette measured it costs
    /// and the rate it samples at now; `None` without a budget.
    pub fn overhead(&self) -> Option<Overhead> {
        let budget = self.config.max_overhead_ppm;
        (budget != 0).then(|| {
            let (stride, measured_ppm, session_ppm) = self.shared.pacing.latest();
            Overhead {
                budget_percent: budget as f64 / 10_000.0,
                measured_percent: measured_ppm as f64 / 10_000.0,
                session_percent: session_ppm as f64 / 10_000.0,
                rate_hz: 1e9 / self.capture.interval_ns as f64 / stride.max(1) as f64,
            }
        })
    }

    /// The calling thread's id as the profile records it (for [`Target::Thread`]): its
    /// kernel thread id on Linux and Windows, its Mach port name in this task on macOS.
    pub fn current_thread_id() -> i32 {
        threads::gettid()
    }
}

impl Drop for Profiler {
    fn drop(&mut self) {
        if self.check_process().is_err() {
            // A child after fork(): the sampler thread and any handler in flight were the
            // parent's and do not exist here (joining would wait forever).
            self.join_sampler(true);
            sampler::release_inherited_handler(&self.shared);
            // SAFETY: ACTIVE no longer points to `shared`, and no handler in this process
            // uses it: fork copied only the calling thread, and only the parent's sampler
            // thread sent signals for it.
            unsafe { ManuallyDrop::drop(&mut self.shared) };
            return;
        }
        #[cfg(feature = "std")]
        if self.config.heap_mean > 0 {
            crate::alloc::stop();
        }
        // No wait for signals still on their way: the sampler thread waited for the answers
        // to those it sent, a perf event's or CPU timer's signal is raised in its own thread's
        // context and handled as it returns to user mode, and one that comes later anyway (a
        // thread blocking the signal) finds the handler still installed and ignoring it.
        self.join_sampler(false);
        if sampler::release_handler(&self.shared) {
            // SAFETY: no handler uses `shared` any more and ACTIVE no longer points to it; the
            // job (which points to it) is dropped right after, with the profiler's fields.
            unsafe { ManuallyDrop::drop(&mut self.shared) };
        }
        // Otherwise a handler is stuck mid-sample on a stopped thread: leak its state rather
        // than pull memory from under it.
    }
}
