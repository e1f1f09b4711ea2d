//! The heap sampler's tables: the distinct stacks of sampled allocations (sites) with what
//! they allocated and still hold, and the sampled allocations still live, found by address on
//! every free. Lock-free for any number of threads allocating and freeing at once, mapped once
//! per process and never unmapped (a free racing with a profiler's end cannot touch freed
//! memory), and inherited by a forked child, whose heap is its parent's.

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering::*};

use crate::error::Result;
use crate::sys::mem::{Region, Zeroed};

/// Frames kept per site (deeper stacks keep their innermost frames).
pub const SITE_FRAMES: usize = 64;
/// Distinct sites (a power of two). Site 0 holds the samples kept without a stack.
pub const MAX_SITES: usize = 4096;
/// Sampled allocations tracked live at once: buckets of [`WAYS`] addresses, one cache line
/// each (a free that was not sampled reads one line).
const BUCKETS: usize = 8192;
const WAYS: usize = 8;
/// Counters in the filter frees look at first (64 KiB: it stays in the caches).
const FILTER: usize = 1 << 16;
/// Sites looked at for a stack before the table counts as full.
const PROBES: usize = 64;
/// Estimated object counts are kept in 1/1024ths.
pub const OBJECT_SCALE: u64 = crate::collector::HEAP_OBJECT_SCALE;

const FREE: u32 = 0;
const WRITING: u32 = 1;
const READY: u32 = 2;
/// A live bucket entry being written or removed (no allocation lives at address 1).
const CLAIMED: usize = 1;

/// One distinct stack of sampled allocations.
#[repr(C)]
pub struct Site {
    state: AtomicU32,
    len: AtomicU32,
    /// The code map epoch its walk used.
    epoch: AtomicU32,
    hash: AtomicU64,
    /// Estimated bytes and objects (scaled by [`OBJECT_SCALE`]) allocated here, ever.
    alloc_bytes: AtomicU64,
    alloc_objects: AtomicU64,
    /// Estimated bytes and objects still live (wrapping sums of additions and removals).
    inuse_bytes: AtomicU64,
    inuse_objects: AtomicU64,
    frames: [AtomicU64; SITE_FRAMES],
}

// SAFETY: atomics only; zero is FREE and empty.
unsafe impl Zeroed for Site {}

/// What a live sampled allocation counts for, and where.
#[repr(C)]
struct LiveRec {
    site: AtomicU32,
    bytes: AtomicU64,
    objects: AtomicU64,
}

// SAFETY: atomics only.
unsafe impl Zeroed for LiveRec {}

/// A site's counts as read by [`HeapTables::for_each_site`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SiteCounts {
    /// Estimated bytes allocated.
    pub alloc_bytes: u64,
    /// Estimated objects allocated, scaled by [`OBJECT_SCALE`].
    pub alloc_objects: u64,
    /// Estimated bytes live.
    pub inuse_bytes: u64,
    /// Estimated objects live, scaled by [`OBJECT_SCALE`].
    pub inuse_objects: u64,
}

/// Samples the tables could not keep whole, by cause.
#[derive(Debug, Default)]
pub struct Misses {
    /// Sampled allocations whose stack found the site table full (kept under site 0).
    pub sites_full: AtomicU64,
    /// Sampled allocations whose address found its bucket full: their bytes count as
    /// allocated, never as live.
    pub untracked: AtomicU64,
    /// Sampled allocations whose stack could not be walked (kept under site 0).
    pub unwalked: AtomicU64,
    /// Allocations made inside the sampler's own work (a program's signal handler allocating
    /// while the thread was inside it): never sampled.
    pub reentrant: AtomicU64,
}

/// The sites and the live allocations.
pub struct HeapTables {
    sites: Region<Site>,
    /// Per hash of an address, how many tracked allocations have it (saturating: 255 stays):
    /// a free whose counter is 0 was not sampled, known from one byte in the caches instead of
    /// a bucket's line in memory.
    filter: Region<AtomicU8>,
    keys: Region<AtomicUsize>,
    live: Region<LiveRec>,
    /// Estimated bytes live over every site (a wrapping sum, as the sites' own).
    inuse_total: AtomicU64,
    /// Allocations sampled, ever.
    pub samples: AtomicU64,
    /// What could not be kept whole.
    pub misses: Misses,
}

impl HeapTables {
    /// Maps the tables (touched only where used).
    pub fn new() -> Result<Self> {
        Ok(HeapTables {
            sites: Region::new(MAX_SITES)?,
            filter: Region::new(FILTER)?,
            keys: Region::new(BUCKETS * WAYS)?,
            live: Region::new(BUCKETS * WAYS)?,
            inuse_total: AtomicU64::new(0),
            samples: AtomicU64::new(0),
            misses: Misses::default(),
        })
    }

    /// Bytes mapped.
    pub fn mapped_bytes(&self) -> usize {
        self.sites.mapped_bytes()
            + self.filter.mapped_bytes()
            + self.keys.mapped_bytes()
            + self.live.mapped_bytes()
    }

    /// Counts a sampled allocation of `bytes` and `objects` (estimates) at `ptr`, whose stack
    /// is `frames` walked at code map `epoch` (`None`: not walked).
    ///
    /// # Signal safety
    /// Async-signal-safe and lock-free: bounded probes and atomics.
    pub fn record(&self, ptr: usize, frames: Option<(&[u64], u32)>, bytes: u64, objects: u64) {
        self.samples.fetch_add(1, Relaxed);
        let site = match frames {
            Some((frames, epoch)) => self.site_of(frames, epoch),
            None => {
                self.misses.unwalked.fetch_add(1, Relaxed);
                0
            }
        };
        let Some(s) = self.sites.get(site) else {
            return;
        };
        s.alloc_bytes.fetch_add(bytes, Relaxed);
        s.alloc_objects.fetch_add(objects, Relaxed);
        if self.track(ptr, site as u32, bytes, objects) {
            self.inuse_total.fetch_add(bytes, Relaxed);
            s.inuse_bytes.fetch_add(bytes, Relaxed);
            s.inuse_objects.fetch_add(objects, Relaxed);
        } else {
            self.misses.untracked.fetch_add(1, Relaxed);
        }
    }

    /// Forgets the allocation at `ptr` if it was sampled and tracked: its site no longer
    /// holds it. A few nanoseconds when it was not: one byte of the filter, in the caches
    /// (and, for the few its counter wrongly admits, one bucket's line).
    ///
    /// # Signal safety
    /// Async-signal-safe and lock-free.
    #[inline]
    pub fn forget(&self, ptr: usize) {
        let counter = self.filter.get(filter_index(ptr));
        if counter.is_none_or(|c| c.load(Relaxed) == 0) {
            return;
        }
        let base = bucket(ptr) * WAYS;
        for i in base..base + WAYS {
            let Some(key) = self.keys.get(i) else { return };
            if key.load(Relaxed) != ptr
                || key
                    .compare_exchange(ptr, CLAIMED, Acquire, Relaxed)
                    .is_err()
            {
                continue;
            }
            if let Some(rec) = self.live.get(i) {
                let site = rec.site.load(Relaxed) as usize;
                self.inuse_total.fetch_sub(rec.bytes.load(Relaxed), Relaxed);
                if let Some(s) = self.sites.get(site) {
                    s.inuse_bytes.fetch_sub(rec.bytes.load(Relaxed), Relaxed);
                    s.inuse_objects
                        .fetch_sub(rec.objects.load(Relaxed), Relaxed);
                }
            }
            key.store(0, Release);
            if let Some(c) = counter {
                // A saturated counter stays: it no longer knows how many it counts.
                let _ = c.fetch_update(Relaxed, Relaxed, |n| (n < u8::MAX).then(|| n - 1));
            }
            return;
        }
    }

    /// Estimated bytes live now, over every site.
    pub fn inuse_bytes(&self) -> u64 {
        clamp(self.inuse_total.load(Relaxed))
    }

    /// Runs `f` over every site with samples: its frames (as the walk recorded them), the
    /// code map epoch of its walk, and its counts.
    pub fn for_each_site(&self, mut f: impl FnMut(&[u64], u32, SiteCounts)) {
        let mut frames = [0u64; SITE_FRAMES];
        for s in self.sites.iter() {
            if s.state.load(Acquire) != READY && s.alloc_objects.load(Relaxed) == 0 {
                continue;
            }
            let len = (s.len.load(Relaxed) as usize).min(SITE_FRAMES);
            for (to, from) in frames.iter_mut().zip(&s.frames).take(len) {
                *to = from.load(Relaxed);
            }
            let counts = SiteCounts {
                alloc_bytes: s.alloc_bytes.load(Relaxed),
                alloc_objects: s.alloc_objects.load(Relaxed),
                // A free can be counted before its allocation's addition is seen: never below 0.
                inuse_bytes: clamp(s.inuse_bytes.load(Relaxed)),
                inuse_objects: clamp(s.inuse_objects.load(Relaxed)),
            };
            if counts.alloc_objects > 0 {
                f(
                    frames.get(..len).unwrap_or_default(),
                    s.epoch.load(Relaxed),
                    counts,
                );
            }
        }
    }

    /// The site holding `frames`, found or added; 0 (no stack) when the table is full.
    ///
    /// # Signal safety
    /// Async-signal-safe: at most [`PROBES`] sites looked at.
    fn site_of(&self, frames: &[u64], epoch: u32) -> usize {
        let frames = frames
            .get(..frames.len().min(SITE_FRAMES))
            .unwrap_or_default();
        let hash = frames.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &f| {
            (h ^ f).wrapping_mul(0x0000_0100_0000_01B3)
        });
        let mask = MAX_SITES - 1;
        let same = |s: &Site| {
            s.hash.load(Relaxed) == hash
                && s.len.load(Relaxed) as usize == frames.len()
                && s.frames
                    .iter()
                    .zip(frames)
                    .all(|(a, &b)| a.load(Relaxed) == b)
        };
        for probe in 0..PROBES {
            let i = ((hash as usize).wrapping_add(probe)) & mask;
            let Some(s) = self.sites.get(i).filter(|_| i != 0) else {
                continue;
            };
            let mut state = s.state.load(Acquire);
            if state == FREE {
                match s.state.compare_exchange(FREE, WRITING, Acquire, Acquire) {
                    Ok(_) => {
                        s.hash.store(hash, Relaxed);
                        s.len.store(frames.len() as u32, Relaxed);
                        s.epoch.store(epoch, Relaxed);
                        for (to, &from) in s.frames.iter().zip(frames) {
                            to.store(from, Relaxed);
                        }
                        s.state.store(READY, Release);
                        return i;
                    }
                    Err(now) => state = now,
                }
            }
            // A site still being written is passed over: the same stack may then get a second
            // site, which the profile merges.
            if state == READY && same(s) {
                return i;
            }
        }
        self.misses.sites_full.fetch_add(1, Relaxed);
        0
    }

    /// Tracks the allocation at `ptr` as live; `false` when its bucket is full.
    ///
    /// # Signal safety
    /// Async-signal-safe: at most [`WAYS`] compare-and-swaps.
    fn track(&self, ptr: usize, site: u32, bytes: u64, objects: u64) -> bool {
        let base = bucket(ptr) * WAYS;
        for i in base..base + WAYS {
            let (Some(key), Some(rec)) = (self.keys.get(i), self.live.get(i)) else {
                return false;
            };
            if key.load(Relaxed) != 0 || key.compare_exchange(0, CLAIMED, Acquire, Relaxed).is_err()
            {
                continue;
            }
            rec.site.store(site, Relaxed);
            rec.bytes.store(bytes, Relaxed);
            rec.objects.store(objects, Relaxed);
            if let Some(c) = self.filter.get(filter_index(ptr)) {
                let _ = c.fetch_update(Relaxed, Relaxed, |n| n.checked_add(1));
            }
            key.store(ptr, Release);
            return true;
        }
        false
    }
}

/// The bucket of address `ptr`.
///
/// # Signal safety
/// Async-signal-safe: arithmetic.
#[inline]
fn bucket(ptr: usize) -> usize {
    ((ptr as u64 >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & (BUCKETS - 1)
}

/// The filter counter of address `ptr` (other bits of the hash than [`bucket`]'s).
///
/// # Signal safety
/// Async-signal-safe: arithmetic.
#[inline]
fn filter_index(ptr: usize) -> usize {
    ((ptr as u64 >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48) as usize & (FILTER - 1)
}

/// A wrapping sum read as a count: 0 when it went below zero.
fn clamp(v: u64) -> u64 {
    if v > u64::MAX / 2 {
        0
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_count_allocations_and_frees_find_them() {
        let t = HeapTables::new().unwrap();
        let a = [0x1000u64, 0x2000, 0x3000];
        let b = [0x1000u64, 0x2004];
        t.record(0x10_0000, Some((&a, 1)), 4096, 1024);
        t.record(0x10_1000, Some((&a, 1)), 4096, 1024);
        t.record(0x20_0000, Some((&b, 1)), 100, 5 * 1024);
        t.record(0x30_0000, None, 7, 1024);
        // A free of an address never sampled changes nothing.
        t.forget(0x40_0000);
        t.forget(0x10_0000);
        assert_eq!(t.inuse_bytes(), 4096 + 100 + 7);
        let mut seen = std::vec::Vec::new();
        t.for_each_site(|frames, epoch, c| seen.push((frames.to_vec(), epoch, c)));
        seen.sort_by_key(|s| s.0.len());
        assert_eq!(seen.len(), 3);
        let counts = |ab, ao, ib, io| SiteCounts {
            alloc_bytes: ab,
            alloc_objects: ao,
            inuse_bytes: ib,
            inuse_objects: io,
        };
        assert_eq!(seen[0], (vec![], 0, counts(7, 1024, 7, 1024)));
        assert_eq!(seen[1], (b.to_vec(), 1, counts(100, 5120, 100, 5120)));
        assert_eq!(seen[2], (a.to_vec(), 1, counts(8192, 2048, 4096, 1024)));
        assert_eq!(t.samples.load(Relaxed), 4);
        assert_eq!(t.misses.unwalked.load(Relaxed), 1);
        // Freeing the rest leaves nothing live.
        for p in [0x10_1000, 0x20_0000, 0x30_0000] {
            t.forget(p);
        }
        assert!(t.keys.iter().all(|k| k.load(Relaxed) == 0));
        assert!(t.filter.iter().all(|c| c.load(Relaxed) == 0));
        assert_eq!(t.inuse_bytes(), 0);
        t.for_each_site(|_, _, c| assert_eq!((c.inuse_bytes, c.inuse_objects), (0, 0)));
    }

    #[test]
    // Searching for colliding addresses takes Miri too long.
    #[cfg_attr(miri, ignore)]
    fn a_full_bucket_counts_what_it_cannot_track() {
        let t = HeapTables::new().unwrap();
        // Addresses of one bucket: search for them.
        let want = bucket(0x1000);
        let same: std::vec::Vec<usize> = (1..200_000usize)
            .map(|i| 0x1000 + i * 16)
            .filter(|&p| bucket(p) == want)
            .take(WAYS + 1)
            .collect();
        assert_eq!(same.len(), WAYS + 1);
        for &p in &same {
            t.record(p, Some((&[1], 0)), 10, 1024);
        }
        assert_eq!(t.misses.untracked.load(Relaxed), 1);
        t.for_each_site(|_, _, c| {
            assert_eq!(c.alloc_bytes, 10 * (WAYS as u64 + 1));
            assert_eq!(c.inuse_bytes, 10 * WAYS as u64);
        });
    }
}
