//! The kernel-timed backends ([`Backend::PerfEvents`], [`Backend::CpuTimers`]): each thread
//! has a kernel timer on its own CPU clock that signals it after every interval of CPU it
//! uses, so idle threads cost nothing and no one reads clocks per tick. The sampler thread
//! only arms a timer for each new thread, disarms those of exited ones, and drains the ring.

use core::sync::atomic::Ordering::*;

use super::sending::{look_at_mask, BLOCK_CHECK_NS};
use super::shared::PerfAccount;
use super::watch::{Descriptors, ThreadWatch, Tracked};
use super::{drain, handler, Job, Shared, Token};
use crate::collector::{Collector, SlotRec};
use crate::profile::Backend;
use crate::sys::{fault_guard, thread_timer, time};

/// Longest sleep between two drains.
const MAX_SLEEP_NS: u64 = 10_000_000;
/// Shortest sleep between two drains (when the ring fills fast, or libraries come and go).
const MIN_SLEEP_NS: u64 = 1_000_000;
/// How long after the loader's last change the sampler keeps looking every `MIN_SLEEP_NS`.
const LOADER_CHURN_NS: u64 = 100_000_000;

/// Which backends are usable here: perf events, else CPU timers, else the sampler thread.
pub(crate) fn choose(
    clock: crate::profile::Clock,
    forced: Option<Backend>,
) -> crate::Result<Backend> {
    use crate::profile::Clock;
    let sys = |call| crate::Error::Sys {
        call,
        errno: crate::sys::fs::errno(),
    };
    match (forced, clock) {
        (Some(Backend::SamplerThread), _) | (None, Clock::Wall) => Ok(Backend::SamplerThread),
        (Some(Backend::PerfEvents | Backend::CpuTimers), Clock::Wall) => Err(
            crate::Error::InvalidConfig("kernel-timed backends sample on the CPU clock only"),
        ),
        (Some(Backend::PerfEvents), Clock::Cpu) => match thread_timer::perf_events_allowed() {
            true => Ok(Backend::PerfEvents),
            false => Err(sys("perf_event_open")),
        },
        (Some(Backend::CpuTimers), Clock::Cpu) => match thread_timer::cpu_timers_allowed() {
            true => Ok(Backend::CpuTimers),
            false => Err(sys("timer_create")),
        },
        (None, Clock::Cpu) if thread_timer::perf_events_allowed() => Ok(Backend::PerfEvents),
        (None, Clock::Cpu) if thread_timer::cpu_timers_allowed() => Ok(Backend::CpuTimers),
        (None, Clock::Cpu) => Ok(Backend::SamplerThread),
        (Some(_), _) => Err(crate::Error::InvalidConfig(
            "this backend is not available on Linux",
        )),
    }
}

/// A thread's kernel timer: what kind, and its handle (a perf event's descriptor or a timer
/// id).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerRec {
    kind: TimerKind,
    handle: i32,
    /// A perf event's unique id: its descriptor is closed only while it still names it.
    id: u64,
}

impl TimerRec {
    /// No timer.
    pub const NONE: TimerRec = TimerRec {
        kind: TimerKind::None,
        handle: 0,
        id: 0,
    };
}

/// What kind of kernel timer signals a thread.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum TimerKind {
    None = 0,
    PerfEvent = 1,
    CpuTimer = 2,
}

/// Arms and disarms the threads' kernel timers.
pub(crate) struct Arming {
    backend: Backend,
    signal: i32,
    interval_ns: u64,
    generation: u32,
}

impl Arming {
    /// Arms a timer for the thread of slot `i`: a perf event (backend `PerfEvents`, with a
    /// descriptor the handler's table covers), else a CPU timer; the CPU the thread used
    /// before (since the session began, or since it was born) is sampled once now, weighted
    /// by its intervals, as the sampler thread would. A perf event's descriptor comes out of
    /// `fds`; with none to spare the thread gets a CPU timer. Returns whether the thread is
    /// timed (or found gone, and marked so).
    pub fn arm(
        &self,
        shared: &Shared,
        c: &mut Collector,
        i: usize,
        t: &mut Tracked,
        fds: &Descriptors,
    ) -> bool {
        let Some(&SlotRec { tid, cpu_mark, .. }) = c.slots.get(i) else {
            return false;
        };
        // Read before the timer starts, so no interval counts twice.
        let interval = self.interval_ns.max(1);
        let due = time::thread_cpu_ns(tid)
            .unwrap_or(0)
            .saturating_sub(cpu_mark)
            / interval;
        // A perf event's samples carry the thread's CPU time from there on.
        if let Some(account) = shared.perf_accounts.get(i) {
            account.open(cpu_mark + due * interval, interval);
        }
        let timed = self.start_timer(shared, c, i, tid, t, fds);
        if t.timer != TimerRec::NONE && due > 0 {
            let token = Token {
                generation: self.generation as u16,
                slot: i as u16,
                weight: due.min(u16::MAX as u64) as u16,
            };
            // A thread that has just exited is found at the next look.
            let _ = shared.sender.send(tid, token.pack());
        }
        timed
    }

    /// [`Arming::arm`]'s timer.
    fn start_timer(
        &self,
        shared: &Shared,
        c: &mut Collector,
        i: usize,
        tid: i32,
        t: &mut Tracked,
        fds: &Descriptors,
    ) -> bool {
        let token = Token {
            generation: self.generation as u16,
            slot: i as u16,
            weight: 1,
        }
        .pack();
        if self.backend == Backend::PerfEvents && fds.may_open() {
            match thread_timer::open_perf_event(tid, self.interval_ns, self.signal) {
                Ok(fd) if !fds.hold(fd) => thread_timer::close_perf_event(fd),
                Ok(fd) => {
                    if let Some(entry) = shared.perf_tokens.get(fd as usize) {
                        entry.store(token, Release);
                        shared.mark_fd(fd, true);
                        let id = thread_timer::perf_event_id(fd);
                        if let (Some(id), true) = (id, thread_timer::enable_perf_event(fd)) {
                            t.timer = TimerRec {
                                kind: TimerKind::PerfEvent,
                                handle: fd,
                                id,
                            };
                            return true;
                        }
                        entry.store(0, Release);
                    }
                    thread_timer::close_perf_event(fd);
                    fds.let_go();
                }
                Err(libc::ESRCH) => {
                    c.mark_dead(i);
                    return true;
                }
                Err(_) => {}
            }
        }
        match thread_timer::create_cpu_timer(tid, self.interval_ns, self.signal, token) {
            Ok(id) => {
                t.timer = TimerRec {
                    kind: TimerKind::CpuTimer,
                    handle: id,
                    id: 0,
                };
                true
            }
            // EINVAL: the thread's CPU clock is gone with it.
            Err(libc::ESRCH | libc::EINVAL) => {
                c.mark_dead(i);
                true
            }
            Err(_) => false,
        }
    }

    /// Takes slot `i`'s timer away. A perf event's intervals that produced no sample (its
    /// signals were blocked, or arrived while one was pending) and that no later sample
    /// caught up are counted as unanswered.
    pub fn disarm(
        &self,
        shared: &Shared,
        c: &mut Collector,
        i: usize,
        t: &mut Tracked,
        fds: &Descriptors,
    ) {
        let timer = core::mem::replace(&mut t.timer, TimerRec::NONE);
        match timer.kind {
            TimerKind::None => {}
            TimerKind::CpuTimer => thread_timer::delete_cpu_timer(timer.handle),
            TimerKind::PerfEvent => {
                let fd = timer.handle;
                fds.let_go();
                if let Some(entry) = shared.perf_tokens.get(fd as usize) {
                    entry.store(0, Release);
                }
                shared.mark_fd(fd, false);
                // The application may have closed the descriptor (and reused its number):
                // close only what is still this event.
                if thread_timer::perf_event_id(fd) != Some(timer.id) {
                    return;
                }
                let counted = thread_timer::perf_event_ns(fd).unwrap_or(0);
                thread_timer::close_perf_event(fd);
                let answered = (shared.perf_accounts.get(i)).map_or(0, PerfAccount::answered);
                let intervals = counted / self.interval_ns.max(1);
                match intervals.saturating_sub(answered) {
                    0 => {}
                    missed => super::sending::count_unanswered(c, i, missed, shared.signal),
                }
            }
        }
    }
}

impl TimerRec {
    /// Whether this is a perf event (whose signals are counted in the thread's account).
    fn is_perf_event(&self) -> bool {
        self.kind == TimerKind::PerfEvent
    }
}

/// Looks, once a [`BLOCK_CHECK_NS`] period, for threads whose perf events deliver no signal
/// while they run: a thread that blocks the signal (started with every signal blocked, say)
/// is marked so, and the intervals its event counted unanswered are counted as blocked when
/// it is disarmed, even after the thread is gone.
fn look_for_blocked(shared: &Shared, c: &mut Collector, tracked: &mut [Tracked], interval_ns: u64) {
    for (i, t) in tracked.iter_mut().enumerate().take(c.slots_len) {
        if !t.timer.is_perf_event() {
            continue;
        }
        let Some(slot) = c.slot_mut(i) else { break };
        let signals = shared.perf_accounts.get(i).map_or(0, PerfAccount::signals);
        let cpu = time::thread_cpu_ns(slot.tid).unwrap_or(0);
        if signals != t.seen_signals {
            slot.blocks_signal = false;
        } else if cpu >= t.seen_cpu_ns.saturating_add(2 * interval_ns) {
            look_at_mask(slot, shared.signal, time::monotonic_ns());
        }
        (t.seen_signals, t.seen_cpu_ns) = (signals, cpu);
    }
}

/// The sampler thread's loop under a kernel-timed backend: until asked to stop, keep the
/// timers in step with the threads, take in module changes, and drain the ring, waking more
/// often while it fills fast.
pub(super) fn run(job: &mut Job, shared: &Shared, me: i32, watch: &mut ThreadWatch) {
    let arming = Arming {
        backend: job.backend,
        signal: shared.signal,
        interval_ns: job.interval_ns,
        generation: job.generation,
    };
    let generation = job.generation;
    let c = &mut job.collector;
    let tracked = &mut job.tracked[..];
    watch.sync(shared, c, tracked, Some(&arming), 1);
    let ring = shared.ring.capacity();
    let mut sleep_ns = MAX_SLEEP_NS;
    let mut now = time::monotonic_ns();
    let mut next_scan = now + super::SCAN_NS;
    let mut next_maps = now;
    let mut taken = false;
    let (mut seen_epoch, mut churn_until) = (shared.code.epoch(), 0);
    let mut next_block_look = now + BLOCK_CHECK_NS;
    while shared.stop.load(Acquire) == 0 {
        // The program has a handler of its own on the signal: the timers would signal it, so
        // they are disarmed until the signal is free again, and what they miss is counted.
        match (handler::owns_signal(shared), taken) {
            (false, false) => {
                taken = true;
                watch.disarm_all(shared, c, tracked, &arming);
                c.reset_cpu_marks();
            }
            (true, true) => {
                taken = false;
                c.count_signal_taken(job.interval_ns);
                watch.sync(shared, c, tracked, Some(&arming), 1);
            }
            _ => {}
        }
        if now >= next_scan {
            if let Some((scan, missed_each)) = watch.scan_if_changed(c, me, now, job.interval_ns) {
                if scan.changed {
                    shared.stacks.refresh();
                }
                let arming = (!taken).then_some(&arming);
                watch.sync(shared, c, tracked, arming, missed_each);
            }
            next_scan = now + super::SCAN_NS;
        }
        if now >= next_block_look {
            look_for_blocked(shared, c, tracked, job.interval_ns);
            next_block_look = now + BLOCK_CHECK_NS;
        }
        shared.refresh_modules(&mut c.modules, false);
        fault_guard::ensure_installed();
        let mut drain_into = |c: &mut Collector| {
            drain(c, shared, generation);
        };
        let drained = drain(c, shared, generation);
        if c.take_stack_misses() > 0 && now >= next_maps {
            shared.stacks.refresh();
            next_maps = now + super::STACK_REFRESH_NS;
        }
        // A ring a quarter full after one sleep: sleep half as long; nearly empty: twice.
        if drained * 4 > ring {
            sleep_ns = (sleep_ns / 2).max(MIN_SLEEP_NS);
        } else if drained * 16 < ring {
            sleep_ns = (sleep_ns * 2).min(MAX_SLEEP_NS);
        }
        // While libraries come and go, look at the loader every MIN_SLEEP_NS: a library
        // loaded and unloaded between two looks is never listed, and samples in it cannot be
        // attributed.
        let epoch = shared.code.epoch();
        if epoch != seen_epoch {
            (seen_epoch, churn_until) = (epoch, now + LOADER_CHURN_NS);
        }
        let sleep_ns = match now < churn_until {
            true => MIN_SLEEP_NS,
            false => sleep_ns,
        };
        job.series.tick(c, &mut drain_into, &shared.ring_full);
        job.series.sleep_serving(
            now + sleep_ns,
            c,
            &mut drain_into,
            &shared.ring_full,
            &shared.stop,
        );
        now = time::monotonic_ns();
    }
    if taken {
        c.count_signal_taken(job.interval_ns);
    }
    watch.release_all(shared, c, tracked, Some(&arming));
}
