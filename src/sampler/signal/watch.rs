//! Which threads the sampler thread tracks, and what it holds for each (its kernel timer).
//! Reading `/proc/self/task` costs about 0.4 µs per thread; the means to skip listings when
//! nothing changed are here (the thread count from one `fstat`, a `pidfd` per thread in one
//! epoll set for exits, a listing every [`FULL_LISTING_NS`] in any case), but switched off
//! ([`LISTING_SKIPS`]): they missed threads that replace one another, so the list is read at
//! every look, and no count or exit descriptors are opened.

use super::timed::{Arming, TimerRec};
use super::Shared;
use crate::collector::{Collector, Scan, SlotState};
use crate::sys::mem::Zeroed;
use crate::sys::threads::{ExitWatch, ThreadCount};

/// Whether listings may be skipped when nothing says the threads changed (off: see
/// `scan_if_changed`).
const LISTING_SKIPS: bool = false;

/// How often the thread list is read even when nothing says it changed.
const FULL_LISTING_NS: u64 = 2_000_000_000;

/// What the sampler thread holds for a tracked thread, by slot: the descriptor watching for
/// its exit and its kernel timer.
#[derive(Clone, Copy)]
pub(crate) struct Tracked {
    /// The thread these are for (0: none).
    tid: i32,
    /// The exit-watching descriptor + 1 (0: none).
    exit_fd: i32,
    pub timer: TimerRec,
}

// SAFETY: integers, and a TimerRec whose zero is "no timer".
unsafe impl Zeroed for Tracked {}

/// Decides when the thread list is read again, and keeps each tracked thread's [`Tracked`].
pub(crate) struct ThreadWatch {
    listed: usize,
    listed_at: u64,
    count: Option<ThreadCount>,
    exits: Option<ExitWatch>,
    /// Every live thread is watched for its exit.
    all_watched: bool,
}

impl ThreadWatch {
    /// A watch after a listing at `now` that found `listed` threads.
    pub fn new(listed: usize, now: u64) -> ThreadWatch {
        ThreadWatch {
            listed,
            listed_at: now,
            // Only needed to skip listings: no descriptors while that is off.
            count: LISTING_SKIPS.then(ThreadCount::open).flatten(),
            exits: LISTING_SKIPS.then(ExitWatch::new).flatten(),
            all_watched: false,
        }
    }

    /// Lists the threads into `c` (skipping `me`) if anything says they changed or a listing
    /// is due; live threads that found no slot are counted as missing the intervals since the
    /// last listing, which is also returned.
    pub fn scan_if_changed(
        &mut self,
        c: &mut Collector,
        me: i32,
        now: u64,
        interval_ns: u64,
    ) -> Option<(Scan, u64)> {
        // Skipping listings missed threads that replace one another (tests/robustness.rs:
        // short-lived threads spawned one after another keep the count and are never
        // tracked, so no exit fires): listed at every look until that is solved.
        let quiet = LISTING_SKIPS
            && self.all_watched
            && now < self.listed_at + FULL_LISTING_NS
            && self.count.as_ref().and_then(ThreadCount::read) == Some(self.listed)
            && !self.exits.as_ref().is_some_and(ExitWatch::any_exited);
        if quiet {
            return None;
        }
        let missed_each = (now.saturating_sub(self.listed_at) / interval_ns).max(1);
        let scan = c.scan_threads(me, missed_each, |_| 0);
        self.listed = scan.listed;
        self.listed_at = now;
        Some((scan, missed_each))
    }

    /// Brings `tracked` in step with the slots: what was held for threads no longer live
    /// (or whose slot now holds another thread) is let go, and new live threads are watched
    /// for their exit and, under a kernel-timed backend (`arming`), given a timer (tried again
    /// for threads that have none; those still without one are counted as missing
    /// `missed_each` intervals).
    pub fn sync(
        &mut self,
        shared: &Shared,
        c: &mut Collector,
        tracked: &mut [Tracked],
        arming: Option<&Arming>,
        missed_each: u64,
    ) {
        let mut all_watched = self.exits.is_some();
        for i in 0..c.slots_len {
            let (Some(&slot), Some(t)) = (c.slots.get(i), tracked.get_mut(i)) else {
                break;
            };
            let live = slot.state == SlotState::Live;
            if t.tid != 0 && (!live || t.tid != slot.tid) {
                release(shared, c, i, t, arming);
            }
            if !live {
                continue;
            }
            if t.tid == 0 {
                t.tid = slot.tid;
                t.exit_fd = match self.exits.as_ref().and_then(|w| w.watch(slot.tid)) {
                    Some(fd) => fd + 1,
                    None => 0,
                };
            }
            all_watched &= t.exit_fd != 0;
            if let Some(arming) = arming {
                if t.timer == TimerRec::NONE && !arming.arm(shared, c, i, t) {
                    c.lost.threads_over_capacity += missed_each;
                }
            }
        }
        self.all_watched = all_watched;
    }

    /// Lets go of everything held for every thread (the session ends).
    pub fn release_all(
        &mut self,
        shared: &Shared,
        c: &mut Collector,
        tracked: &mut [Tracked],
        arming: Option<&Arming>,
    ) {
        for (i, t) in tracked.iter_mut().enumerate().take(c.slots_len) {
            if t.tid != 0 {
                release(shared, c, i, t, arming);
            }
        }
    }
}

/// Lets go of what is held for the thread of slot `i`: its exit watch and its timer.
fn release(shared: &Shared, c: &mut Collector, i: usize, t: &mut Tracked, arming: Option<&Arming>) {
    if t.exit_fd != 0 {
        ExitWatch::forget(t.exit_fd - 1);
    }
    if let Some(arming) = arming {
        arming.disarm(shared, c, i, t);
    }
    *t = Tracked {
        tid: 0,
        exit_fd: 0,
        timer: TimerRec::NONE,
    };
}
