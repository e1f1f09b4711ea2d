//! The heap in a session's tables: the heap sampler's sites (`crate::alloc`) interned as
//! stacks of this session, with what they allocated and still hold when it ends.

use super::Collector;
use crate::sys::mem::Zeroed;

/// Estimated object counts are kept in 1/1024ths until a profile is written.
pub(crate) const HEAP_OBJECT_SCALE: u64 = 1024;

/// Distinct heap sites a profile holds.
#[cfg(feature = "std")]
pub(crate) const MAX_HEAP_SITES: usize = crate::alloc::MAX_SITES;
#[cfg(not(feature = "std"))]
pub(crate) const MAX_HEAP_SITES: usize = 0;

/// One heap site of a profile: a stack and its estimates (objects scaled by
/// `alloc::OBJECT_SCALE`).
#[derive(Clone, Copy, Default)]
pub(crate) struct HeapSiteRec {
    /// The innermost stack node.
    pub stack: u32,
    pub alloc_bytes: u64,
    pub alloc_objects: u64,
    pub inuse_bytes: u64,
    pub inuse_objects: u64,
}

// SAFETY: integers only.
unsafe impl Zeroed for HeapSiteRec {}

/// The heap sampler's figures a profile carries besides its sites.
#[derive(Clone, Copy, Default)]
pub(crate) struct HeapStats {
    /// Allocations sampled since sampling began.
    pub samples: u64,
    pub sites_full: u64,
    pub untracked: u64,
    pub unwalked: u64,
    pub reentrant: u64,
}

impl Collector {
    /// Reads the heap sampler's sites into the tables, when this profiler samples allocations
    /// (a no-op otherwise): each site's frames are interned as this session's stack (a frame
    /// attributed to the module mapped there when its walk ran, or to none), and sites of the
    /// same stack are merged.
    pub(crate) fn read_heap(&mut self) {
        let heap = &self.heap;
        (self.heap_index).clear_entries(self.heap_len, |i| heap[i].stack as u64);
        self.heap_len = 0;
        #[cfg(feature = "std")]
        if self.heap_mean > 0 {
            self.read_heap_sites();
        }
    }

    #[cfg(feature = "std")]
    fn read_heap_sites(&mut self) {
        let Some(tables) = crate::alloc::tables() else {
            return;
        };
        use core::sync::atomic::Ordering::Relaxed;
        let m = &tables.misses;
        self.heap_stats = HeapStats {
            samples: tables.samples.load(Relaxed),
            sites_full: m.sites_full.load(Relaxed),
            untracked: m.untracked.load(Relaxed),
            unwalked: m.unwalked.load(Relaxed),
            reentrant: m.reentrant.load(Relaxed),
        };
        // A site walked before this session listed its modules is attributed with the
        // session's first table (the loader's state then). Not exact in one case: a library
        // unloaded between the walk and that table, and another mapped at its address, would
        // take the site's frames there.
        let earliest = self.modules.first_epoch();
        let mut full = false;
        tables.for_each_site(|frames, epoch, counts| {
            let epoch = if earliest == u32::MAX {
                epoch
            } else {
                epoch.max(earliest)
            };
            let Some(stack) = self.intern_stack(frames, epoch) else {
                full = true;
                return;
            };
            let heap = &self.heap;
            let (slot, found) =
                (self.heap_index).probe(stack as u64, |i| heap[i as usize].stack == stack);
            let rec = match found {
                Some(i) => &mut self.heap[i as usize],
                None => {
                    let i = self.heap_len;
                    let Some(rec) = self.heap.get_mut(i) else {
                        full = true;
                        return;
                    };
                    *rec = HeapSiteRec {
                        stack,
                        ..HeapSiteRec::default()
                    };
                    self.heap_len += 1;
                    self.heap_index.slots[slot] = i as u32 + 1;
                    rec
                }
            };
            // Saturating: the sampler thread must not panic, whatever the estimates add up to.
            rec.alloc_bytes = rec.alloc_bytes.saturating_add(counts.alloc_bytes);
            rec.alloc_objects = rec.alloc_objects.saturating_add(counts.alloc_objects);
            rec.inuse_bytes = rec.inuse_bytes.saturating_add(counts.inuse_bytes);
            rec.inuse_objects = rec.inuse_objects.saturating_add(counts.inuse_objects);
        });
        if full {
            self.lost.tables_full += 1;
        }
    }
}
