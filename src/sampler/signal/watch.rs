//! Which threads the sampler thread tracks, and what it holds for each (its kernel timer, the
//! descriptor watching for its exit).
//!
//! Reading `/proc/self/task` costs about 0.4 µs per thread, so the list is read only when
//! something says the threads changed, and every [`FULL_LISTING_NS`] (or longer, when listings
//! are dear) in any case. The thread
//! count (one `fstat` of the directory: its link count) must equal the last listing's, and
//! then either no id was given out in the pid namespace since (`ns_last_pid`: no birth, so
//! no death either), or no thread the listing found has exited (a `pidfd` per thread,
//! `PIDFD_THREAD`, in one epoll set): a thread born after a listing raises the count unless
//! another ended meanwhile, so a birth never hides behind a death. Where neither can be told
//! (a listed thread without a slot or an exit watch, and ids given out elsewhere in the
//! namespace), the list is read; when only the ids given out say so, never sooner after the
//! last listing than 50 times what that one took (with thousands of threads, listings then
//! cost at most 2% of the sampler's time).
//!
//! Descriptors are the application's too: the sampler holds at most a quarter of the
//! process's limit, never one numbered in its upper half ([`Descriptors`]).

use core::cell::Cell;

use super::timed::{Arming, TimerRec};
use super::Shared;
use crate::collector::{Collector, Scan, SlotState};
use crate::sys::mem::Zeroed;
use crate::sys::threads::{ExitWatch, LastPid, ThreadCount};
use crate::sys::{fs, time};

/// How often the thread list is read even when nothing says it changed: every 2 s, or, when
/// a listing is dear (thousands of threads), after 500 times what the last one took (at most
/// 0.2% of the sampler thread's time: 10 000 threads, 13 ms a listing, every 6.5 s).
const FULL_LISTING_NS: u64 = 2_000_000_000;
const FULL_LISTING_GAP: u64 = 500;

/// A listing follows the last one after this many times what the last one took at the
/// soonest: listings take at most 2% of the sampler thread's time, however many threads they
/// read (10 000 threads take about 4 ms).
const LISTING_GAP: u64 = 50;

/// What the sampler thread holds for a tracked thread, by slot: the descriptor watching for
/// its exit and its kernel timer.
#[derive(Clone, Copy)]
pub(crate) struct Tracked {
    /// The thread these are for (0: none).
    tid: i32,
    /// The exit-watching descriptor + 1 (0: none).
    exit_fd: i32,
    pub timer: TimerRec,
    /// At the last look for a blocked signal: the signals its perf event had delivered,
    /// and its CPU time.
    pub seen_signals: u32,
    pub seen_cpu_ns: u64,
}

// SAFETY: integers, and a TimerRec whose zero is "no timer".
unsafe impl Zeroed for Tracked {}

/// The descriptors the sampler thread holds for threads (perf events, exit watches): at most
/// a quarter of the process's descriptor limit, and none numbered in its upper half, so the
/// application keeps the descriptors it counts on. Threads beyond get a CPU timer (no
/// descriptor) and no exit watch.
pub(crate) struct Descriptors {
    limit: usize,
    held: Cell<usize>,
}

impl Descriptors {
    /// A budget from the process's limit now.
    pub fn new() -> Descriptors {
        Descriptors {
            limit: fs::descriptor_limit(),
            held: Cell::new(0),
        }
    }

    /// Whether one more may be opened.
    pub fn may_open(&self) -> bool {
        self.held.get() < self.limit / 4
    }

    /// Counts `fd`, just opened, as held; `false` (the caller closes it) if its number is in
    /// the upper half of the limit: the application's own descriptors are running out.
    pub fn hold(&self, fd: i32) -> bool {
        let keep = (fd as usize) < self.limit / 2;
        if keep {
            self.held.set(self.held.get() + 1);
        }
        keep
    }

    /// A held descriptor was closed (or is no longer the sampler's).
    pub fn let_go(&self) {
        self.held.set(self.held.get().saturating_sub(1));
    }
}

/// Decides when the thread list is read again, and keeps each tracked thread's [`Tracked`].
pub(crate) struct ThreadWatch {
    listed: usize,
    listed_at: u64,
    /// The CPU time the last listing took, in ns.
    listing_ns: u64,
    count: Option<ThreadCount>,
    /// The namespace's last id given out, read just before the last listing.
    last_pid: Option<LastPid>,
    last_pid_listed: Option<i32>,
    exits: Option<ExitWatch>,
    /// Every live thread the last listing found is tracked and watched for its exit.
    all_watched: bool,
    /// Live threads the last listing found no slot for.
    untracked: usize,
    fds: Descriptors,
}

impl ThreadWatch {
    /// A watch after a listing at `now` (`scan`), made after `last_pid` was read (giving
    /// `last_pid_listed`). Its descriptors are marked in `shared` (a forked child closes
    /// them).
    pub fn new(
        shared: &Shared,
        scan: Scan,
        last_pid: Option<LastPid>,
        last_pid_listed: Option<i32>,
        now: u64,
    ) -> ThreadWatch {
        let watch = ThreadWatch {
            listed: scan.listed,
            listed_at: now,
            listing_ns: 0,
            count: ThreadCount::open(),
            last_pid,
            last_pid_listed,
            exits: ExitWatch::new(),
            all_watched: false,
            untracked: scan.untracked,
            fds: Descriptors::new(),
        };
        watch.mark_own(shared, true);
        watch
    }

    /// Marks (or unmarks) the watch's own descriptors in `shared`.
    fn mark_own(&self, shared: &Shared, held: bool) {
        let own = [
            self.count.as_ref().map(ThreadCount::fd),
            self.last_pid.as_ref().map(LastPid::fd),
            self.exits.as_ref().map(ExitWatch::fd),
        ];
        for fd in own.into_iter().flatten() {
            shared.mark_fd(fd, held);
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
        // Threads that replace one another keep the count: no id given out, or no exit of a
        // listed thread, says none did (tests/backends.rs,
        // threads_that_replace_one_another_are_each_found).
        // Live threads without a slot (more than `max_threads`) do not make a listing due:
        // a slot frees only when a tracked thread exits, which the signs below show, and the
        // intervals they miss are counted at the next listing, since the last one.
        let last_pid = self.last_pid.as_ref().and_then(LastPid::read);
        let full_listing_ns = FULL_LISTING_NS.max(self.listing_ns.saturating_mul(FULL_LISTING_GAP));
        let same_count = now < self.listed_at + full_listing_ns
            && self.count.as_ref().and_then(ThreadCount::read) == Some(self.listed);
        let no_birth = last_pid.is_some() && last_pid == self.last_pid_listed;
        let no_exit = self.all_watched && !self.exits.as_ref().is_some_and(ExitWatch::any_exited);
        if same_count && (no_birth || no_exit) {
            return None;
        }
        // Only an id given out somewhere says a thread may have been born (behind an unwatched
        // one's exit): with many threads a listing is dear, and a busy machine gives out ids
        // all the time, so such a listing waits for its gap (threads born and gone meanwhile
        // are counted as unseen). A changed count is listed at once.
        let soonest = self.listed_at + self.listing_ns.saturating_mul(LISTING_GAP);
        if same_count && now < soonest {
            return None;
        }
        let missed_each = (now.saturating_sub(self.listed_at) / interval_ns).max(1);
        self.last_pid_listed = last_pid;
        // Timed on this thread's CPU clock: time it was preempted meanwhile is no cost.
        let cpu_at = time::own_thread_cpu_ns();
        let scan = c.scan_threads(me, missed_each, |_| 0);
        self.listed = scan.listed;
        self.untracked = scan.untracked;
        self.listed_at = now;
        self.listing_ns = match (cpu_at, time::own_thread_cpu_ns()) {
            (Some(at), Some(end)) => end.saturating_sub(at),
            _ => 0,
        };
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
                release(shared, c, i, t, arming, &self.fds);
            }
            if !live {
                continue;
            }
            if let Some(arming) = arming {
                if t.timer == TimerRec::NONE && !arming.arm(shared, c, i, t, &self.fds) {
                    c.lost.threads_over_capacity += missed_each;
                }
            }
            if t.tid == 0 {
                t.tid = slot.tid;
                t.exit_fd = self.watch_exit(slot.tid).map_or(0, |fd| {
                    shared.mark_fd(fd, true);
                    fd + 1
                });
            }
            all_watched &= t.exit_fd != 0;
        }
        self.all_watched = all_watched;
    }

    /// A descriptor watching thread `tid` for its exit, within the budget.
    fn watch_exit(&self, tid: i32) -> Option<i32> {
        if !self.fds.may_open() {
            return None;
        }
        let fd = self.exits.as_ref()?.watch(tid)?;
        if !self.fds.hold(fd) {
            ExitWatch::forget(fd);
            return None;
        }
        Some(fd)
    }

    /// Lets go of everything held for every thread, and closes the watch's own descriptors
    /// (the session ends).
    /// Disarms every tracked thread's timer, keeping the threads watched ([`ThreadWatch::sync`]
    /// with an arming arms them again).
    pub fn disarm_all(
        &mut self,
        shared: &Shared,
        c: &mut Collector,
        tracked: &mut [Tracked],
        arming: &Arming,
    ) {
        for (i, t) in tracked.iter_mut().enumerate().take(c.slots_len) {
            if t.timer != TimerRec::NONE {
                arming.disarm(shared, c, i, t, &self.fds);
            }
        }
    }

    pub fn release_all(
        &mut self,
        shared: &Shared,
        c: &mut Collector,
        tracked: &mut [Tracked],
        arming: Option<&Arming>,
    ) {
        for (i, t) in tracked.iter_mut().enumerate().take(c.slots_len) {
            if t.tid != 0 {
                release(shared, c, i, t, arming, &self.fds);
            }
        }
        self.mark_own(shared, false);
        (self.count, self.last_pid, self.exits) = (None, None, None);
    }
}

/// Lets go of what is held for the thread of slot `i`: its exit watch and its timer.
fn release(
    shared: &Shared,
    c: &mut Collector,
    i: usize,
    t: &mut Tracked,
    arming: Option<&Arming>,
    fds: &Descriptors,
) {
    if t.exit_fd != 0 {
        shared.mark_fd(t.exit_fd - 1, false);
        ExitWatch::forget(t.exit_fd - 1);
        fds.let_go();
    }
    if let Some(arming) = arming {
        arming.disarm(shared, c, i, t, fds);
    }
    *t = Tracked {
        tid: 0,
        exit_fd: 0,
        timer: TimerRec::NONE,
        seen_signals: 0,
        seen_cpu_ns: 0,
    };
}
