//! The sampling machinery: the signal handler, the state it shares with the rest of the
//! profiler, and the sampler thread that decides which thread to interrupt when.
//!
//! # What the handler may do
//! The handler runs on the interrupted thread at any instruction, possibly inside `malloc` or
//! while that thread holds a lock. So it, and everything it calls:
//! - never allocates, never takes a lock (not even an uncontended one), never panics;
//! - never calls the dynamic loader or libgcc's unwinder, never does `std::io`;
//! - touches only memory mapped before sampling began ([`Shared`]), and reads the interrupted
//!   stack only inside bounds from the mapping snapshot ([`crate::stacks`]);
//! - saves and restores `errno`.
//!
//! Each signal carries a token (sent with `rt_tgsigqueueinfo`): a tag, the session generation,
//! the sampler's index for the thread and the sample's weight. Signals without our token (from
//! `kill`, a timer, another process) are ignored; signals of an earlier session are discarded.

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};

use crate::code_map::CodeMap;
use crate::collector::{Collector, SlotRec, SlotState};
use crate::error::Result;
use crate::modules::ModuleMap;
use crate::profile::Clock;
use crate::ring::{SampleMeta, SampleRing};
use crate::stacks::StackRanges;
use crate::sys::fault_guard;
use crate::sys::fault_guard::ReadMode;
use crate::sys::handler_stack::HandlerStacks;
use crate::sys::mem::{MapBox, Region};
use crate::sys::signal::Interrupted;
use crate::sys::stack::{CopyBuffer, LiveStack};
use crate::sys::{signal, spawn, threads, time};
use crate::unwind::{fp, walk, EndReason, NoCode, Regs, RuleCache, Unwinder};

/// The profiler whose handler state is live, or null.
static ACTIVE: AtomicPtr<Shared> = AtomicPtr::new(core::ptr::null_mut());
/// Handlers currently between loading and releasing `ACTIVE`.
static IN_HANDLER: AtomicUsize = AtomicUsize::new(0);

const TAG: u64 = 0x5647; // "VG"

/// What a signal carries: packed into the 64-bit `sigval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    pub generation: u16,
    pub slot: u16,
    pub weight: u16,
}

impl Token {
    pub fn pack(self) -> u64 {
        TAG << 48 | (self.generation as u64) << 32 | (self.slot as u64) << 16 | self.weight as u64
    }

    /// # Signal safety
    /// Async-signal-safe.
    pub fn unpack(v: u64) -> Option<Token> {
        (v >> 48 == TAG).then_some(Token {
            generation: (v >> 32) as u16,
            slot: (v >> 16) as u16,
            weight: v as u16,
        })
    }
}

/// Everything the signal handler touches, allocated before the handler can run.
pub(crate) struct Shared {
    pub signal: i32,
    /// Sends `signal` with a token.
    pub sender: signal::Sender,
    pub generation: AtomicU32,
    pub ring: SampleRing,
    pub stacks: StackRanges,
    pub code: CodeMap,
    pub rules: RuleCache,
    pub unwinder: Unwinder,
    pub handler_stacks: HandlerStacks,
    /// The kernel's smallest signal frame (`AT_MINSIGSTKSZ`), 0 if it does not say.
    pub min_signal_frame: u64,
    /// Per tracked thread: 0 when its last signal was answered, else the tick it was sent at.
    pub acks: Region<AtomicU32>,
    /// Samples dropped because the ring was full.
    pub ring_full: AtomicU64,
    /// Asks the sampler thread to finish.
    pub stop: AtomicBool,
}

impl Shared {
    pub fn new(
        signal: i32,
        unwinder: Unwinder,
        ring_slots: usize,
        max_frames: usize,
        max_threads: usize,
        max_modules: usize,
    ) -> Result<Self> {
        Ok(Shared {
            signal,
            sender: signal::Sender::new(signal),
            generation: AtomicU32::new(0),
            ring: SampleRing::new(ring_slots, max_frames)?,
            stacks: StackRanges::new(8192)?,
            code: CodeMap::new(max_modules)?,
            rules: RuleCache::new(14)?,
            unwinder,
            handler_stacks: HandlerStacks::new(16)?,
            // SAFETY: getauxval only reads the auxiliary vector.
            min_signal_frame: unsafe { libc::getauxval(libc::AT_MINSIGSTKSZ) },
            acks: Region::new(max_threads)?,
            ring_full: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        })
    }

    pub fn mapped_bytes(&self) -> usize {
        self.ring.mapped_bytes()
            + self.stacks.mapped_bytes()
            + self.code.mapped_bytes()
            + self.rules.mapped_bytes()
            + self.handler_stacks.mapped_bytes()
            + self.acks.mapped_bytes()
    }

    /// Re-reads the module list if it changed (or `force`), into the handler's code map and
    /// the session's `modules`; cached rules are dropped then, since their addresses may now
    /// hold other code.
    pub fn refresh_modules(&self, modules: &mut ModuleMap, force: bool) {
        if self.code.refresh(modules, force) {
            self.rules.clear();
        }
    }

    /// Starts a new generation (late signals of the old one are then ignored).
    pub fn next_generation(&self) -> u32 {
        let g = self.generation.load(SeqCst).wrapping_add(1);
        self.generation.store(g, SeqCst);
        g
    }

    /// Walks the interrupted thread's stack into `frames`, reading it as `mode` says (see
    /// [`fault_guard::read_mode`]).
    ///
    /// # Signal safety
    /// Async-signal-safe: pins the stack and code snapshots, then walks with bounds-checked
    /// reads that cannot fault.
    fn unwind(&self, regs: &Regs, mode: ReadMode, frames: &mut [u64]) -> Walked {
        match mode {
            ReadMode::Guarded(_) => self.unwind_with(regs, mode, None, frames),
            ReadMode::Copied => {
                let copy = CopyBuffer::new(self.sender.pid());
                let mut walked = self.unwind_with(regs, mode, Some(&copy), frames);
                if copy.refused.get() {
                    (walked.len, walked.end) = only_ip(regs, frames, EndReason::NoSafeRead);
                }
                walked
            }
        }
    }

    /// [`Shared::unwind`] with the reader's buffer for [`ReadMode::Copied`].
    ///
    /// # Signal safety
    /// Async-signal-safe, as [`Shared::unwind`].
    fn unwind_with(
        &self,
        regs: &Regs,
        mode: ReadMode,
        copy: Option<&CopyBuffer>,
        frames: &mut [u64],
    ) -> Walked {
        // The code map table the walk uses, or (frame pointers, or no table) the current one:
        // its epoch tells the drain which modules were mapped.
        let mut code_epoch = self.code.epoch();
        let walked = self.stacks.read(|ranges| {
            // SAFETY: `mode` was chosen for this signal, and the reader lives only inside this
            // handler.
            let mut stack = unsafe { LiveStack::new(ranges, regs.sp(), mode, copy) }?;
            Some(match self.unwinder {
                Unwinder::FramePointers => fp::walk(regs, &stack, frames),
                Unwinder::Cfi => match self.code.read(|code| {
                    code_epoch = code.epoch;
                    walk(regs, &mut stack, code, Some(&self.rules), frames)
                }) {
                    Some(walked) => walked,
                    None => walk(regs, &mut stack, &NoCode, None, frames),
                },
            })
        });
        let (len, end) = match walked.flatten() {
            Some(walked) => walked,
            None => only_ip(regs, frames, EndReason::NoStackBounds),
        };
        Walked {
            len,
            end,
            code_epoch,
        }
    }

    /// Records one sample of the interrupted thread.
    ///
    /// # Signal safety
    /// Async-signal-safe: lock-free ring claim, bounded frame walk over bounds-checked reads,
    /// and `clock_gettime` (a vDSO call, no system call on common clock sources).
    fn take_sample(&self, token: Token, regs: &Regs, interrupted: &Interrupted) {
        let generation = self.generation.load(Acquire);
        if token.generation != generation as u16 {
            return;
        }
        match self.ring.claim() {
            None => {
                self.ring_full.fetch_add(token.weight as u64, Relaxed);
            }
            Some(mut slot) => {
                let time_ns = time::monotonic_ns();
                let frames = slot.frames();
                let mut walked = None;
                self.handler_stacks.run(&mut |entry_sp| {
                    let mode = fault_guard::read_mode(
                        interrupted.alt_stack,
                        entry_sp,
                        interrupted.frame_bytes,
                        interrupted.faults_blocked,
                    );
                    walked = Some(self.unwind(regs, mode, frames));
                });
                // None: every handler stack is busy; keep the interrupted address only.
                let walked = walked.unwrap_or_else(|| {
                    let (len, end) = only_ip(regs, frames, EndReason::NoStackBounds);
                    Walked {
                        len,
                        end,
                        code_epoch: self.code.epoch(),
                    }
                });
                slot.publish(SampleMeta {
                    time_ns,
                    thread: token.slot as u32,
                    weight: token.weight as u32,
                    len: walked.len as u32,
                    end: walked.end as u8,
                    generation,
                    code_epoch: walked.code_epoch,
                });
            }
        }
        if let Some(ack) = self.acks.get(token.slot as usize) {
            ack.store(0, Release);
        }
    }
}

/// What a walk produced besides its frames.
struct Walked {
    len: usize,
    end: EndReason,
    /// The code map epoch the walk saw (see [`SampleMeta::code_epoch`]).
    code_epoch: u32,
}

/// Records only the interrupted address, ending the walk with `end`.
///
/// # Signal safety
/// Async-signal-safe.
fn only_ip(regs: &Regs, frames: &mut [u64], end: EndReason) -> (usize, EndReason) {
    match frames.first_mut() {
        Some(f) => {
            *f = regs.ip();
            (1, end)
        }
        None => (0, EndReason::DepthLimit),
    }
}

/// The signal handler.
///
/// # Signal safety
/// This is the handler; see the module docs for its contract.
extern "C" fn on_signal(_sig: i32, info: *mut libc::siginfo_t, uctx: *mut c_void) {
    let _errno = signal::ErrnoGuard::save();
    // SAFETY: the kernel passes a valid siginfo to a SA_SIGINFO handler.
    let Some((sender, token)) = (unsafe { signal::token(info) })
        .and_then(|(pid, value)| Some((pid, Token::unpack(value)?)))
    else {
        return;
    };
    IN_HANDLER.fetch_add(1, SeqCst);
    let shared = ACTIVE.load(SeqCst);
    if !shared.is_null() && !uctx.is_null() {
        // SAFETY: `release_handler` clears ACTIVE and waits for IN_HANDLER to reach zero before
        // the Shared it pointed to is freed, and we incremented IN_HANDLER before loading it.
        let shared = unsafe { &*shared };
        // Only this process's signals count (another process may queue this signal too).
        if sender == shared.sender.pid() {
            // SAFETY: the kernel passes a valid ucontext to a SA_SIGINFO handler.
            let (regs, interrupted) = unsafe {
                (
                    signal::regs(uctx),
                    signal::interrupted(uctx, shared.min_signal_frame),
                )
            };
            shared.take_sample(token, &regs, &interrupted);
        }
    }
    IN_HANDLER.fetch_sub(1, SeqCst);
}

/// Installs the handler for `shared.signal` and makes `shared` the live state.
/// Fails if another profiler is live or a foreign handler owns the signal.
pub(crate) fn claim_handler(shared: &MapBox<Shared>) -> Result<()> {
    let ptr = &**shared as *const Shared as *mut Shared;
    if ACTIVE
        .compare_exchange(core::ptr::null_mut(), ptr, SeqCst, SeqCst)
        .is_err()
    {
        return Err(crate::Error::AlreadyExists);
    }
    if let Err(e) = signal::install(shared.signal, on_signal) {
        ACTIVE.store(core::ptr::null_mut(), SeqCst);
        return Err(e);
    }
    // Without the guard (it could not be installed), samples keep only their first address.
    fault_guard::ensure_installed();
    Ok(())
}

/// [`release_handler`] in a child after `fork()`: the handlers counted in flight were the
/// parent's other threads, which do not exist here, so the count starts again from zero.
pub(crate) fn release_inherited_handler(shared: &Shared) {
    let ptr = shared as *const Shared as *mut Shared;
    if ACTIVE
        .compare_exchange(ptr, core::ptr::null_mut(), SeqCst, SeqCst)
        .is_ok()
    {
        IN_HANDLER.store(0, SeqCst);
    }
}

/// Detaches the handler from `shared` and waits until no handler still uses it. The handler
/// itself stays installed (it ignores signals from then on), so a signal still in flight can
/// never meet the default action, which for `SIGPROF` would kill the process.
///
/// Returns `false` if a handler was still running after a second (its thread is stopped, say
/// by a debugger, in the middle of it): the caller must then never free `shared`.
pub(crate) fn release_handler(shared: &Shared) -> bool {
    let ptr = shared as *const Shared as *mut Shared;
    if ACTIVE
        .compare_exchange(ptr, core::ptr::null_mut(), SeqCst, SeqCst)
        .is_ok()
    {
        let deadline = time::monotonic_ns() + RELEASE_TIMEOUT_NS;
        while IN_HANDLER.load(SeqCst) != 0 {
            if time::monotonic_ns() > deadline {
                return false;
            }
            time::sleep_ns(RELEASE_POLL_NS);
        }
    }
    true
}

/// How often the sampler thread re-lists the process's threads.
const SCAN_NS: u64 = 10_000_000;

/// How long a thread may leave a signal unanswered before it is sent another.
const ANSWER_TIMEOUT_NS: u64 = 100_000_000;

/// How soon `/proc/self/maps` is read again when samples met stacks it did not list.
const STACK_REFRESH_NS: u64 = 5_000_000;

/// How long stopping waits for the last signals sent to be answered.
const FINAL_ANSWER_NS: u64 = 20_000_000;

/// How often the waits for answers look again.
const ANSWER_POLL_NS: u64 = 20_000;

/// How long releasing the handler waits for handlers still running (a thread stopped by a
/// debugger mid-sample may never finish).
const RELEASE_TIMEOUT_NS: u64 = 1_000_000_000;

/// How often releasing the handler looks again.
const RELEASE_POLL_NS: u64 = 50_000;

/// What the sampler thread works with; owned by it while it runs.
pub(crate) struct Job {
    pub shared: *const Shared,
    pub collector: Collector,
    pub clock: Clock,
    pub interval_ns: u64,
    pub generation: u32,
}

/// The sampler thread's loop state for one signal round.
pub(crate) struct Round {
    pub tick: u32,
    pub timeout_ticks: u32,
}

/// Sends one round of signals: to every tracked live thread (clock `Wall`, with `wall_weight`)
/// or to every thread that used at least one interval of CPU since its last sample (clock
/// `Cpu`). Threads that have not answered their previous signal are skipped and counted.
pub(crate) fn signal_round(
    c: &mut Collector,
    shared: &Shared,
    clock: Clock,
    interval_ns: u64,
    wall_weight: u32,
    generation: u32,
    round: &Round,
) {
    for i in 0..c.slots_len {
        let Some(&SlotRec {
            tid,
            state,
            fresh,
            cpu_mark: mark,
            ..
        }) = c.slots.get(i)
        else {
            break;
        };
        if state != SlotState::Live {
            continue;
        }
        if fresh {
            // A slot's previous thread may have exited with a signal unanswered.
            if let Some(ack) = shared.acks.get(i) {
                ack.store(0, Release);
            }
            if let Some(s) = c.slot_mut(i) {
                s.fresh = false;
            }
        }
        let weight = match clock {
            Clock::Wall => wall_weight,
            Clock::Cpu => match time::thread_cpu_ns(tid) {
                None => {
                    c.mark_dead(i);
                    continue;
                }
                Some(cpu) => {
                    let due = cpu.saturating_sub(mark) / interval_ns;
                    if due == 0 {
                        continue;
                    }
                    if let Some(s) = c.slot_mut(i) {
                        s.cpu_mark = mark + due * interval_ns;
                    }
                    due.min(u16::MAX as u64) as u32
                }
            },
        };
        let Some(ack) = shared.acks.get(i) else {
            continue;
        };
        let sent = ack.load(Acquire);
        if sent != 0 && round.tick.wrapping_sub(sent) < round.timeout_ticks {
            c.lost.unanswered += weight as u64;
            continue;
        }
        ack.store(round.tick.max(1), Release);
        let token = Token {
            generation: generation as u16,
            slot: i as u16,
            weight: weight.min(u16::MAX as u32) as u16,
        };
        if let Err(errno) = shared.sender.send(tid, token.pack()) {
            ack.store(0, Release);
            if errno == libc::ESRCH {
                c.mark_dead(i);
            } else {
                c.lost.unanswered += weight as u64;
            }
        }
    }
}

/// The sampler thread's entry point.
extern "C" fn sampler_main(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `start` passes a Job pointer it keeps alive (and does not touch) until it has
    // joined this thread.
    let job = unsafe { &mut *(arg as *mut Job) };
    // SAFETY: the profiler frees Shared only after joining this thread.
    let shared = unsafe { &*job.shared };
    run(job, shared);
    core::ptr::null_mut()
}

fn run(job: &mut Job, shared: &Shared) {
    signal::block_in_this_thread(shared.signal);
    spawn::set_current_name(c"vignette");
    time::set_minimal_timer_slack();
    let me = threads::gettid();
    let c = &mut job.collector;
    let interval = job.interval_ns;
    // Threads alive now start their CPU accounting now; threads born later, at zero.
    // Live threads without a slot miss a scan period's worth of intervals each.
    let missed_per_scan = (SCAN_NS / interval).max(1);
    c.scan_threads(me, missed_per_scan, |tid| {
        time::thread_cpu_ns(tid).unwrap_or(0)
    });
    c.reset_cpu_marks();
    shared.stacks.refresh();
    shared.refresh_modules(&mut c.modules, false);
    let timeout_ticks = (ANSWER_TIMEOUT_NS / interval).max(2) as u32;
    let mut tick = 0u32;
    let mut now = time::monotonic_ns();
    let mut next_tick = now + interval;
    let mut next_scan = now + SCAN_NS;
    let mut next_maps = now;
    let mut wall_weight = 1;
    while !shared.stop.load(Acquire) {
        if now >= next_scan {
            if c.scan_threads(me, missed_per_scan, |_| 0) {
                shared.stacks.refresh();
            }
            next_scan = now + SCAN_NS;
        }
        // Libraries loaded or unloaded since the last tick reach the handler now.
        shared.refresh_modules(&mut c.modules, false);
        // A fault handler installed after ours would see our recovered faults: stay on top.
        fault_guard::ensure_installed();
        tick = tick.wrapping_add(1);
        let round = Round {
            tick,
            timeout_ticks,
        };
        signal_round(
            c,
            shared,
            job.clock,
            interval,
            wall_weight,
            job.generation,
            &round,
        );
        drain(c, shared, job.generation);
        if c.take_stack_misses() > 0 && now >= next_maps {
            shared.stacks.refresh();
            next_maps = now + STACK_REFRESH_NS;
        }
        time::sleep_until(next_tick);
        now = time::monotonic_ns();
        // Fell behind (the machine is overloaded)? Skip the missed ticks, and let the next
        // wall-clock samples stand for them.
        let missed = now.saturating_sub(next_tick) / interval;
        wall_weight = 1 + missed.min(u16::MAX as u64 - 1) as u32;
        next_tick += (missed + 1) * interval;
    }
    wait_for_answers(shared, c.slots_len, FINAL_ANSWER_NS);
    drain(c, shared, job.generation);
}

/// Drains the ring into the session's tables (see [`Collector::drain`]).
pub(crate) fn drain(c: &mut Collector, shared: &Shared, generation: u32) -> usize {
    c.drain(
        &shared.ring,
        |modules| shared.refresh_modules(modules, false),
        generation,
    )
}

/// Waits up to `timeout_ns` for every thread's outstanding signal to be answered, then
/// forgets those still outstanding.
pub(crate) fn wait_for_answers(shared: &Shared, threads: usize, timeout_ns: u64) -> u64 {
    let deadline = time::monotonic_ns() + timeout_ns;
    let acks = shared.acks.get(..threads).unwrap_or(&[]);
    while acks.iter().any(|a| a.load(Acquire) != 0) && time::monotonic_ns() < deadline {
        time::sleep_ns(ANSWER_POLL_NS);
    }
    let mut unanswered = 0;
    for a in acks {
        if a.swap(0, AcqRel) != 0 {
            unanswered += 1;
        }
    }
    unanswered
}

/// A running sampler thread and the job it owns.
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
    /// without joining.
    pub fn abandon(self) -> MapBox<Job> {
        // SAFETY: fork copies only the calling thread, so no thread of this process uses the
        // job.
        unsafe { MapBox::from_raw(self.job) }
    }

    /// Stops the thread and returns its job.
    pub fn finish(self, shared: &Shared) -> MapBox<Job> {
        shared.stop.store(true, Release);
        // A failed join means the thread is already gone; the job is ours either way.
        let _ = self.thread.join();
        shared.stop.store(false, Release);
        // SAFETY: the thread has been joined, so nothing else uses the job.
        unsafe { MapBox::from_raw(self.job) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_foreign_values() {
        let t = Token {
            generation: 7,
            slot: 300,
            weight: 2,
        };
        assert_eq!(Token::unpack(t.pack()), Some(t));
        assert_eq!(Token::unpack(12345), None);
        assert_eq!(Token::unpack(0), None);
    }
}
