//! The preallocated sample ring: many signal handlers write, one drainer reads.
//!
//! Each slot is `FREE`, `WRITING` (owned by one handler) or `READY` (published, waiting for the
//! drainer). A handler claims a free slot with one compare-and-swap, probing from a shared
//! cursor; when every slot is taken it gets `None`, and the caller drops and counts the sample.
//! There are no locks anywhere: a handler never waits for the drainer or for another handler.
//!
//! It uses `unsafe` for the slot contents: plain memory whose exclusive ownership is handed
//! over through the slot state (Acquire/Release).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use crate::error::Result;
use crate::sys::mem::{Region, Zeroed};
use crate::unwind::EndReason;

const FREE: u32 = 0;
const WRITING: u32 = 1;
const READY: u32 = 2;

/// Set on a frame address in a slot when the loader had no object at that address when the
/// sample was taken (code mapped where an unloaded library was, a JIT's code): the frame is
/// in no module, whatever the handler's table listed there. User-space addresses never have
/// bits 62 or 63 set.
pub const NO_MODULE_FRAME: u64 = 1 << 63;

/// Set on a frame address in a slot when the loader had another object at that address than
/// the handler's table lists (one loaded since the table was published): the frame belongs
/// to a module loaded after the sample's epoch.
pub const NEWER_MODULE_FRAME: u64 = 1 << 62;

/// What a handler records about one sample besides its frames.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SampleMeta {
    /// `CLOCK_MONOTONIC` nanoseconds when the handler ran.
    pub time_ns: u64,
    /// The sampled thread: its slot in the sampler's thread table, from the signal's token
    /// (signals go only to the thread of that slot, so the handler needs no `gettid` call).
    pub thread: u32,
    /// How many sampling intervals this sample stands for.
    pub weight: u32,
    /// Number of valid frames.
    pub len: u32,
    /// How the stack walk ended.
    pub end: u8,
    /// The session the sample belongs to (late samples of an old session are discarded).
    pub generation: u32,
    /// The epoch of the code map table the handler used: which modules were mapped.
    pub code_epoch: u32,
    /// The thread's labels when it was sampled.
    pub labels: crate::labels::LabelSet,
}

struct Slot {
    state: AtomicU32,
    meta: UnsafeCell<SampleMeta>,
}
// SAFETY: zero state is FREE and zero SampleMeta is a valid plain value.
unsafe impl Zeroed for Slot {}
// SAFETY: `meta` is only accessed by the slot's current owner, as the state protocol decides.
unsafe impl Sync for Slot {}

#[repr(transparent)]
struct FrameCell(UnsafeCell<u64>);
// SAFETY: a zero u64 is valid.
unsafe impl Zeroed for FrameCell {}
// SAFETY: accessed only by the owner of the slot it belongs to.
unsafe impl Sync for FrameCell {}

/// A fixed number of sample slots of `max_frames` frames each.
pub struct SampleRing {
    slots: Region<Slot>,
    frames: Region<FrameCell>,
    max_frames: usize,
    cursor: AtomicUsize,
    draining: AtomicBool,
}

impl SampleRing {
    /// Maps `capacity` slots of `max_frames` frames each.
    pub fn new(capacity: usize, max_frames: usize) -> Result<Self> {
        Ok(SampleRing {
            slots: Region::not_inherited(capacity)?,
            frames: Region::not_inherited(
                capacity
                    .checked_mul(max_frames)
                    .ok_or(crate::Error::OutOfMemory)?,
            )?,
            max_frames,
            cursor: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
        })
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Bytes mapped for the ring.
    pub fn mapped_bytes(&self) -> usize {
        self.slots.mapped_bytes() + self.frames.mapped_bytes()
    }

    /// Claims a free slot for writing, or `None` if the ring is full.
    ///
    /// # Signal safety
    /// Async-signal-safe and lock-free: at most `capacity` compare-and-swaps.
    pub fn claim(&self) -> Option<SlotWriter<'_>> {
        let cap = self.slots.len();
        if cap == 0 {
            return None;
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        for i in 0..cap {
            let index = start.wrapping_add(i) % cap;
            let slot = self.slots.get(index)?;
            if slot
                .state
                .compare_exchange(FREE, WRITING, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Some(SlotWriter { ring: self, index });
            }
        }
        None
    }

    /// The single reader, or `None` if another drainer is active.
    pub fn drainer(&self) -> Option<Drainer<'_>> {
        self.draining
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| Drainer { ring: self })
    }

    fn frame_cells(&self, index: usize) -> &[FrameCell] {
        let start = index * self.max_frames;
        self.frames
            .get(start..start + self.max_frames)
            .unwrap_or(&[])
    }
}

/// Exclusive write access to one claimed slot. Dropping it without [`SlotWriter::publish`]
/// returns the slot unused.
pub struct SlotWriter<'a> {
    ring: &'a SampleRing,
    index: usize,
}

impl SlotWriter<'_> {
    /// The slot's frame buffer (`max_frames` long).
    ///
    /// # Signal safety
    /// Async-signal-safe.
    pub fn frames(&mut self) -> &mut [u64] {
        let cells = self.ring.frame_cells(self.index);
        // SAFETY: this writer owns the slot (state WRITING, set by our CAS) until publish or
        // drop, so nobody else touches these cells; FrameCell is a transparent-enough wrapper
        // over UnsafeCell<u64>, which has u64's layout, and `&mut self` prevents aliasing
        // through this writer.
        unsafe { core::slice::from_raw_parts_mut(cells.as_ptr() as *mut u64, cells.len()) }
    }

    /// Stores `meta` and hands the slot to the drainer.
    ///
    /// # Signal safety
    /// Async-signal-safe.
    pub fn publish(self, meta: SampleMeta) {
        if let Some(slot) = self.ring.slots.get(self.index) {
            // SAFETY: we own the slot (WRITING); the Release store below publishes the write.
            unsafe { *slot.meta.get() = meta };
            slot.state.store(READY, Ordering::Release);
        }
        core::mem::forget(self);
    }
}

impl Drop for SlotWriter<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.ring.slots.get(self.index) {
            slot.state.store(FREE, Ordering::Release);
        }
    }
}

/// The one reader of the ring (see [`SampleRing::drainer`]).
pub struct Drainer<'a> {
    ring: &'a SampleRing,
}

/// A published sample, borrowed from its slot until released.
#[derive(Debug, Clone, Copy)]
pub struct SampleRef<'a> {
    /// Its metadata.
    pub meta: SampleMeta,
    /// Its frames (see `crate::unwind` for the address convention).
    pub frames: &'a [u64],
}

impl SampleRef<'_> {
    /// How the walk ended (unknown bytes read as `BadUnwindInfo`).
    pub fn end(&self) -> EndReason {
        EndReason::from_u8(self.meta.end).unwrap_or(EndReason::BadUnwindInfo)
    }
}

impl Drainer<'_> {
    /// Writes the indices of published slots into `out`, oldest sample first; returns how many.
    pub fn ready(&self, out: &mut [u32]) -> usize {
        let mut n = 0;
        let ready = self
            .ring
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.state.load(Ordering::Acquire) == READY);
        for (dst, (i, _)) in out.iter_mut().zip(ready) {
            *dst = i as u32;
            n += 1;
        }
        // Insertion sort by time: the batch is small and nearly sorted.
        let key = |i: u32| self.get(i as usize).map_or(0, |s| s.meta.time_ns);
        let batch = out.get_mut(..n).unwrap_or_default();
        for i in 1..batch.len() {
            let mut j = i;
            while j > 0
                && key(batch.get(j - 1).copied().unwrap_or(0))
                    > key(batch.get(j).copied().unwrap_or(0))
            {
                batch.swap(j - 1, j);
                j -= 1;
            }
        }
        n
    }

    /// The published sample in slot `index`, if that slot is ready.
    pub fn get(&self, index: usize) -> Option<SampleRef<'_>> {
        let slot = self.ring.slots.get(index)?;
        if slot.state.load(Ordering::Acquire) != READY {
            return None;
        }
        // SAFETY: READY (observed with Acquire) means the writer is done and only the drainer,
        // of which this is the only one, may read the slot until `release`.
        let meta = unsafe { *slot.meta.get() };
        let cells = self.ring.frame_cells(index);
        let len = (meta.len as usize).min(cells.len());
        // SAFETY: as above; the cells are not written until the slot is released.
        let frames = unsafe { core::slice::from_raw_parts(cells.as_ptr() as *const u64, len) };
        Some(SampleRef { meta, frames })
    }

    /// Returns slot `index` to the free pool.
    pub fn release(&self, index: usize) {
        if let Some(slot) = self.ring.slots.get(index) {
            if slot.state.load(Ordering::Acquire) == READY {
                slot.state.store(FREE, Ordering::Release);
            }
        }
    }
}

impl Drop for Drainer<'_> {
    fn drop(&mut self) {
        self.ring.draining.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(time_ns: u64, len: u32) -> SampleMeta {
        SampleMeta {
            time_ns,
            len,
            ..SampleMeta::default()
        }
    }

    #[test]
    fn full_ring_refuses_and_frees_on_release() {
        let ring = SampleRing::new(4, 3).unwrap();
        let mut writers: std::vec::Vec<_> = (0..4).map(|_| ring.claim().unwrap()).collect();
        assert!(ring.claim().is_none(), "all four slots are taken");
        writers.pop(); // abandoned: the slot is free again
        assert!(ring.claim().is_some());
        for (i, mut w) in writers.into_iter().enumerate() {
            w.frames().copy_from_slice(&[i as u64, 10 + i as u64, 20]);
            w.publish(meta(100 - i as u64, 2));
        }
        let d = ring.drainer().unwrap();
        assert!(ring.drainer().is_none(), "one drainer at a time");
        let mut idx = [0u32; 8];
        let n = d.ready(&mut idx);
        assert_eq!(n, 3);
        let times: std::vec::Vec<u64> = idx[..n]
            .iter()
            .map(|&i| d.get(i as usize).unwrap().meta.time_ns)
            .collect();
        assert_eq!(times, [98, 99, 100], "oldest first");
        let s = d.get(idx[0] as usize).unwrap();
        assert_eq!(s.frames, &[2, 12]);
        for &i in &idx[..n] {
            d.release(i as usize);
        }
        assert_eq!(d.ready(&mut idx), 0);
        drop(d);
        assert!(ring.drainer().is_some());
    }

    #[test]
    fn concurrent_writers_lose_nothing_but_what_is_counted() {
        let ring = SampleRing::new(64, 4).unwrap();
        let dropped = AtomicUsize::new(0);
        let per_thread = if cfg!(miri) { 40 } else { 5000u64 };
        let mut seen = std::vec![0u32; 4];
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let ring = &ring;
                let dropped = &dropped;
                s.spawn(move || {
                    for i in 0..per_thread {
                        match ring.claim() {
                            Some(mut w) => {
                                w.frames()[0] = t;
                                w.publish(meta(i, 1));
                            }
                            None => {
                                dropped.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                });
            }
            let mut idx = [0u32; 64];
            let mut total = 0u64;
            while total + dropped.load(Ordering::Relaxed) as u64 != 4 * per_thread {
                let d = ring.drainer().unwrap();
                let n = d.ready(&mut idx);
                for &i in &idx[..n] {
                    let s = d.get(i as usize).unwrap();
                    seen[s.frames[0] as usize] += 1;
                    d.release(i as usize);
                }
                total += n as u64;
            }
        });
        let kept: u32 = seen.iter().sum();
        assert_eq!(
            kept as usize + dropped.load(Ordering::Relaxed),
            4 * per_thread as usize
        );
    }
}
