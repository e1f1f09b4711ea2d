//! The state the signal handler shares with the rest of the profiler, allocated before the
//! handler can run.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};

use crate::code_map::CodeMap;
use crate::error::Result;
use crate::modules::ModuleMap;
use crate::profile::Backend;
use crate::ring::SampleRing;
use crate::sampler::pace::Pacing;
use crate::sampler::Settings;
use crate::stacks::StackRanges;
use crate::sys::handler_stack::HandlerStacks;
use crate::sys::mem::{Region, Zeroed};
use crate::sys::signal;
use crate::unwind::{RuleCache, Unwinder};

/// File descriptors a perf event may have to be usable by the handler: one with a higher
/// number is closed and its thread timed by a CPU timer instead (512 KiB mapped, touched only
/// where descriptors are).
pub(crate) const PERF_TOKENS: usize = 1 << 16;

/// A perf event's signals between two readings of its thread's CPU clock
/// ([`PerfAccount::take_due`]).
pub(crate) const CLOCK_EVERY: u32 = 16;

/// A thread's perf-event account, alone on its cache line (threads on different cores write
/// theirs): the signals its event delivered, and the CPU time its samples carry.
///
/// A `task-clock` event counts the time its thread is on a CPU as the scheduler's clock sees
/// it, which includes time a hypervisor took the CPU away (steal time); the thread's own CPU
/// clock leaves that out. Samples are weighed by the thread's CPU clock, so that a profile's
/// CPU time agrees with the thread's on any host. That clock is a system call (0.55 µs on the
/// CI VM, a fifth of a signal's delivery), so it is read at every [`CLOCK_EVERY`]th signal, and
/// at every one while the samples' weights are ahead of it.
#[repr(C, align(64))]
pub(crate) struct PerfAccount {
    /// Signals the thread's event delivered.
    signals: AtomicU32,
    /// Intervals samples carried beyond their signal's own (a reading of the clock after
    /// signals were lost: blocked, or merged with one still pending).
    caught_up: AtomicU32,
    /// Signals still to weigh as one interval each before the clock is read again.
    unclocked: AtomicU32,
    /// The thread's CPU time (its own clock) up to which its samples' weights reach.
    credited_ns: AtomicU64,
    /// The sampling interval its weights are counted in (0: not open).
    interval_ns: AtomicU64,
}

// SAFETY: atomic integers, valid as zero.
unsafe impl Zeroed for PerfAccount {}

impl PerfAccount {
    /// Opens the account of a thread whose CPU time up to `credited_ns` (just read) is
    /// accounted for, before its event is enabled.
    pub fn open(&self, credited_ns: u64, interval_ns: u64) {
        self.signals.store(0, Relaxed);
        self.caught_up.store(0, Relaxed);
        self.unclocked.store(CLOCK_EVERY - 1, Relaxed);
        self.credited_ns.store(credited_ns, Relaxed);
        self.interval_ns.store(interval_ns, Release);
    }

    /// Counts a signal of the thread's event and gives the weight of the sample it takes: one
    /// interval, or at a reading of the thread's CPU clock (`clock`), the whole intervals
    /// since the weights' last reach (the account moves on by that many); `None` if less than
    /// one passed (the next sample carries it). Weights run ahead of the clock by at most the steal time of the last
    /// [`CLOCK_EVERY`] intervals.
    ///
    /// # Signal safety
    /// Async-signal-safe if `clock` is: atomics only. Called by the account's own thread, in
    /// its handler.
    pub fn take_due(&self, clock: impl FnOnce() -> Option<u64>) -> Option<u16> {
        self.signals.fetch_add(1, Relaxed);
        let interval = self.interval_ns.load(Acquire);
        let credited = self.credited_ns.load(Relaxed);
        let unclocked = self.unclocked.load(Relaxed);
        let now = match unclocked {
            0 if interval > 0 => clock(),
            _ => None,
        };
        let Some(now) = now else {
            self.unclocked.store(unclocked.saturating_sub(1), Relaxed);
            self.credited_ns
                .store(credited.saturating_add(interval), Relaxed);
            return Some(1);
        };
        let due = now.saturating_sub(credited) / interval;
        self.credited_ns.store(credited + due * interval, Relaxed);
        // Ahead of the clock (steal time): read it at every signal until it catches up.
        self.unclocked
            .store(if due == 0 { 0 } else { CLOCK_EVERY - 1 }, Relaxed);
        let weight = due.min(u16::MAX as u64) as u16;
        if weight > 1 {
            let caught_up = self.caught_up.load(Relaxed);
            (self.caught_up).store(caught_up.saturating_add(weight as u32 - 1), Relaxed);
        }
        (weight > 0).then_some(weight)
    }

    /// Signals the thread's event delivered so far.
    pub fn signals(&self) -> u32 {
        self.signals.load(Relaxed)
    }

    /// The event's intervals its samples answered: one per signal, and those caught up.
    /// (Read once the event is closed.)
    pub fn answered(&self) -> u64 {
        self.signals.load(Relaxed) as u64 + self.caught_up.load(Relaxed) as u64
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
    /// Perf events (backend `PerfEvents`): per file descriptor, the token of the thread its
    /// signals sample (0: not vignette's), since their `siginfo` carries no value.
    pub perf_tokens: Region<AtomicU64>,
    /// Per tracked thread under perf events: its signals and the CPU time its samples carry.
    pub perf_accounts: Region<PerfAccount>,
    /// The descriptors the sampler thread holds (perf events, thread count, exit watches),
    /// one bit per descriptor number below [`PERF_TOKENS`]: a forked child closes them.
    pub held_fds: Region<AtomicU64>,
    /// Asks the sampler thread to finish.
    pub stop: AtomicU32,
    /// The overhead budget and what the handler measured against it.
    pub pacing: Pacing,
}

impl Shared {
    pub fn new(settings: &Settings) -> Result<Self> {
        let &Settings {
            signal,
            backend,
            unwinder,
            ring_slots,
            max_frames,
            max_threads,
            max_modules,
            budget_ppm,
        } = settings;
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
            acks: Region::not_inherited(max_threads)?,
            ring_full: AtomicU64::new(0),
            perf_tokens: Region::not_inherited(match backend {
                Backend::PerfEvents => PERF_TOKENS,
                _ => 0,
            })?,
            perf_accounts: Region::not_inherited(match backend {
                Backend::PerfEvents => max_threads,
                _ => 0,
            })?,
            held_fds: Region::new(PERF_TOKENS / 64)?,
            stop: AtomicU32::new(0),
            pacing: Pacing::new(budget_ppm),
        })
    }

    /// Records that the sampler thread holds descriptor `fd` (`held`) or no longer does.
    /// Numbers beyond the set are not recorded (a forked child keeps those).
    pub fn mark_fd(&self, fd: i32, held: bool) {
        let Ok(fd) = usize::try_from(fd) else { return };
        if let Some(word) = self.held_fds.get(fd / 64) {
            let bit = 1u64 << (fd % 64);
            match held {
                true => word.fetch_or(bit, Relaxed),
                false => word.fetch_and(!bit, Relaxed),
            };
        }
    }

    pub fn mapped_bytes(&self) -> usize {
        self.ring.mapped_bytes()
            + self.stacks.mapped_bytes()
            + self.code.mapped_bytes()
            + self.rules.mapped_bytes()
            + self.handler_stacks.mapped_bytes()
            + self.acks.mapped_bytes()
            + self.perf_tokens.mapped_bytes()
            + self.perf_accounts.mapped_bytes()
            + self.held_fds.mapped_bytes()
    }

    /// Re-reads the module list if it changed (or `force`), into the handler's code map and
    /// the session's `modules`; cached rules are dropped then, since their addresses may now
    /// hold other code. Then compiles the rules of modules samples needed since.
    pub fn refresh_modules(&self, modules: &mut ModuleMap, force: bool) {
        if self.code.refresh(modules, force) {
            self.rules.clear();
        }
        self.code.compile_wanted();
    }

    /// The process the state belongs to (a child after `fork()` has another).
    pub fn pid(&self) -> i32 {
        self.sender.pid()
    }

    /// Starts a new generation (late signals of the old one are then ignored).
    pub fn next_generation(&self) -> u32 {
        let g = self.generation.load(SeqCst).wrapping_add(1);
        self.generation.store(g, SeqCst);
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_perf_account_weighs_by_whole_intervals_of_the_threads_clock() {
        let a = PerfAccount {
            signals: AtomicU32::new(7),
            caught_up: AtomicU32::new(3),
            unclocked: AtomicU32::new(0),
            credited_ns: AtomicU64::new(0),
            interval_ns: AtomicU64::new(0),
        };
        let unread = || -> Option<u64> { panic!("read while not open") };
        assert_eq!(a.take_due(unread), Some(1), "not open: one interval each");
        a.open(1_000, 100);
        assert_eq!(a.answered(), 0);
        // Between readings: one interval each, unread.
        for k in 1..CLOCK_EVERY {
            assert_eq!(a.take_due(unread), Some(1));
            assert_eq!(a.credited_ns.load(Relaxed), 1_000 + 100 * k as u64);
        }
        // The reading: the clock is behind the weights (steal time): nothing carried, and the
        // clock is read at each signal until it catches up.
        let credited = 1_000 + 100 * (CLOCK_EVERY as u64 - 1);
        assert_eq!(a.take_due(|| Some(credited - 30)), None);
        assert_eq!(a.take_due(|| Some(credited + 99)), None);
        assert_eq!(a.take_due(|| Some(credited + 250)), Some(2));
        assert_eq!(a.credited_ns.load(Relaxed), credited + 200);
        // 18 signals since the account opened, and the second interval of the last caught up.
        assert_eq!(a.answered(), 19);
        // Caught up: unread again for the next ones.
        assert_eq!(a.take_due(unread), Some(1));
        // A clock that cannot be read: the signal's one interval.
        let a = PerfAccount {
            signals: AtomicU32::new(0),
            caught_up: AtomicU32::new(0),
            unclocked: AtomicU32::new(0),
            credited_ns: AtomicU64::new(0),
            interval_ns: AtomicU64::new(100),
        };
        assert_eq!(a.take_due(|| None), Some(1));
        assert_eq!(a.take_due(|| Some(u64::MAX)), Some(u16::MAX));
    }
}
