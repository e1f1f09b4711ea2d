//! Where thread stacks are: a snapshot of this process's writable mappings, published to the
//! signal handler without locks.
//!
//! The sampler refreshes the snapshot outside the handler (from `/proc/self/maps`) whenever the
//! set of threads changes. The handler finds the mapping holding the interrupted stack pointer
//! and reads no further than its end. Two buffers alternate: the handler announces itself on
//! the current buffer (a reader count) and re-checks that it is still current; the refresher
//! only rewrites the other buffer, and only once no reader is on it.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};

use crate::error::Result;
use crate::sys::linux::{maps, mem::Region, time};

/// Double-buffered sorted `[start, end)` ranges of writable mappings.
pub struct StackRanges {
    ranges: [Region<[AtomicU64; 2]>; 2],
    len: [AtomicUsize; 2],
    readers: [AtomicUsize; 2],
    current: AtomicUsize,
}

impl StackRanges {
    /// Room for `capacity` mappings per buffer.
    pub fn new(capacity: usize) -> Result<Self> {
        Ok(StackRanges {
            ranges: [Region::new(capacity)?, Region::new(capacity)?],
            len: [AtomicUsize::new(0), AtomicUsize::new(0)],
            readers: [AtomicUsize::new(0), AtomicUsize::new(0)],
            current: AtomicUsize::new(0),
        })
    }

    /// Re-reads `/proc/self/maps` into the spare buffer and publishes it. Returns `false` (and
    /// keeps the old snapshot) if the maps could not be read or a handler held the spare buffer
    /// for more than 50 ms.
    pub fn refresh(&self) -> bool {
        let cur = self.current.load(SeqCst);
        let spare = 1 - cur;
        let deadline = time::monotonic_ns() + 50_000_000;
        while self.readers[spare].load(SeqCst) != 0 {
            if time::monotonic_ns() > deadline {
                return false;
            }
            time::sleep_ns(10_000);
        }
        let buf = &self.ranges[spare];
        let mut n = 0;
        let ok = maps::for_each_writable_mapping(|start, end| {
            if let Some(slot) = buf.get(n) {
                slot[0].store(start, SeqCst);
                slot[1].store(end, SeqCst);
                n += 1;
            }
        });
        if !ok {
            return false;
        }
        self.len[spare].store(n, SeqCst);
        self.current.store(spare, SeqCst);
        true
    }

    /// The end of the writable mapping that contains `sp`, if the snapshot has one.
    ///
    /// # Signal safety
    /// Async-signal-safe: atomics only, bounded (three attempts to pin a buffer, then a binary
    /// search).
    pub fn end_of_mapping(&self, sp: u64) -> Option<u64> {
        for _ in 0..3 {
            let i = self.current.load(SeqCst) & 1;
            self.readers[i].fetch_add(1, SeqCst);
            if self.current.load(SeqCst) == i {
                let found = self.search(i, sp);
                self.readers[i].fetch_sub(1, SeqCst);
                return found;
            }
            self.readers[i].fetch_sub(1, SeqCst);
        }
        None
    }

    fn search(&self, i: usize, sp: u64) -> Option<u64> {
        let buf = &self.ranges[i];
        let len = self.len[i].load(SeqCst).min(buf.len());
        let (mut lo, mut hi) = (0, len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let r = buf.get(mid)?;
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

    /// Memory mapped for the snapshot buffers.
    pub fn mapped_bytes(&self) -> usize {
        self.ranges[0].mapped_bytes() + self.ranges[1].mapped_bytes()
    }
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
