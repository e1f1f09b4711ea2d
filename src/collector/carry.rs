//! Sessions that continue one another: a rotated chunk's successor takes over the thread
//! registry and the loaded modules ([`Collector::begin_after`]), and a flight recorder's
//! window is several sessions merged into one ([`Collector::absorb`]).

use super::{ChunkRec, Collector, SampleRec, ThreadRec, NONE};
use crate::sys::time;

/// The most frames a merged stack is rebuilt from (the builder's limit on `max_frames`).
const MAX_DEPTH: usize = 1024;

impl Collector {
    /// Opens this (finished or never used) session as the next chunk after `prev`, which has
    /// just been finished: the same live threads in the same slots with their CPU accounts,
    /// the modules still loaded, and a time range that starts where `prev`'s ended.
    pub(crate) fn begin_after(&mut self, prev: &Collector) {
        self.clear_tables();
        let n = prev.slots_len.min(self.slots.len());
        if let (Some(dst), Some(src)) = (self.slots.get_mut(..n), prev.slots.get(..n)) {
            dst.copy_from_slice(src);
            // Profile threads are listed per session, at their first sample.
            dst.iter_mut().for_each(|s| s.thread = NONE);
        }
        self.slots_len = n;
        if self.slot_index.slots.len() == prev.slot_index.slots.len() {
            self.slot_index
                .slots
                .copy_from_slice(&prev.slot_index.slots);
        }
        self.dead_slots = prev.dead_slots;
        self.epoch = prev.epoch;
        self.modules.carry_from(&prev.modules);
        self.start_ns = prev.end_ns;
        self.start_unix_ns = prev.start_unix_ns + prev.end_ns.saturating_sub(prev.start_ns);
        self.end_ns = self.start_ns;
        (self.cpu_start_ns, self.cpu_end_ns) = (prev.cpu_end_ns, 0);
        self.rates.continue_from(&prev.rates, self.start_ns);
        self.pid = prev.pid;
        self.chunk = ChunkRec {
            sequence: prev.chunk.sequence + 1,
            ..ChunkRec::FIRST
        };
        self.open = true;
    }

    /// Opens this session empty, from `start_ns` to `end_ns` (monotonic, `end_ns` now), for
    /// merging others into with [`Collector::absorb`].
    pub(crate) fn begin_merged(&mut self, start_ns: u64, end_ns: u64, chunk: ChunkRec) {
        self.clear_tables();
        self.slots_len = 0;
        self.modules.clear();
        self.start_ns = start_ns;
        self.start_unix_ns = time::realtime_ns().saturating_sub(end_ns.saturating_sub(start_ns));
        self.end_ns = end_ns;
        // What `absorb` adds up (only the range's length means something here).
        (self.cpu_start_ns, self.cpu_end_ns) = (0, 0);
        self.pid = crate::sys::threads::getpid() as u32;
        self.chunk = chunk;
        self.open = false;
    }

    /// Adds the samples of `src` taken at or after `since_ns` (monotonic), with their threads,
    /// stacks and modules; returns how many samples were older. Samples that do not fit are
    /// counted in `lost.tables_full`. Linear in `src`'s samples and stack nodes.
    ///
    /// A thread's first sample here weighs at most the intervals of `interval_ns` between
    /// `since_ns` and its time, plus one: its weight may stand for time before the window
    /// (a sleeper's CPU since its previous sample), which the window does not cover.
    ///
    /// Its process CPU time from `since_ns` on is added to this session's (see
    /// [`cpu_since`]).
    pub(crate) fn absorb(&mut self, src: &Collector, since_ns: u64, interval_ns: u64) -> u64 {
        self.lost += src.lost;
        self.rates.absorb(&src.rates, since_ns);
        let cpu = cpu_since(src, since_ns);
        if cpu > 0 {
            if self.cpu_start_ns == 0 {
                (self.cpu_start_ns, self.cpu_end_ns) = (1, 1);
            }
            self.cpu_end_ns += cpu;
        }
        // Only as much of the maps as `src` uses (the pause of taking a window).
        if let Some(m) = self.node_remap.get_mut(..src.nodes_len) {
            m.fill(0);
        }
        if let Some(m) = self.module_remap.get_mut(..src.modules.len()) {
            m.fill(0);
        }
        let mut older = 0;
        for t in src.threads.get(..src.threads_len).unwrap_or(&[]) {
            let mut thread = None;
            let mut next = t.first;
            for _ in 0..t.count {
                let Some(rec) = src
                    .samples
                    .get(..src.samples_len)
                    .and_then(|s| s.get(next as usize))
                else {
                    break;
                };
                next = rec.next;
                if rec.time_ns < since_ns {
                    older += 1;
                    continue;
                }
                let thread = match thread {
                    Some(i) => i,
                    None => match self.thread_by_tid(t) {
                        Some(i) => *thread.insert(i),
                        None => {
                            self.lost.threads_over_capacity += 1;
                            continue;
                        }
                    },
                };
                match self.adopt_stack(src, rec.stack) {
                    Some(stack) if self.samples_len < self.samples.len() => {
                        let set = (rec.labels.checked_sub(1)).and_then(|i| {
                            src.label_sets.get(..src.label_sets_len)?.get(i as usize)
                        });
                        let labels = set.map_or(0, |s| self.intern_labels(s));
                        let first = self.threads.get(thread).is_some_and(|t| t.count == 0);
                        let weight = match first {
                            true => {
                                let since = (rec.time_ns - since_ns) / interval_ns.max(1) + 1;
                                rec.weight.min(since.min(u32::MAX as u64) as u32)
                            }
                            false => rec.weight,
                        };
                        self.append_sample(
                            thread,
                            SampleRec {
                                stack,
                                labels,
                                weight,
                                ..*rec
                            },
                        );
                    }
                    _ => self.lost.tables_full += 1,
                }
            }
        }
        older
    }

    /// The thread of this session with `t`'s tid, listed (with `t`'s name) if new.
    fn thread_by_tid(&mut self, t: &ThreadRec) -> Option<usize> {
        let threads = &self.threads;
        let (slot, found) = self.thread_index.probe(t.tid as u64, |i| {
            threads.get(i as usize).is_some_and(|x| x.tid == t.tid)
        });
        if let Some(i) = found {
            return Some(i as usize);
        }
        let i = self.threads_len;
        *self.threads.get_mut(i)? = ThreadRec {
            first: NONE,
            last: NONE,
            count: 0,
            ..*t
        };
        self.threads_len += 1;
        *self.thread_index.slots.get_mut(slot)? = i as u32 + 1;
        Some(i)
    }

    /// `src`'s stack node `node` as a node of this session (interning the frames and nodes
    /// not yet taken over), or `None` when a table is full.
    fn adopt_stack(&mut self, src: &Collector, node: u32) -> Option<u32> {
        // Up the chain to the first node already taken over (or the root).
        let mut chain = [0u32; MAX_DEPTH];
        let mut depth = 0;
        let mut at = node;
        let mut parent = 0u32;
        while let Some(n) = src
            .nodes
            .get(..src.nodes_len)
            .and_then(|n| n.get(at as usize))
        {
            match self.node_remap.get(at as usize).copied() {
                Some(0) => {}
                Some(done) => {
                    parent = done;
                    break;
                }
                None => return None,
            }
            *chain.get_mut(depth)? = at;
            depth += 1;
            match n.parent {
                0 => break,
                p => at = p - 1,
            }
        }
        // Back down, interning each node under the one before it.
        for &at in chain.get(..depth)?.iter().rev() {
            let n = src.nodes.get(at as usize)?;
            let f = src.frames.get(..src.frames_len)?.get(n.frame as usize)?;
            let module = match f.module {
                0 => 0,
                m => self.adopt_module(src, m - 1)?,
            };
            let frame = self.intern_frame_in(f.avma, module, f.address)?;
            parent = self.intern_node(parent, frame)? + 1;
            *self.node_remap.get_mut(at as usize)? = parent;
        }
        parent.checked_sub(1)
    }

    /// `src`'s module `i` as a module of this session, plus one.
    fn adopt_module(&mut self, src: &Collector, i: u32) -> Option<u32> {
        match self.module_remap.get(i as usize).copied()? {
            0 => {
                let m = self.modules.adopt(&src.modules, i as usize)? as u32 + 1;
                *self.module_remap.get_mut(i as usize)? = m;
                Some(m)
            }
            m => Some(m),
        }
    }
}

/// The process's CPU time (less vignette's sampler threads) in `src`'s session from `since_ns`
/// (monotonic) on: all of it if the session started then or later, else the part its time
/// range kept (a window's oldest segment, prorated by time); up to now if it is still open.
/// 0 where it was not measured.
fn cpu_since(src: &Collector, since_ns: u64) -> u64 {
    if src.cpu_start_ns == 0 {
        return 0;
    }
    let (end_ns, cpu_end) = match src.cpu_end_ns {
        0 => (time::monotonic_ns(), super::work_cpu_ns()),
        end => (src.end_ns, end),
    };
    let cpu = cpu_end.saturating_sub(src.cpu_start_ns);
    let span = end_ns.saturating_sub(src.start_ns);
    let kept = end_ns.saturating_sub(since_ns.max(src.start_ns));
    match span {
        0 => cpu,
        _ if kept >= span => cpu,
        _ => (cpu as u128 * kept as u128 / span as u128) as u64,
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::super::{Capacities, ChunkRec, SampleRec, NONE};
    use super::*;

    /// A window's first sample of a thread weighs no more than the intervals since the
    /// window's start (plus one); later ones keep their weights.
    #[test]
    fn a_windows_first_sample_weighs_no_more_than_the_window_since_its_start() {
        let cap = Capacities {
            samples: 16,
            frames: 16,
            stack_nodes: 16,
            slots: 4,
            threads: 4,
            modules: 4,
            ring: 4,
            heap_mean: 0,
        };
        let (mut src, mut window) = (Collector::new(cap).unwrap(), Collector::new(cap).unwrap());
        src.begin(|_| {});
        let frame = src.intern_frame_in(0x1000, 0, 0x1000).unwrap();
        let stack = src.intern_node(0, frame).unwrap();
        let thread = src.thread_by_tid(&ThreadRec {
            tid: 7,
            name: [0; 16],
            first: NONE,
            last: NONE,
            count: 0,
        });
        let since = 1_000_000_000;
        // A sleeper's sample 2.5 intervals into the window, carrying 100 intervals of CPU
        // since its previous sample, and one 5 intervals later.
        for (at, weight) in [(since + 2_500_000, 100), (since + 7_500_000, 5)] {
            let rec = SampleRec {
                time_ns: at,
                stack,
                weight,
                next: NONE,
                end: 0,
                labels: 0,
            };
            src.append_sample(thread.unwrap(), rec);
        }
        window.begin_merged(since, since + 10_000_000, ChunkRec::FIRST);
        assert_eq!(window.absorb(&src, since, 1_000_000), 0);
        let weights: std::vec::Vec<u32> = (window.samples.iter())
            .take(window.samples_len)
            .map(|s| s.weight)
            .collect();
        assert_eq!(weights, [3, 5]);
    }

    /// A window's CPU time: all of a segment inside it, the kept part of one it clips.
    #[test]
    fn a_window_counts_the_cpu_time_of_what_it_covers() {
        let cap = Capacities {
            samples: 4,
            frames: 4,
            stack_nodes: 4,
            slots: 4,
            threads: 4,
            modules: 4,
            ring: 4,
            heap_mean: 0,
        };
        let mut segments = [Collector::new(cap).unwrap(), Collector::new(cap).unwrap()];
        let ms = 1_000_000;
        // 100 ms each, with 40 and 60 ms of CPU; the window keeps the last quarter of the first.
        for (seg, (start, cpu)) in segments
            .iter_mut()
            .zip([(1000 * ms, 40 * ms), (1100 * ms, 60 * ms)])
        {
            (seg.start_ns, seg.end_ns) = (start, start + 100 * ms);
            (seg.cpu_start_ns, seg.cpu_end_ns) = (5 * ms, 5 * ms + cpu);
        }
        let mut window = Collector::new(cap).unwrap();
        let since = 1075 * ms;
        window.begin_merged(since, 1200 * ms, ChunkRec::FIRST);
        for seg in &segments {
            window.absorb(seg, since, ms);
        }
        assert_eq!(window.cpu_end_ns - window.cpu_start_ns, 10 * ms + 60 * ms);
    }
}
