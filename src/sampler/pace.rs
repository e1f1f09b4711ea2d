//! When the sampler thread ticks: every interval, or under an overhead budget
//! ([`crate::Builder::max_overhead`]) every `stride` intervals, the stride chosen from what
//! vignette measured it cost the process since the last review.
//!
//! What vignette costs a process under the sampler-thread engines: its sampler thread's CPU
//! time (read from the thread's clock), the CPU time its signal handler runs (while a budget
//! is set, every 8th handler reads its thread's CPU clock at entry and exit), and per handled
//! signal the kernel's delivery (calibrated at the session's start: signals the sampler
//! thread sends itself, empty-handed). The overhead is that cost over the rest of the
//! process's CPU time. A lowered rate keeps every weight true: a thread's sample stands for
//! all the intervals of CPU (or wall time) since its previous one.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};

/// How often the budget is reviewed (the first review comes after a quarter of it).
const REVIEW_NS: u64 = 50_000_000;
/// The stride at most: a tick every 1000 intervals (one a second at 1000 Hz).
pub(crate) const MAX_STRIDE: u32 = 1000;
/// One handled signal in this many is timed on the thread's CPU clock.
const TIME_EVERY: u64 = 8;
/// The share of the budget the pacer aims at, in percent: the rest is margin for the cost
/// moving between reviews and for what it cannot see (waking the sampler thread costs the
/// thread it preempts; the twin benchmark finds 0.2-0.5 points more than the estimate).
const AIM_PERCENT: u64 = 65;
/// Above this share of the budget, in percent, the rate is lowered, below [`LOW_PERCENT`]
/// raised; in between it stays (a review sees few samples at a low rate: its figures are
/// noisy, and a rate that moved at every review would record a change 20 times a second).
const HIGH_PERCENT: u64 = 85;
const LOW_PERCENT: u64 = 45;
/// Each review's figures weigh 1/`SMOOTHING` in what the pacer judges by (about the last
/// `SMOOTHING` reviews, 400 ms).
const SMOOTHING: u64 = 8;

/// What the handler and the sampler thread share about pacing: the budget, the handler's
/// measured time, and the pacer's latest figures (read by [`crate::Profiler::overhead`]).
pub(crate) struct Pacing {
    /// The budget in millionths of the application's CPU time; 0: none.
    pub budget_ppm: u32,
    /// Signals the handler took a sample for (counted only under a budget).
    handled: AtomicU64,
    /// Of those, the ones it timed (every [`TIME_EVERY`]th), and their CPU time in ns.
    timed: AtomicU64,
    timed_ns: AtomicU64,
    /// The stride in use.
    stride: AtomicU32,
    /// The overhead measured at the latest review, in millionths.
    overhead_ppm: AtomicU64,
    /// The overhead since the session's first review, in millionths.
    session_ppm: AtomicU64,
}

impl Pacing {
    /// Pacing under a budget of `budget_ppm` millionths (0: none).
    pub const fn new(budget_ppm: u32) -> Pacing {
        Pacing {
            budget_ppm,
            handled: AtomicU64::new(0),
            timed: AtomicU64::new(0),
            timed_ns: AtomicU64::new(0),
            stride: AtomicU32::new(1),
            overhead_ppm: AtomicU64::new(0),
            session_ppm: AtomicU64::new(0),
        }
    }

    /// Counts a signal the handler samples for, and says whether to time it (on the thread's
    /// CPU clock: a system call where the vDSO lacks it, so every [`TIME_EVERY`]th only; the
    /// monotonic clock would count the time the thread was preempted meanwhile). Always
    /// `false` without a budget.
    ///
    /// # Signal safety
    /// Async-signal-safe: an atomic addition.
    #[inline]
    #[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
    pub fn count_handled(&self) -> bool {
        // The 8th, 16th, ...: not the session's first, which pays for cold pages and caches
        // (and, under an emulator, for translating the handler) as no later one does.
        self.budget_ppm != 0 && self.handled.fetch_add(1, Relaxed) % TIME_EVERY == TIME_EVERY - 1
    }

    /// Adds a timed signal's `ns` of CPU.
    ///
    /// # Signal safety
    /// Async-signal-safe: two atomic additions.
    #[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
    pub fn add_timed(&self, ns: u64) {
        self.timed_ns.fetch_add(ns, Relaxed);
        self.timed.fetch_add(1, Relaxed);
    }

    /// The handler's estimated CPU time so far (the timed signals' mean, times all handled),
    /// and how many signals it handled.
    fn handler(&self) -> (u64, u64) {
        let handled = self.handled.load(Relaxed);
        let (timed, timed_ns) = (self.timed.load(Relaxed), self.timed_ns.load(Relaxed));
        let ns = (timed_ns as u128 * handled as u128)
            .checked_div(timed as u128)
            .unwrap_or(0);
        (ns.min(u64::MAX as u128) as u64, handled)
    }

    /// The stride in use, and the overhead measured at the latest review and since the
    /// session's first (millionths).
    pub fn latest(&self) -> (u32, u64, u64) {
        (
            self.stride.load(Relaxed),
            self.overhead_ppm.load(Relaxed),
            self.session_ppm.load(Relaxed),
        )
    }

    /// Back to a full rate, for a new session.
    pub fn reset(&self) {
        self.stride.store(1, Relaxed);
        self.overhead_ppm.store(0, Relaxed);
        self.session_ppm.store(0, Relaxed);
    }
}

/// Cumulative CPU readings: the process's, and vignette's share of it.
#[derive(Clone, Copy, Default)]
pub(crate) struct Spent {
    pub process_ns: u64,
    pub vignette_ns: u64,
}

/// Sets the sampler thread's ticks.
pub(crate) struct Pacer {
    interval_ns: u64,
    /// Intervals between two ticks.
    stride: u32,
    /// The intervals the coming tick's round stands for (the stride it was set with).
    pending: u32,
    next_tick: u64,
    /// Under a budget: what the process had spent at the last review and at the first, when
    /// the next is due, and the kernel's delivery of one signal.
    last: Spent,
    first: Spent,
    next_review: u64,
    delivery_ns: u64,
    /// What the process and vignette spent per review, smoothed over the recent ones.
    smooth: Spent,
}

impl Pacer {
    /// Ticks every `interval_ns` from `now`; under `pacing`'s budget (if any) every stride,
    /// with `delivery_ns` the calibrated cost of delivering one signal.
    pub fn new(interval_ns: u64, now: u64, pacing: &Pacing, delivery_ns: u64) -> Pacer {
        let interval_ns = interval_ns.max(1);
        pacing.reset();
        Pacer {
            interval_ns,
            stride: 1,
            pending: 1,
            next_tick: now + interval_ns,
            last: Spent::default(),
            first: Spent::default(),
            smooth: Spent::default(),
            next_review: now + REVIEW_NS / 4,
            delivery_ns,
        }
    }

    /// When the next tick is due.
    pub fn next_tick(&self) -> u64 {
        self.next_tick
    }

    /// The time between two ticks.
    #[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
    pub fn period_ns(&self) -> u64 {
        self.interval_ns * self.stride as u64
    }

    /// At a tick (now `now`, at or after the tick was due): the intervals the round now stands
    /// for under the wall clock (the stride, and as many as the machine made it late by, which
    /// are skipped); sets the next tick.
    pub fn tick(&mut self, now: u64) -> u32 {
        let missed = now.saturating_sub(self.next_tick) / self.interval_ns;
        let weight = (self.pending as u64 + missed).min(u16::MAX as u64) as u32;
        self.next_tick += (missed + self.stride as u64) * self.interval_ns;
        self.pending = self.stride;
        weight
    }

    /// Under a budget, once per review period: reads what the process and vignette spent
    /// (`spent`, given the handler's figures and the calibrated delivery) and sets the stride
    /// that keeps vignette's share within the budget.
    pub fn review(&mut self, now: u64, pacing: &Pacing, spent: impl FnOnce(u64, u64) -> Spent) {
        if pacing.budget_ppm == 0 || now < self.next_review {
            return;
        }
        self.next_review = now + REVIEW_NS;
        let (handler_ns, handled) = pacing.handler();
        let s = spent(handler_ns, handled.saturating_mul(self.delivery_ns));
        let (process, vignette) = (
            s.process_ns.saturating_sub(self.last.process_ns),
            s.vignette_ns.saturating_sub(self.last.vignette_ns),
        );
        let first = self.last.process_ns == 0;
        self.last = s;
        if first {
            self.first = s;
        }
        if first || process == 0 {
            return;
        }
        self.smooth = match self.smooth.process_ns {
            0 => Spent {
                process_ns: process,
                vignette_ns: vignette,
            },
            _ => Spent {
                process_ns: smoothed(self.smooth.process_ns, process),
                vignette_ns: smoothed(self.smooth.vignette_ns, vignette),
            },
        };
        let latest = overhead_ppm(self.smooth.process_ns, self.smooth.vignette_ns);
        let stride = next_stride(self.stride, latest, pacing.budget_ppm);
        // What the smoothed cost would have been at the new stride (cost falls in proportion
        // to it): the next reviews judge the new rate, not the old one's memory.
        self.smooth.vignette_ns =
            (self.smooth.vignette_ns as u128 * self.stride as u128 / stride as u128) as u64;
        self.stride = stride;
        pacing.stride.store(self.stride, Relaxed);
        pacing.overhead_ppm.store(latest, Relaxed);
        let session = overhead_ppm(
            s.process_ns.saturating_sub(self.first.process_ns),
            s.vignette_ns.saturating_sub(self.first.vignette_ns),
        );
        pacing.session_ppm.store(session, Relaxed);
    }
}

/// Vignette's cost over the application's own CPU (the process's less vignette's), in
/// millionths.
fn overhead_ppm(process_ns: u64, vignette_ns: u64) -> u64 {
    let application = process_ns.saturating_sub(vignette_ns).max(1);
    (vignette_ns as u128 * 1_000_000 / application as u128).min(u64::MAX as u128) as u64
}

/// `average` moved a [`SMOOTHING`]th of the way to `latest`.
fn smoothed(average: u64, latest: u64) -> u64 {
    average - average / SMOOTHING + latest / SMOOTHING
}

/// The stride after a review that measured `overhead_ppm` at `stride`: vignette's cost falls
/// in proportion to the stride, so over [`HIGH_PERCENT`] of the budget (or under
/// [`LOW_PERCENT`] of it) the stride that brings it to [`AIM_PERCENT`] of the budget, and in
/// between the same stride;
/// a stride is at most halved at once (the rate at most doubles).
fn next_stride(stride: u32, overhead_ppm: u64, budget_ppm: u32) -> u32 {
    let budget = budget_ppm as u64;
    let aim = (budget * AIM_PERCENT / 100).max(1);
    let ideal = (stride as u64 * overhead_ppm).div_ceil(aim);
    let next = match overhead_ppm * 100 {
        o if o > budget * HIGH_PERCENT => ideal.max(stride as u64 + 1),
        o if o >= budget * LOW_PERCENT => stride as u64,
        _ => ideal.max(stride as u64 / 2),
    };
    next.clamp(1, MAX_STRIDE as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_the_budget_the_stride_grows_in_proportion() {
        // 2% measured against a 1% budget aimed at 0.65%: 40/13 as many intervals a tick.
        assert_eq!(next_stride(1, 20_000, 10_000), 4);
        assert_eq!(next_stride(3, 20_000, 10_000), 10);
        // Over 85% of the budget is over.
        assert_eq!(next_stride(8, 9_900, 10_000), 13);
        assert_eq!(next_stride(900, 1_000_000, 100), MAX_STRIDE);
    }

    #[test]
    fn under_the_budget_the_rate_at_most_doubles_and_small_moves_wait() {
        assert_eq!(next_stride(8, 100, 10_000), 4);
        assert_eq!(
            next_stride(8, 7_000, 10_000),
            8,
            "between 45% and 85% of the budget"
        );
        assert_eq!(next_stride(8, 8_500, 10_000), 8);
        assert_eq!(next_stride(8, 4_500, 10_000), 8);
        assert_eq!(next_stride(8, 4_400, 10_000), 6);
        assert_eq!(next_stride(2, 0, 10_000), 1);
        assert_eq!(next_stride(1, 0, 10_000), 1);
    }

    #[test]
    fn the_overhead_is_over_the_applications_own_cpu() {
        assert_eq!(overhead_ppm(101_000, 1_000), 10_000);
        assert_eq!(overhead_ppm(1_000, 1_000), 1_000_000_000);
    }

    #[test]
    fn a_late_tick_stands_for_the_intervals_it_skipped() {
        let pacing = Pacing::new(0);
        let mut p = Pacer::new(1000, 0, &pacing, 0);
        assert_eq!(p.next_tick(), 1000);
        assert_eq!(p.tick(1000), 1);
        assert_eq!(p.next_tick(), 2000);
        assert_eq!(p.tick(4500), 3);
        assert_eq!(p.next_tick(), 5000);
        p.stride = 4;
        assert_eq!(p.tick(5000), 1, "the round for the tick set at stride 1");
        assert_eq!(p.next_tick(), 9000);
        assert_eq!(p.tick(9000), 4);
        assert_eq!(p.period_ns(), 4000);
    }

    #[test]
    fn reviews_follow_what_was_spent() {
        let pacing = Pacing::new(10_000);
        let mut p = Pacer::new(1_000_000, 0, &pacing, 2_000);
        let mut total = Spent::default();
        let mut step = |p: &mut Pacer, now: u64, process: u64, vignette: u64| {
            total.process_ns += process;
            total.vignette_ns += vignette;
            let t = total;
            p.review(now, &pacing, |_, _| t);
        };
        step(&mut p, REVIEW_NS / 4, 1, 0);
        assert_eq!(p.stride, 1, "the first review only reads");
        step(&mut p, REVIEW_NS / 2, 0, 0);
        assert_eq!(p.stride, 1, "not yet due");
        step(&mut p, REVIEW_NS / 4 + REVIEW_NS, 103_000_000, 3_000_000);
        assert_eq!(p.stride, 5, "3% against 0.65%");
        assert_eq!(pacing.latest(), (5, 30_000, 30_000));
        // The smoothed cost was scaled to the new stride (3% at 5 is 0.6%); a review that
        // measures 1.5% now moves it an eighth of the way, still between 45% and 85% of the
        // budget.
        step(
            &mut p,
            REVIEW_NS / 4 + 2 * REVIEW_NS,
            101_500_000,
            1_500_000,
        );
        assert_eq!(p.stride, 5);
        assert_eq!(pacing.latest().1, 6_978);
    }
}
