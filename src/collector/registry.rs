//! The thread registry: which threads are sampled, in which slot (the index their signals
//! carry), with their CPU accounting; slots are freed once a dead thread's samples are drained,
//! and a thread is listed in the profile at its first sample.

use super::{Collector, ThreadRec, NONE};
use crate::profile::Clock;
use crate::sys::mem::Zeroed;
use crate::sys::{threads, time};

/// What a tracking slot holds.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum SlotState {
    /// Free for a new thread.
    Free = 0,
    /// A live thread.
    Live = 1,
    /// Its thread has exited; free once the ring has been drained of its samples.
    Dead = 2,
}

/// What a thread scan found.
pub(crate) struct Scan {
    /// Threads were tracked or marked dead.
    pub changed: bool,
    /// The threads listed, the skipped one included.
    pub listed: usize,
    /// Live threads listed that found no slot (not tracked, so not watched either).
    pub untracked: usize,
}

/// A live thread being sampled: its index is the slot its signals carry.
#[derive(Clone, Copy)]
pub(crate) struct SlotRec {
    pub tid: i32,
    pub state: SlotState,
    /// Newly (re)assigned: the sampler forgets the slot's previous thread's unanswered signal.
    #[cfg_attr(any(windows, target_os = "macos"), allow(dead_code))]
    pub fresh: bool,
    /// CPU nanoseconds already accounted for by sent signals (clock `Cpu`).
    pub cpu_mark: u64,
    /// The weight of the last signal sent to it (counted as lost if it goes unanswered).
    #[cfg_attr(any(windows, target_os = "macos"), allow(dead_code))]
    pub sent_weight: u32,
    pub seen_epoch: u32,
    /// Its profile thread ([`ThreadRec`]), `NONE` until its first sample.
    pub thread: u32,
    /// Its name when it was found: the profile's name for it if it exits before its first
    /// sample is drained (its name can no longer be read then).
    pub found_name: [u8; 16],
    /// From which sample time (monotonic) its name is read again, and the wait after that:
    /// a thread may be found before it names itself, or rename itself later.
    pub name_due_ns: u64,
    pub name_wait_ns: u64,
    /// Whether it blocked the sampling signal when last looked at, and when that was
    /// (monotonic; 0: never): its unanswered intervals are then counted as blocked.
    #[cfg_attr(any(windows, target_os = "macos"), allow(dead_code))]
    pub blocks_signal: bool,
    #[cfg_attr(any(windows, target_os = "macos"), allow(dead_code))]
    pub block_checked_ns: u64,
}

/// The first wait before a sampled thread's name is read again; each wait after doubles,
/// up to [`NAME_WAIT_MAX_NS`] (a running thread's name is read about 7 times in its first
/// second, then once a second; a thread that is not sampled costs nothing).
const NAME_WAIT_NS: u64 = 10_000_000;
const NAME_WAIT_MAX_NS: u64 = 1_000_000_000;

// SAFETY: integers and bools; zero is `SlotState::Free` and false.
unsafe impl Zeroed for SlotRec {}

impl Collector {
    pub(crate) fn slot_mut(&mut self, i: usize) -> Option<&mut SlotRec> {
        self.slots.get_mut(..self.slots_len)?.get_mut(i)
    }

    /// The live slot of `tid`, if tracked.
    pub(crate) fn find_thread(&self, tid: i32) -> Option<usize> {
        let slots = &self.slots;
        let (_, found) = self.slot_index.probe(tid as u64, |i| {
            let s = &slots[i as usize];
            s.tid == tid && s.state == SlotState::Live
        });
        found.map(|i| i as usize)
    }

    /// A slot for `tid`, which has none: the first free one, or a new one; `None` when every
    /// slot holds a live (or not yet drained) thread. `cpu_mark` is where CPU accounting starts.
    pub(super) fn assign_slot(&mut self, tid: i32, cpu_mark: u64) -> Option<usize> {
        // The first free slot: reused before the table grows.
        let i = match self.slots[..self.slots_len]
            .iter()
            .position(|s| s.state == SlotState::Free)
        {
            Some(i) => i,
            None if self.slots_len < self.slots.len() => {
                self.slots_len += 1;
                self.slots_len - 1
            }
            None => return None,
        };
        self.slots[i] = SlotRec {
            tid,
            state: SlotState::Live,
            fresh: true,
            cpu_mark,
            sent_weight: 0,
            seen_epoch: self.epoch,
            thread: NONE,
            found_name: [0; 16],
            name_due_ns: time::monotonic_ns().saturating_add(NAME_WAIT_NS),
            name_wait_ns: NAME_WAIT_NS,
            blocks_signal: false,
            block_checked_ns: 0,
        };
        threads::thread_name(tid, &mut self.slots[i].found_name);
        let slots = &self.slots;
        let (at, _) = self.slot_index.probe(tid as u64, |j| {
            let s = &slots[j as usize];
            s.tid == tid && s.state == SlotState::Live
        });
        self.slot_index.slots[at] = i as u32 + 1;
        Some(i)
    }

    /// Re-lists the process's threads (except `skip`): new ones are tracked, vanished ones are
    /// marked dead. Live threads that found no slot are counted as lost, `missed_each`
    /// sampling intervals apiece.
    #[cfg_attr(any(windows, target_os = "macos"), allow(dead_code))]
    pub(crate) fn scan_threads(
        &mut self,
        skip: i32,
        missed_each: u64,
        new_cpu_mark: impl Fn(i32) -> u64,
    ) -> Scan {
        self.scan_threads_then(skip, missed_each, new_cpu_mark, |_, _| {})
    }

    /// [`Self::scan_threads`], calling `on_new(slot, tid)` for each thread given a slot, while
    /// the listing still holds it: on macOS, the listing's reference to the thread's port
    /// keeps its name from coming to mean another port until the sampler takes its own.
    pub(crate) fn scan_threads_then(
        &mut self,
        skip: i32,
        missed_each: u64,
        new_cpu_mark: impl Fn(i32) -> u64,
        mut on_new: impl FnMut(usize, i32),
    ) -> Scan {
        self.epoch = self.epoch.wrapping_add(1);
        let mut scan = Scan {
            changed: false,
            listed: 0,
            untracked: 0,
        };
        // No slot frees during a listing (vanished threads are marked after it): once none
        // is left, the rest are untracked without looking (a process with 10 000 threads and
        // 1 024 slots would otherwise pay threads x slots per listing).
        let mut full = false;
        let complete = threads::for_each_thread(|tid| {
            scan.listed += 1;
            if tid == skip {
                return;
            }
            match self.find_thread(tid) {
                Some(i) => self.slots[i].seen_epoch = self.epoch,
                None if full => scan.untracked += 1,
                None => match self.assign_slot(tid, new_cpu_mark(tid)) {
                    Some(i) => {
                        on_new(i, tid);
                        scan.changed = true;
                    }
                    None => {
                        full = true;
                        scan.untracked += 1;
                    }
                },
            }
        });
        self.lost.threads_over_capacity += scan.untracked as u64 * missed_each;
        if complete {
            let epoch = self.epoch;
            for i in 0..self.slots_len {
                let s = self.slots[i];
                if s.state == SlotState::Live && s.seen_epoch != epoch {
                    self.mark_dead(i);
                    scan.changed = true;
                }
            }
        }
        scan
    }

    /// Starts CPU accounting of every live thread from its CPU time now.
    pub(crate) fn reset_cpu_marks(&mut self) {
        for s in self.slots.iter_mut().take(self.slots_len) {
            if s.state == SlotState::Live {
                s.cpu_mark = time::thread_cpu_ns(s.tid).unwrap_or(0);
            }
        }
    }

    /// How many slots hold a live thread.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(crate) fn live(&self) -> usize {
        (self.slots.iter().take(self.slots_len))
            .filter(|s| s.state == SlotState::Live)
            .count()
    }

    /// Counts the CPU intervals every live thread used since its account's mark as not
    /// sampled because the program held the signal ([`crate::Lost::signal_taken`]), moving
    /// the accounts on past them.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(crate) fn count_signal_taken(&mut self, interval_ns: u64) {
        for i in 0..self.slots_len {
            let Some(&s) = self.slots.get(i) else { break };
            if s.state != SlotState::Live {
                continue;
            }
            if let Some(cpu) = time::thread_cpu_ns(s.tid) {
                self.lost.signal_taken += self.advance_cpu_mark(i, cpu, interval_ns);
            }
        }
    }

    /// The weight of the sample the live thread in slot `i` is due at a tick, or `None` if it
    /// is due none: under `Clock::Wall` every thread is, weighing `wall_weight`; under
    /// `Clock::Cpu` a thread whose CPU clock (`cpu`) moved by at least one interval since its
    /// last sample, weighing those intervals. A thread whose clock cannot be read has exited,
    /// and is marked so.
    pub(crate) fn due_weight(
        &mut self,
        i: usize,
        clock: Clock,
        wall_weight: u32,
        interval_ns: u64,
        cpu: impl FnOnce() -> Option<u64>,
    ) -> Option<u32> {
        match clock {
            Clock::Wall => Some(wall_weight),
            Clock::Cpu => match cpu() {
                None => {
                    self.mark_dead(i);
                    None
                }
                Some(cpu) => self.take_due_intervals(i, cpu, interval_ns),
            },
        }
    }

    /// Clock `Cpu`: the intervals the thread in slot `i` is due a sample for, now that it has
    /// used `cpu_ns` of CPU (its account moves on by that many), or `None` if less than one
    /// interval passed since its last sample. At most `u16::MAX` (a sample's weight field).
    pub(crate) fn take_due_intervals(
        &mut self,
        i: usize,
        cpu_ns: u64,
        interval_ns: u64,
    ) -> Option<u32> {
        let due = self.advance_cpu_mark(i, cpu_ns, interval_ns);
        (due > 0).then(|| due.min(u16::MAX as u64) as u32)
    }

    /// The whole intervals the thread in slot `i` used between its account's mark and
    /// `cpu_ns`; its mark moves on past them.
    fn advance_cpu_mark(&mut self, i: usize, cpu_ns: u64, interval_ns: u64) -> u64 {
        let Some(s) = self.slot_mut(i) else {
            return 0;
        };
        let due = cpu_ns.saturating_sub(s.cpu_mark) / interval_ns.max(1);
        s.cpu_mark += due * interval_ns;
        due
    }

    /// Marks the thread in slot `i` as exited; the slot is freed after the next drain (which
    /// takes in every sample the thread published before it exited).
    pub(crate) fn mark_dead(&mut self, i: usize) {
        if let Some(s) = self.slot_mut(i) {
            if s.state == SlotState::Live {
                s.state = SlotState::Dead;
                self.dead_slots += 1;
            }
        }
    }

    /// Frees the slots of threads marked dead: called by `drain` once it has read the ring, and
    /// nothing marks a thread dead while a drain runs, so each one's samples are in by then.
    pub(super) fn free_dead_slots(&mut self) {
        if self.dead_slots == 0 {
            return;
        }
        for s in self.slots.iter_mut().take(self.slots_len) {
            if s.state == SlotState::Dead {
                s.state = SlotState::Free;
            }
        }
        self.dead_slots = 0;
        // The index keeps only live slots: rebuild it without the freed ones.
        self.slot_index.clear();
        for i in 0..self.slots_len {
            let s = self.slots[i];
            if s.state == SlotState::Live {
                let (at, _) = self.slot_index.probe(s.tid as u64, |_| false);
                self.slot_index.slots[at] = i as u32 + 1;
            }
        }
    }

    /// The profile thread of slot `slot`'s thread, listed at its first sample (threads often
    /// name themselves just after they start, after the scan saw them), under the name it has
    /// then, or (exited, or found so) the one it had when found. `None` if the slot is unused or
    /// the thread table is full.
    pub(super) fn thread_of_slot(&mut self, slot: usize, time_ns: u64) -> Option<usize> {
        let s = *self.slots.get(..self.slots_len)?.get(slot)?;
        if s.state == SlotState::Free {
            return None;
        }
        if s.thread != NONE {
            if s.state == SlotState::Live && time_ns >= s.name_due_ns {
                self.read_name_again(slot, time_ns);
            }
            return Some(s.thread as usize);
        }
        let i = self.threads_len;
        let t = self.threads.get_mut(i)?;
        let mut name = s.found_name;
        let mut now = [0u8; 16];
        if s.state == SlotState::Live && threads::thread_name(s.tid, &mut now) > 0 {
            name = now;
        }
        *t = ThreadRec {
            tid: s.tid,
            name,
            first: NONE,
            last: NONE,
            count: 0,
        };
        self.threads_len += 1;
        self.slots[slot].thread = i as u32;
        Some(i)
    }

    /// Reads the name of the live thread in `slot` (which has a profile thread) again, at
    /// sample time `time_ns`, and schedules the next reading.
    fn read_name_again(&mut self, slot: usize, time_ns: u64) {
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        let mut name = [0u8; 16];
        let read = threads::thread_name(s.tid, &mut name) > 0;
        s.name_wait_ns = (s.name_wait_ns.saturating_mul(2)).clamp(NAME_WAIT_NS, NAME_WAIT_MAX_NS);
        s.name_due_ns = time_ns.saturating_add(s.name_wait_ns);
        if read {
            s.found_name = name;
            if let Some(t) = self.threads.get_mut(s.thread as usize) {
                t.name = name;
            }
        }
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::super::Capacities;
    use super::*;

    /// A thread that exits before its first sample is drained is listed under the name it had
    /// when the scan found it (its name can no longer be read then).
    #[test]
    fn a_thread_gone_before_its_first_sample_keeps_the_name_it_was_found_with() {
        let mut c = Collector::new(Capacities {
            samples: 16,
            frames: 16,
            stack_nodes: 32,
            slots: 64,
            threads: 64,
            modules: 4,
            ring: 16,
            heap_mean: 0,
        })
        .unwrap();
        c.begin(|_| {});
        let (found, go) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
        let tid = std::thread::scope(|s| {
            let t = std::thread::Builder::new()
                .name("short-lived".into())
                .spawn_scoped(s, || {
                    found.wait();
                    go.wait();
                    threads::gettid()
                })
                .unwrap();
            found.wait();
            c.scan_threads(0, 1, |_| 0);
            go.wait();
            t.join().unwrap()
        });
        let slot = c.find_thread(tid).expect("the scan found the thread");
        // The thread is gone: its comm file with it.
        while threads::thread_name(tid, &mut [0; 16]) > 0 {
            std::thread::yield_now();
        }
        let listed = c.thread_of_slot(slot, 0).unwrap();
        assert_eq!(&c.threads[listed].name[..11], b"short-lived");
    }
}
