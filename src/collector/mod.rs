//! The session tables, filled by draining the ring outside the signal handler.
//!
//! Frames are interned by address, stacks into a prefix tree of (parent, frame) nodes, and
//! samples are appended to per-thread lists. Every table is preallocated with a fixed capacity;
//! when one is full the sample is dropped and counted, never reallocated.
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

mod carry;
mod heap;
pub(crate) use heap::HEAP_OBJECT_SCALE;
mod jit;
mod rates;
mod registry;

use core::sync::atomic::{AtomicI32, AtomicU64, Ordering::*};

use crate::error::Result;
use crate::labels::LabelSet;
use crate::modules::ModuleMap;
use crate::profile::{Lost, TriggerKind, MAX_TRIGGER_NOTE};
use crate::ring::{SampleRef, SampleRing, NEWER_MODULE_FRAME, NO_MODULE_FRAME};
use crate::sys::mem::{Region, Zeroed};
use crate::sys::{threads, time};
use crate::unwind::EndReason;
#[cfg_attr(any(windows, target_os = "macos"), allow(unused_imports))]
pub(crate) use registry::{Scan, SlotRec, SlotState};

const NONE: u32 = u32::MAX;

/// Distinct label sets per session.
const MAX_LABEL_SETS: usize = 4096;

/// Capacities of the session tables.
#[derive(Debug, Clone, Copy)]
pub struct Capacities {
    /// Samples kept per session.
    pub samples: usize,
    /// Distinct frame addresses.
    pub frames: usize,
    /// Stack prefix-tree nodes.
    pub stack_nodes: usize,
    /// Live threads tracked at once (signal slots).
    pub slots: usize,
    /// Threads listed in a profile (each with at least one sample).
    pub threads: usize,
    /// Modules listed per session.
    pub modules: usize,
    /// Ring slots (the drain batch size).
    pub ring: usize,
    /// The heap sampler's mean bytes between samples (0: the profiler samples no allocations,
    /// its profiles have no heap).
    pub heap_mean: u64,
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
    /// Its label set: index in `label_sets` plus one, 0 for none.
    pub labels: u32,
}
/// A thread of the profile: it had at least one sample in this session.
#[derive(Clone, Copy)]
pub(crate) struct ThreadRec {
    pub tid: i32,
    pub name: [u8; 16],
    pub first: u32,
    pub last: u32,
    pub count: u32,
}

// SAFETY: all fields are integers, bools or byte arrays; zero is valid for each.
unsafe impl Zeroed for FrameRec {}
// SAFETY: as above.
unsafe impl Zeroed for NodeRec {}
// SAFETY: as above.
unsafe impl Zeroed for SampleRec {}
// SAFETY: as above.
unsafe impl Zeroed for ThreadRec {}

/// A trigger that fired, as stored (`kind` 0: none). See [`crate::profile::Trigger`].
#[derive(Clone, Copy)]
pub(crate) struct TriggerRec {
    pub kind: u8,
    /// Monotonic nanoseconds.
    pub at_ns: u64,
    pub tid: i32,
    pub late_ns: u64,
    pub note: [u8; MAX_TRIGGER_NOTE],
    pub note_len: u8,
}

impl TriggerRec {
    /// No trigger.
    pub const NONE: TriggerRec = TriggerRec {
        kind: 0,
        at_ns: 0,
        tid: 0,
        late_ns: 0,
        note: [0; MAX_TRIGGER_NOTE],
        note_len: 0,
    };

    /// A trigger of `kind` firing now for thread `tid`, with `note` cut to fit at a character
    /// boundary.
    pub fn new(kind: TriggerKind, tid: i32, late_ns: u64, note: &str) -> TriggerRec {
        let mut len = note.len().min(MAX_TRIGGER_NOTE);
        while !note.is_char_boundary(len) {
            len -= 1;
        }
        let mut t = TriggerRec {
            kind: kind as u8,
            at_ns: time::monotonic_ns(),
            tid,
            late_ns,
            ..TriggerRec::NONE
        };
        t.note[..len].copy_from_slice(&note.as_bytes()[..len]);
        t.note_len = len as u8;
        t
    }

    /// The note as text.
    pub fn note(&self) -> &str {
        let bytes = self.note.get(..self.note_len as usize).unwrap_or(&[]);
        core::str::from_utf8(bytes).unwrap_or("")
    }
}

/// A session's place in a series of chunks or windows ([`crate::profile::Chunk`]).
#[derive(Clone, Copy)]
pub(crate) struct ChunkRec {
    pub sequence: u64,
    pub window_ns: u64,
    pub evicted: u64,
    pub trigger: TriggerRec,
}

impl ChunkRec {
    /// The first chunk of a series.
    pub const FIRST: ChunkRec = ChunkRec {
        sequence: 0,
        window_ns: 0,
        evicted: 0,
        trigger: TriggerRec::NONE,
    };
}

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

    /// Empties the index of entries `0..count`, whose keys `key` gives, in time proportional
    /// to the entries rather than the capacity (a rotation's pause; pages never touched stay
    /// untouched). Newest first: each entry's probe path (slots taken before it was inserted)
    /// is intact when it is removed.
    fn clear_entries(&mut self, count: usize, key: impl Fn(usize) -> u64) {
        if count.saturating_mul(8) > self.slots.len() {
            return self.clear();
        }
        for i in (0..count).rev() {
            if let (slot, Some(_)) = self.probe(key(i), |v| v as usize == i) {
                self.slots[slot] = 0;
            }
        }
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
    pub(crate) slots: Region<SlotRec>,
    /// Slots ever used: every live slot has a lower index.
    pub(crate) slots_len: usize,
    /// Live slots by tid.
    slot_index: Index,
    /// Slots marked dead since the last drain.
    dead_slots: usize,
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
    /// The CPU time the process had used outside vignette's sampler thread at the session's
    /// start and end ([`work_cpu_ns`]; 0: not measured, as in a flight recorder's window).
    pub cpu_start_ns: u64,
    pub cpu_end_ns: u64,
    /// The process that took the samples (read when the session began).
    pub pid: u32,
    /// Whether a session is open (started and not yet finished).
    pub open: bool,
    /// Its place in a series of chunks or windows.
    pub chunk: ChunkRec,
    /// The sampling interval over the session, when an overhead budget changed it.
    pub(crate) rates: rates::RateLog,
    /// Names of sampled JIT code, read from the runtime's perf map at `finish`.
    pub(crate) jit: jit::JitTable,
    /// Where `finish` sorts the addresses of frames outside every module.
    jit_addresses: Region<u64>,
    /// Distinct label sets of its samples.
    pub(crate) label_sets: Region<LabelSet>,
    pub(crate) label_sets_len: usize,
    label_index: Index,
    /// Threads by tid, for merging sessions (`absorb`).
    thread_index: Index,
    /// While merging a session in: its stack nodes' and modules' indices here, plus one (0:
    /// not yet seen).
    node_remap: Region<u32>,
    module_remap: Region<u32>,
    /// The heap's sites when the session ended (see `heap`), and the sampler's figures.
    pub(crate) heap: Region<heap::HeapSiteRec>,
    pub(crate) heap_len: usize,
    /// The heap's sites by stack node.
    heap_index: Index,
    pub(crate) heap_mean: u64,
    pub(crate) heap_stats: heap::HeapStats,
}

/// CPU time of vignette's sampler threads that have ended, in this process.
static ENDED_SAMPLERS_CPU_NS: AtomicU64 = AtomicU64::new(0);
/// The running sampler thread (see [`SamplerCpu`]), or 0.
static LIVE_SAMPLER: AtomicI32 = AtomicI32::new(0);

/// The CPU time the process has used outside vignette's sampler threads, or 0 where the
/// process's CPU clock is not read. Reads the clocks only when called (at a session's or
/// chunk's start and end), nothing per tick.
pub(crate) fn work_cpu_ns() -> u64 {
    let live = match LIVE_SAMPLER.load(Acquire) {
        0 => 0,
        tid => time::thread_cpu_ns(tid).unwrap_or(0),
    };
    let samplers = ENDED_SAMPLERS_CPU_NS.load(Acquire) + live;
    time::process_cpu_ns().map_or(0, |p| p.saturating_sub(samplers))
}

/// Marks the calling thread as vignette's sampler thread while it is held: its CPU time is
/// vignette's, not the application's ([`work_cpu_ns`]).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) struct SamplerCpu;

#[cfg(any(target_os = "linux", target_os = "android"))]
impl SamplerCpu {
    /// The calling thread is the sampler thread from now until the guard is dropped.
    pub fn start() -> SamplerCpu {
        LIVE_SAMPLER.store(threads::gettid(), Release);
        SamplerCpu
    }
}

/// In a child just forked: the parent's sampler threads are not this process's.
///
/// # Signal safety
/// Async-signal-safe (two atomic stores), as a fork handler must be.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn forget_sampler_cpu() {
    LIVE_SAMPLER.store(0, Release);
    ENDED_SAMPLERS_CPU_NS.store(0, Release);
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl Drop for SamplerCpu {
    fn drop(&mut self) {
        LIVE_SAMPLER.store(0, Release);
        let own = time::own_thread_cpu_ns().unwrap_or(0);
        ENDED_SAMPLERS_CPU_NS.fetch_add(own, Release);
    }
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
            slots: Region::new(cap.slots)?,
            slots_len: 0,
            slot_index: Index::new(cap.slots)?,
            dead_slots: 0,
            epoch: 0,
            modules: ModuleMap::new(cap.modules, cap.modules * 128)?,
            scratch: Region::new(cap.ring)?,
            lost: Lost::default(),
            stack_misses: 0,
            start_unix_ns: 0,
            start_ns: 0,
            end_ns: 0,
            cpu_start_ns: 0,
            cpu_end_ns: 0,
            pid: 0,
            open: false,
            chunk: ChunkRec::FIRST,
            rates: rates::RateLog::new(),
            jit: jit::JitTable::new()?,
            jit_addresses: Region::new(cap.frames)?,
            label_sets: Region::new(MAX_LABEL_SETS)?,
            label_sets_len: 0,
            label_index: Index::new(MAX_LABEL_SETS)?,
            thread_index: Index::new(cap.threads)?,
            node_remap: Region::new(cap.stack_nodes)?,
            module_remap: Region::new(cap.modules)?,
            heap: Region::new(match cap.heap_mean {
                0 => 0,
                _ => heap::MAX_HEAP_SITES,
            })?,
            heap_len: 0,
            heap_index: Index::new(match cap.heap_mean {
                0 => 0,
                _ => heap::MAX_HEAP_SITES,
            })?,
            heap_mean: cap.heap_mean,
            heap_stats: heap::HeapStats::default(),
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
            + self.slots.mapped_bytes()
            + self.slot_index.slots.mapped_bytes()
            + self.modules.mapped_bytes()
            + self.scratch.mapped_bytes()
            + self.thread_index.slots.mapped_bytes()
            + self.node_remap.mapped_bytes()
            + self.module_remap.mapped_bytes()
            + self.label_sets.mapped_bytes()
            + self.label_index.slots.mapped_bytes()
            + self.jit.mapped_bytes()
            + self.jit_addresses.mapped_bytes()
            + self.heap.mapped_bytes()
            + self.heap_index.slots.mapped_bytes()
    }

    /// Empties the sample, frame, stack and thread tables and the lost counts.
    fn clear_tables(&mut self) {
        let frames = &self.frames;
        self.frame_index.clear_entries(self.frames_len, |i| {
            frame_key(frames[i].avma, frames[i].module)
        });
        self.frames_len = 0;
        let nodes = &self.nodes;
        (self.node_index).clear_entries(self.nodes_len, |i| {
            node_key(nodes[i].parent, nodes[i].frame)
        });
        self.nodes_len = 0;
        let threads = &self.threads;
        (self.thread_index).clear_entries(self.threads_len, |i| threads[i].tid as u64);
        let sets = &self.label_sets;
        (self.label_index).clear_entries(self.label_sets_len, |i| labels_key(&sets[i]));
        self.label_sets_len = 0;
        self.samples_len = 0;
        self.threads_len = 0;
        self.lost = Lost::default();
        self.rates.clear();
        self.jit.clear();
    }

    /// Empties the tables and opens a session starting now; `list_modules` lists the modules
    /// loaded now (see `Shared::refresh_modules`).
    /// It is the first chunk of its series.
    pub fn begin(&mut self, list_modules: impl FnOnce(&mut ModuleMap)) {
        self.clear_tables();
        self.chunk = ChunkRec::FIRST;
        self.slots.fill(SlotRec {
            tid: 0,
            state: SlotState::Free,
            fresh: false,
            cpu_mark: 0,
            sent_weight: 0,
            seen_epoch: 0,
            thread: NONE,
            found_name: [0; 16],
            name_due_ns: 0,
            name_wait_ns: 0,
            blocks_signal: false,
            block_checked_ns: 0,
        });
        self.slots_len = 0;
        self.slot_index.clear();
        self.dead_slots = 0;
        self.modules.clear();
        list_modules(&mut self.modules);
        self.start_unix_ns = time::realtime_ns();
        self.start_ns = time::monotonic_ns();
        self.end_ns = self.start_ns;
        self.cpu_start_ns = work_cpu_ns();
        self.cpu_end_ns = 0;
        self.pid = threads::getpid() as u32;
        self.open = true;
    }

    /// Reads the names of the sampled code outside every module from the runtime's perf map,
    /// if it writes one (see `jit`).
    fn read_jit_names(&mut self) {
        let unknown = (self.frames.iter().take(self.frames_len)).filter(|f| f.module == 0);
        let mut n = 0;
        for (slot, f) in self.jit_addresses.iter_mut().zip(unknown) {
            *slot = f.address;
            n += 1;
        }
        let sorted = &mut self.jit_addresses[..n];
        sorted.sort_unstable();
        #[cfg(any(target_os = "linux", target_os = "android"))]
        self.jit.read(self.pid, sorted);
    }

    /// Closes the session: records its end and the final names of live threads.
    pub fn finish(&mut self) {
        self.end_ns = time::monotonic_ns();
        if self.cpu_start_ns != 0 {
            self.cpu_end_ns = work_cpu_ns();
        }
        self.read_jit_names();
        self.read_heap();
        for slot in self.slots.iter().take(self.slots_len) {
            if slot.state == SlotState::Live {
                if let Some(t) = self.threads.get_mut(slot.thread as usize) {
                    let mut name = [0u8; 16];
                    if threads::thread_name(slot.tid, &mut name) > 0 {
                        t.name = name;
                    }
                }
            }
        }
        self.open = false;
    }

    /// How many drained samples found no stack mapping since the last call (then resets).
    #[cfg(any(target_os = "linux", target_os = "android"))]
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
        drop(drainer);
        self.free_dead_slots();
        kept
    }

    fn record(&mut self, s: &SampleRef<'_>) -> bool {
        // The thread the signal was addressed to (it may have exited since: keep its sample).
        let Some(thread) = self.thread_of_slot(s.meta.thread as usize, s.meta.time_ns) else {
            self.lost.threads_over_capacity += s.meta.weight.max(1) as u64;
            return false;
        };
        if self.samples_len >= self.samples.len() {
            self.lost.tables_full += 1;
            return false;
        }
        let Some(stack) = self.intern_stack(s.frames, s.meta.code_epoch) else {
            self.lost.tables_full += 1;
            return false;
        };
        let labels = self.intern_labels(&s.meta.labels);
        self.append_sample(
            thread,
            SampleRec {
                time_ns: s.meta.time_ns,
                stack,
                weight: s.meta.weight.max(1),
                next: NONE,
                end: s.meta.end,
                labels,
            },
        );
        true
    }

    /// The stack node of `frames` (innermost first, as a walk recorded them at code map epoch
    /// `epoch`), interned with its frames; an empty walk is the stack of one frame at address 0
    /// (a sample always has one). `None` when the frame or stack table is full.
    pub(crate) fn intern_stack(&mut self, frames: &[u64], epoch: u32) -> Option<u32> {
        let frames = if frames.is_empty() {
            &[0u64][..]
        } else {
            frames
        };
        let mut parent = 0u32;
        for &avma in frames.iter().rev() {
            let frame = self.intern_frame(avma, epoch)?;
            parent = self.intern_node(parent, frame)? + 1;
        }
        Some(parent - 1)
    }

    /// The label set `set` as stored: its index plus one, 0 for none (or when the table of
    /// distinct sets is full: then counted in [`crate::labels::dropped`]).
    pub(crate) fn intern_labels(&mut self, set: &LabelSet) -> u32 {
        if set.len == 0 {
            return 0;
        }
        let sets = &self.label_sets;
        let (slot, found) = self
            .label_index
            .probe(labels_key(set), |i| sets[i as usize] == *set);
        if let Some(i) = found {
            return i + 1;
        }
        let i = self.label_sets_len;
        if i >= self.label_sets.len() {
            crate::labels::note_dropped();
            return 0;
        }
        self.label_sets[i] = *set;
        self.label_sets_len += 1;
        self.label_index.slots[slot] = i as u32 + 1;
        i as u32 + 1
    }

    /// Appends `rec` to the sample table (which has room) and to `thread`'s list.
    fn append_sample(&mut self, thread: usize, rec: SampleRec) {
        let index = self.samples_len as u32;
        self.samples[self.samples_len] = SampleRec { next: NONE, ..rec };
        self.samples_len += 1;
        let t = &mut self.threads[thread];
        match t.last {
            NONE => t.first = index,
            last => self.samples[last as usize].next = index,
        }
        t.last = index;
        t.count += 1;
    }

    /// The frame for `avma` (as the handler marked it, see [`NO_MODULE_FRAME`]) in the module
    /// mapped there at code map epoch `epoch`.
    fn intern_frame(&mut self, avma: u64, epoch: u32) -> Option<u32> {
        let unmarked = avma & !(NO_MODULE_FRAME | NEWER_MODULE_FRAME);
        let attributed = if avma & NO_MODULE_FRAME != 0 {
            None
        } else if avma & NEWER_MODULE_FRAME != 0 {
            self.modules.attribute_after(unmarked, epoch)
        } else {
            self.modules.attribute(unmarked, epoch)
        };
        let avma = unmarked;
        let (module, address) = match attributed {
            Some((m, rel)) => (m + 1, rel),
            None => (0, avma),
        };
        self.intern_frame_in(avma, module, address)
    }

    /// The frame for `avma` in module `module` (index plus one, 0 for none) at `address`.
    fn intern_frame_in(&mut self, avma: u64, module: u32, address: u64) -> Option<u32> {
        let frames = &self.frames;
        let (slot, found) = self.frame_index.probe(frame_key(avma, module), |i| {
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
        let nodes = &self.nodes;
        let (slot, found) = self.node_index.probe(node_key(parent, frame), |i| {
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

/// The frame index's key of a frame.
fn frame_key(avma: u64, module: u32) -> u64 {
    avma ^ (module as u64) << 48
}

/// The stack index's key of a node.
fn node_key(parent: u32, frame: u32) -> u64 {
    (parent as u64) << 32 | frame as u64
}

/// The label index's key of a set.
fn labels_key(s: &LabelSet) -> u64 {
    s.pairs().fold(s.len as u64, |h, (k, v)| {
        (h.rotate_left(17) ^ k as u64).wrapping_mul(0x100_0000_01B3) ^ v
    })
}
