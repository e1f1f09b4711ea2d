//! Where thread stacks are: a snapshot of this process's writable mappings, published to the
//! signal handler without locks.
//!
//! The sampler refreshes the snapshot outside the handler (from `/proc/self/maps`) whenever the
//! set of threads changes. The handler finds the mapping holding the interrupted stack pointer
//! and reads no further than its end. The snapshot is a [`crate::snapshot::Snapshot`].

use crate::error::Result;
use crate::snapshot::Snapshot;
use crate::sys::maps;

/// Snapshots of the sorted `[start, end)` ranges of writable mappings.
pub struct StackRanges {
    ranges: Snapshot<[u64; 2]>,
}

impl StackRanges {
    /// Room for `capacity` mappings per snapshot.
    pub fn new(capacity: usize) -> Result<Self> {
        Ok(StackRanges {
            ranges: Snapshot::new(capacity)?,
        })
    }

    /// Re-reads `/proc/self/maps` and publishes it. Returns `false` (keeping the old snapshot)
    /// if the maps could not be read or the snapshot could not be replaced.
    pub fn refresh(&self) -> bool {
        self.ranges.publish(0, |slots, _| {
            let mut n = 0;
            let ok = maps::for_each_writable_mapping(|start, end| {
                if let Some(slot) = slots.get_mut(n) {
                    *slot = [start, end];
                    n += 1;
                }
            });
            ok.then_some(n)
        })
    }

    /// Runs `read` over the current snapshot (sorted `[start, end)` ranges).
    ///
    /// # Signal safety
    /// Async-signal-safe: see [`Snapshot::read`].
    pub fn read<R>(&self, read: impl FnOnce(&[[u64; 2]]) -> R) -> Option<R> {
        self.ranges.read(|ranges, _| read(ranges))
    }

    /// The end of the writable mapping that contains `addr`, if the snapshot has one.
    ///
    /// # Signal safety
    /// Async-signal-safe: a lock-free snapshot read and a binary search.
    pub fn end_of_mapping(&self, addr: u64) -> Option<u64> {
        self.read(|r| crate::sys::stack::mapping_of(r, addr).map(|m| m[1]))?
    }

    /// Memory mapped for the snapshots.
    pub fn mapped_bytes(&self) -> usize {
        self.ranges.mapped_bytes()
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
