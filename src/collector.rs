//! The session tables, filled by draining the ring outside the signal handler.
//!
//! Frames are interned by address, stacks into a prefix tree of (parent, frame) nodes, and
//! samples are appended to per-thread lists. Every table is preallocated with a fixed capacity;
//! when one is full the sample is dropped and counted, never reallocated.

use crate::error::Result;
use crate::modules::ModuleMap;
use crate::profile::Lost;
use crate::ring::{SampleRef, SampleRing};
use crate::sys::linux::mem::{Region, Zeroed};
use crate::sys::linux::{threads, time};
use crate::unwind::EndReason;

const NONE: u32 = u32::MAX;

/// Capacities of the session tables.
#[derive(Debug, Clone, Copy)]
pub struct Capacities {
    /// Samples kept per session.
    pub samples: usize,
    /// Distinct frame addresses.
    pub frames: usize,
    /// Stack prefix-tree nodes.
    pub stack_nodes: usize,
    /// Threads tracked per session.
    pub threads: usize,
    /// Modules listed per session.
    pub modules: usize,
    /// Ring slots (the drain batch size).
    pub ring: usize,
}

#[derive(Clone, Copy)]
pub(crate) struct FrameRec {
    pub avma: u64,
    pub address: u64,
    pub module: u32,
}
#[derive(Clone, Copy)]
pub(crate) struct NodeRec {
    pub parent: u32,
    pub frame: u32,
}
#[derive(Clone, Copy)]
pub(crate) struct SampleRec {
    pub time_ns: u64,
    pub stack: u32,
    pub weight: u32,
    pub next: u32,
    pub end: u8,
}
/// A thread seen in this session.
#[derive(Clone, Copy)]
pub(crate) struct ThreadRec {
    pub tid: i32,
    pub name: [u8; 16],
    pub alive: bool,
    pub first: u32,
    pub last: u32,
    pub count: u32,
    /// CPU nanoseconds already accounted for by sent signals (clock `Cpu`).
    pub cpu_mark: u64,
    pub seen_epoch: u32,
}
// SAFETY: all fields are integers, bools or byte arrays; zero is valid for each.
unsafe impl Zeroed for FrameRec {}
// SAFETY: as above.
unsafe impl Zeroed for NodeRec {}
// SAFETY: as above.
unsafe impl Zeroed for SampleRec {}
// SAFETY: as above (false is the zero bool).
unsafe impl Zeroed for ThreadRec {}

/// Open-addressing hash index: slot holds `index + 1`, 0 when empty.
struct Index {
    slots: Region<u32>,
}

impl Index {
    fn new(entries: usize) -> Result<Self> {
        Ok(Index {
            slots: Region::new((entries.max(1) * 2).next_power_of_two())?,
        })
    }

    fn clear(&mut self) {
        self.slots.fill(0);
    }

    /// Finds the entry whose key satisfies `is`, or the empty slot where it would go.
    fn probe(&self, hash: u64, is: impl Fn(u32) -> bool) -> (usize, Option<u32>) {
        let mask = self.slots.len() - 1;
        let mut i = (hash.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & mask;
        loop {
            match self.slots[i] {
                0 => return (i, None),
                v if is(v - 1) => return (i, Some(v - 1)),
                _ => i = (i + 1) & mask,
            }
        }
    }
}

/// Everything a session has collected.
pub struct Collector {
    pub(crate) frames: Region<FrameRec>,
    pub(crate) frames_len: usize,
    frame_index: Index,
    pub(crate) nodes: Region<NodeRec>,
    pub(crate) nodes_len: usize,
    node_index: Index,
    pub(crate) samples: Region<SampleRec>,
    pub(crate) samples_len: usize,
    pub(crate) threads: Region<ThreadRec>,
    pub(crate) threads_len: usize,
    thread_index: Index,
    epoch: u32,
    /// Modules seen in this session.
    pub modules: ModuleMap,
    scratch: Region<u32>,
    /// Lost samples counted on the drain side.
    pub lost: Lost,
    /// Samples whose stack was in no known mapping, since the last `take_stack_misses`.
    stack_misses: usize,
    /// Session start, Unix nanoseconds.
    pub start_unix_ns: u64,
    /// Session start, monotonic nanoseconds.
    pub start_ns: u64,
    /// Session end (monotonic), set by `finish`.
    pub end_ns: u64,
    /// Whether a session is open (started and not yet finished).
    pub open: bool,
}

impl Collector {
    /// Preallocates every table.
    pub fn new(cap: Capacities) -> Result<Self> {
        Ok(Collector {
            frames: Region::new(cap.frames)?,
            frames_len: 0,
            frame_index: Index::new(cap.frames)?,
            nodes: Region::new(cap.stack_nodes)?,
            nodes_len: 0,
            node_index: Index::new(cap.stack_nodes)?,
            samples: Region::new(cap.samples)?,
            samples_len: 0,
            threads: Region::new(cap.threads)?,
            threads_len: 0,
            thread_index: Index::new(cap.threads)?,
            epoch: 0,
            modules: ModuleMap::new(cap.modules, cap.modules * 128)?,
            scratch: Region::new(cap.ring)?,
            lost: Lost::default(),
            stack_misses: 0,
            start_unix_ns: 0,
            start_ns: 0,
            end_ns: 0,
            open: false,
        })
    }

    /// Bytes mapped for the tables.
    pub fn mapped_bytes(&self) -> usize {
        self.frames.mapped_bytes()
            + self.frame_index.slots.mapped_bytes()
            + self.nodes.mapped_bytes()
            + self.node_index.slots.mapped_bytes()
            + self.samples.mapped_bytes()
            + self.threads.mapped_bytes()
            + self.thread_index.slots.mapped_bytes()
            + self.modules.mapped_bytes()
            + self.scratch.mapped_bytes()
    }

    /// Empties the tables and opens a session starting now; `list_modules` lists the modules
    /// loaded now (see `Shared::refresh_modules`).
    pub fn begin(&mut self, list_modules: impl FnOnce(&mut ModuleMap)) {
        self.frames_len = 0;
        self.frame_index.clear();
        self.nodes_len = 0;
        self.node_index.clear();
        self.samples_len = 0;
        self.threads_len = 0;
        self.thread_index.clear();
        self.modules.clear();
        list_modules(&mut self.modules);
        self.lost = Lost::default();
        self.start_unix_ns = time::realtime_ns();
        self.start_ns = time::monotonic_ns();
        self.end_ns = self.start_ns;
        self.open = true;
    }

    /// Closes the session: records its end and the final names of live threads.
    pub fn finish(&mut self) {
        self.end_ns = time::monotonic_ns();
        for t in self.threads.iter_mut().take(self.threads_len) {
            if t.alive {
                let mut name = [0u8; 16];
                if threads::thread_name(t.tid, &mut name) > 0 {
                    t.name = name;
                }
            }
        }
        self.open = false;
    }

    pub(crate) fn thread_mut(&mut self, i: usize) -> Option<&mut ThreadRec> {
        self.threads.get_mut(..self.threads_len)?.get_mut(i)
    }

    /// The live record for `tid`, if tracked.
    pub(crate) fn find_thread(&self, tid: i32) -> Option<usize> {
        let threads = &self.threads;
        let (_, found) = self
            .thread_index
            .probe(tid as u64, |i| threads[i as usize].tid == tid);
        found.map(|i| i as usize).filter(|&i| self.threads[i].alive)
    }

    /// Tracks `tid` (if not already), returning its index; `None` when the table is full.
    /// `cpu_mark` is where CPU accounting starts for a new thread.
    pub(crate) fn track_thread(&mut self, tid: i32, cpu_mark: u64) -> Option<usize> {
        let threads = &self.threads;
        let (slot, found) = self
            .thread_index
            .probe(tid as u64, |i| threads[i as usize].tid == tid);
        if let Some(i) = found {
            let i = i as usize;
            if self.threads[i].alive {
                self.threads[i].seen_epoch = self.epoch;
                return Some(i);
            }
        }
        let i = self.threads_len;
        if i >= self.threads.len() {
            self.lost.threads_over_capacity += 1;
            return None;
        }
        let mut name = [0u8; 16];
        threads::thread_name(tid, &mut name);
        self.threads[i] = ThreadRec {
            tid,
            name,
            alive: true,
            first: NONE,
            last: NONE,
            count: 0,
            cpu_mark,
            seen_epoch: self.epoch,
        };
        self.threads_len += 1;
        // A reused tid replaces the dead thread's index entry.
        self.thread_index.slots[slot] = i as u32 + 1;
        Some(i)
    }

    /// Re-lists the process's threads (except `skip`): new ones are tracked, vanished ones are
    /// marked dead. Returns whether the set changed.
    pub(crate) fn scan_threads(&mut self, skip: i32, new_cpu_mark: impl Fn(i32) -> u64) -> bool {
        self.epoch = self.epoch.wrapping_add(1);
        let before = self.threads_len;
        let mut tids = [0i32; 1024];
        let mut n = 0;
        let mut complete = threads::for_each_thread(|tid| {
            if let Some(slot) = tids.get_mut(n) {
                *slot = tid;
                n += 1;
            }
        });
        complete &= n < tids.len();
        for &tid in &tids[..n] {
            if tid != skip {
                let mark = new_cpu_mark(tid);
                self.track_thread(tid, mark);
            }
        }
        let mut died = false;
        if complete {
            let epoch = self.epoch;
            for t in self.threads.iter_mut().take(before) {
                if t.alive && t.seen_epoch != epoch {
                    t.alive = false;
                    died = true;
                }
            }
        }
        died || self.threads_len != before
    }

    /// Starts CPU accounting of every live thread from its CPU time now.
    pub(crate) fn reset_cpu_marks(&mut self) {
        for t in self.threads.iter_mut().take(self.threads_len) {
            if t.alive {
                t.cpu_mark = time::thread_cpu_ns(t.tid).unwrap_or(0);
            }
        }
    }

    /// Marks thread `i` as exited.
    pub(crate) fn mark_dead(&mut self, i: usize) {
        if let Some(t) = self.thread_mut(i) {
            t.alive = false;
        }
    }

    /// How many drained samples found no stack mapping since the last call (then resets).
    pub fn take_stack_misses(&mut self) -> usize {
        core::mem::take(&mut self.stack_misses)
    }

    /// Moves every published sample of `generation` out of the ring into the tables.
    /// Returns how many samples were kept.
    ///
    /// `update_modules` brings the module list up to date after the ready samples are found
    /// and before their frames are attributed: a library loaded before a sample is then
    /// listed (see [`ModuleMap::attribute`]).
    pub fn drain(
        &mut self,
        ring: &SampleRing,
        update_modules: impl FnOnce(&mut ModuleMap),
        generation: u32,
    ) -> usize {
        let Some(drainer) = ring.drainer() else {
            return 0;
        };
        let n = drainer.ready(&mut self.scratch);
        if n > 0 {
            update_modules(&mut self.modules);
        }
        let mut kept = 0;
        for j in 0..n {
            let i = self.scratch[j] as usize;
            if let Some(s) = drainer.get(i) {
                if s.meta.generation == generation {
                    // The thread ran on a stack the snapshot does not know yet (a new thread's
                    // alternate signal stack, say): the sampler re-reads the mappings.
                    self.stack_misses += (s.meta.end == EndReason::NoStackBounds as u8) as usize;
                    if self.record(&s) {
                        kept += 1;
                    }
                }
            }
            drainer.release(i);
        }
        kept
    }

    fn record(&mut self, s: &SampleRef<'_>) -> bool {
        // The thread the signal was addressed to (it may have exited since: keep its sample).
        let thread = s.meta.thread as usize;
        if thread >= self.threads_len {
            return false;
        }
        if self.samples_len >= self.samples.len() {
            self.lost.tables_full += 1;
            return false;
        }
        // A sample always has at least its interrupted address.
        let frames = if s.frames.is_empty() {
            &[0u64][..]
        } else {
            s.frames
        };
        let mut parent = 0u32;
        for &avma in frames.iter().rev() {
            let Some(frame) = self.intern_frame(avma, s.meta.code_epoch) else {
                self.lost.tables_full += 1;
                return false;
            };
            let Some(node) = self.intern_node(parent, frame) else {
                self.lost.tables_full += 1;
                return false;
            };
            parent = node + 1;
        }
        let index = self.samples_len as u32;
        self.samples[self.samples_len] = SampleRec {
            time_ns: s.meta.time_ns,
            stack: parent.wrapping_sub(1),
            weight: s.meta.weight.max(1),
            next: NONE,
            end: s.meta.end,
        };
        self.samples_len += 1;
        let t = &mut self.threads[thread];
        if t.count == 0 {
            // Threads often name themselves just after they start, after we first saw them.
            let mut name = [0u8; 16];
            if threads::thread_name(t.tid, &mut name) > 0 {
                t.name = name;
            }
        }
        match t.last {
            NONE => t.first = index,
            last => self.samples[last as usize].next = index,
        }
        t.last = index;
        t.count += 1;
        true
    }

    /// The frame for `avma` in the module mapped there at code map epoch `epoch`.
    fn intern_frame(&mut self, avma: u64, epoch: u32) -> Option<u32> {
        let (module, address) = match self.modules.attribute(avma, epoch) {
            Some((m, rel)) => (m + 1, rel),
            None => (0, avma),
        };
        let frames = &self.frames;
        let (slot, found) = self.frame_index.probe(avma ^ (module as u64) << 48, |i| {
            let f = &frames[i as usize];
            f.avma == avma && f.module == module
        });
        if found.is_some() {
            return found;
        }
        let i = self.frames_len;
        if i >= self.frames.len() {
            return None;
        }
        self.frames[i] = FrameRec {
            avma,
            address,
            module,
        };
        self.frames_len += 1;
        self.frame_index.slots[slot] = i as u32 + 1;
        Some(i as u32)
    }

    fn intern_node(&mut self, parent: u32, frame: u32) -> Option<u32> {
        let key = (parent as u64) << 32 | frame as u64;
        let nodes = &self.nodes;
        let (slot, found) = self.node_index.probe(key, |i| {
            nodes[i as usize].parent == parent && nodes[i as usize].frame == frame
        });
        if found.is_some() {
            return found;
        }
        let i = self.nodes_len;
        if i >= self.nodes.len() {
            return None;
        }
        self.nodes[i] = NodeRec { parent, frame };
        self.nodes_len += 1;
        self.node_index.slots[slot] = i as u32 + 1;
        Some(i as u32)
    }
}
