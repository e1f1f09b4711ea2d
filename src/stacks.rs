//! Where thread stacks are: a snapshot of this process's writable mappings, published to the
//! signal handler without locks.
//!
//! The sampler refreshes the snapshot outside the handler (from `/proc/self/maps`) whenever the
//! set of threads changes. The handler finds the mapping holding the interrupted stack pointer
//! and reads no further than its end. Two buffers alternate: the handler announces itself on
//! the current buffer (a reader count) and re-checks that it is still current; the refresher
//! only rewrites the other buffer, and only once no reader is on it.

// On the signal path: no panics, so no unwrap, expect or unchecked indexing.
#![cfg_attr(
    not(test),
    deny(
        clippy::panic,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing
    )
)]

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};

use crate::error::Result;
use crate::sys::linux::{maps, mem::Region, time};

/// One snapshot: sorted `[start, end)` ranges, and the handlers currently reading it.
struct Buffer {
    ranges: Region<[AtomicU64; 2]>,
    len: AtomicUsize,
    readers: AtomicUsize,
}

/// Double-buffered snapshots of the writable mappings.
pub struct StackRanges {
    bufs: [Buffer; 2],
    current: AtomicUsize,
}

impl StackRanges {
    /// Room for `capacity` mappings per buffer.
    pub fn new(capacity: usize) -> Result<Self> {
        let buffer = || -> Result<Buffer> {
            Ok(Buffer {
                ranges: Region::new(capacity)?,
                len: AtomicUsize::new(0),
                readers: AtomicUsize::new(0),
            })
        };
        Ok(StackRanges {
            bufs: [buffer()?, buffer()?],
            current: AtomicUsize::new(0),
        })
    }

    fn buf(&self, i: usize) -> &Buffer {
        if i & 1 == 0 {
            &self.bufs[0]
        } else {
            &self.bufs[1]
        }
    }

    /// Re-reads `/proc/self/maps` into the spare buffer and publishes it. Returns `false` (and
    /// keeps the old snapshot) if the maps could not be read or a handler held the spare buffer
    /// for more than 50 ms.
    pub fn refresh(&self) -> bool {
        let spare_index = (self.current.load(SeqCst) + 1) & 1;
        let spare = self.buf(spare_index);
        let deadline = time::monotonic_ns() + 50_000_000;
        while spare.readers.load(SeqCst) != 0 {
            if time::monotonic_ns() > deadline {
                return false;
            }
            time::sleep_ns(10_000);
        }
        let mut n = 0;
        let ok = maps::for_each_writable_mapping(|start, end| {
            if let Some(slot) = spare.ranges.get(n) {
                slot[0].store(start, SeqCst);
                slot[1].store(end, SeqCst);
                n += 1;
            }
        });
        if !ok {
            return false;
        }
        spare.len.store(n, SeqCst);
        self.current.store(spare_index, SeqCst);
        true
    }

    /// The end of the writable mapping that contains `sp`, if the snapshot has one.
    ///
    /// # Signal safety
    /// Async-signal-safe: atomics only, bounded (three attempts to pin a buffer, then a binary
    /// search).
    pub fn end_of_mapping(&self, sp: u64) -> Option<u64> {
        for _ in 0..3 {
            let i = self.current.load(SeqCst);
            let buf = self.buf(i);
            buf.readers.fetch_add(1, SeqCst);
            let still_current = self.current.load(SeqCst) == i;
            let found = if still_current { search(buf, sp) } else { None };
            buf.readers.fetch_sub(1, SeqCst);
            if still_current {
                return found;
            }
        }
        None
    }

    /// Memory mapped for the snapshot buffers.
    pub fn mapped_bytes(&self) -> usize {
        self.bufs.iter().map(|b| b.ranges.mapped_bytes()).sum()
    }
}

/// Binary search for the range holding `sp`; returns its end.
fn search(buf: &Buffer, sp: u64) -> Option<u64> {
    let ranges = buf.ranges.get(..buf.len.load(SeqCst))?;
    let (mut lo, mut hi) = (0, ranges.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let r = ranges.get(mid)?;
        let (start, end) = (r[0].load(SeqCst), r[1].load(SeqCst));
        if sp < start {
            hi = mid;
        } else if sp >= end {
            lo = mid + 1;
        } else {
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_stack_of_this_and_a_new_thread() {
        let r = StackRanges::new(4096).unwrap();
        let local = 0u64;
        let sp = &local as *const u64 as u64;
        assert_eq!(r.end_of_mapping(sp), None, "empty before the first refresh");
        assert!(r.refresh());
        let end = r
            .end_of_mapping(sp)
            .expect("this thread's stack is mapped rw");
        assert!(end > sp);
        // A thread created later is found after another refresh.
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            let x = 0u64;
            tx.send(&x as *const u64 as u64).unwrap();
            done_rx.recv().ok();
        });
        let other = rx.recv().unwrap();
        assert!(r.refresh());
        assert!(r.end_of_mapping(other).unwrap() > other);
        assert_eq!(r.end_of_mapping(8), None);
        done_tx.send(()).unwrap();
        t.join().unwrap();
    }
}
