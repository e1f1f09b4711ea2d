//! A table published to the signal handler without locks: two buffers that alternate.
//!
//! The handler *pins* the current buffer (increments its reader count), re-checks that it is
//! still current, reads, and unpins. The single writer (the sampler, outside the handler) only
//! ever rewrites the *other* buffer, and only once no reader has it pinned; then it makes that
//! buffer current. A reader that pinned a buffer just as it stopped being current sees the
//! change on its re-check and never reads it. All operations are `SeqCst`, which this argument
//! relies on.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

use crate::error::Result;
use crate::sys::mem::{Region, Zeroed};
use crate::sys::time;

struct Buffer<T: Zeroed> {
    items: UnsafeCell<Region<T>>,
    len: AtomicUsize,
    /// The writer's label for this table (the code map's epoch).
    tag: AtomicUsize,
    readers: AtomicUsize,
}

/// A double-buffered table of up to `capacity` `T`s.
pub struct Snapshot<T: Zeroed> {
    bufs: [Buffer<T>; 2],
    current: AtomicUsize,
    writing: AtomicBool,
}

// SAFETY: the buffers are only written by the one writer (guarded by `writing`) while no reader
// has them pinned, and only read while pinned and current; T itself must be shareable.
unsafe impl<T: Zeroed + Send + Sync> Sync for Snapshot<T> {}
// SAFETY: the snapshot owns its buffers.
unsafe impl<T: Zeroed + Send> Send for Snapshot<T> {}

impl<T: Zeroed> Snapshot<T> {
    /// Two empty buffers of `capacity` items each.
    pub fn new(capacity: usize) -> Result<Self> {
        let buffer = || -> Result<Buffer<T>> {
            Ok(Buffer {
                items: UnsafeCell::new(Region::new(capacity)?),
                len: AtomicUsize::new(0),
                tag: AtomicUsize::new(0),
                readers: AtomicUsize::new(0),
            })
        };
        Ok(Snapshot {
            bufs: [buffer()?, buffer()?],
            current: AtomicUsize::new(0),
            writing: AtomicBool::new(false),
        })
    }

    fn buf(&self, i: usize) -> &Buffer<T> {
        if i & 1 == 0 {
            &self.bufs[0]
        } else {
            &self.bufs[1]
        }
    }

    /// Bytes mapped for both buffers.
    pub fn mapped_bytes(&self) -> usize {
        // SAFETY: reading the length of the Region (not its items) races with nothing: the
        // Region itself is never replaced.
        self.bufs
            .iter()
            .map(|b| unsafe { &*b.items.get() }.mapped_bytes())
            .sum()
    }

    /// Fills the spare buffer with `fill` (which gets all `capacity` slots and the spare
    /// buffer's index, 0 or 1, and returns how many slots it used) and makes it current with
    /// label `tag`. Returns `false`, publishing nothing, if another write is in progress, a
    /// reader held the spare buffer for 50 ms, or `fill` returned `None`. While `fill` runs,
    /// no reader uses what the spare buffer held before.
    pub fn publish(&self, tag: usize, fill: impl FnOnce(&mut [T], usize) -> Option<usize>) -> bool {
        if self.writing.swap(true, SeqCst) {
            return false;
        }
        let published = self.publish_exclusive(tag, fill);
        self.writing.store(false, SeqCst);
        published
    }

    /// Runs `f` as the writer without publishing (for a writer's own bookkeeping beside the
    /// table); `None`, not running it, if a write is in progress.
    pub fn exclusive<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        if self.writing.swap(true, SeqCst) {
            return None;
        }
        let result = f();
        self.writing.store(false, SeqCst);
        Some(result)
    }

    fn publish_exclusive(
        &self,
        tag: usize,
        fill: impl FnOnce(&mut [T], usize) -> Option<usize>,
    ) -> bool {
        let spare_index = (self.current.load(SeqCst) + 1) & 1;
        let spare = self.buf(spare_index);
        let deadline = time::monotonic_ns() + 50_000_000;
        while spare.readers.load(SeqCst) != 0 {
            if time::monotonic_ns() > deadline {
                return false;
            }
            time::sleep_ns(10_000);
        }
        // SAFETY: we are the only writer (`writing`), the spare buffer is not current, and no
        // reader has it pinned; a reader that pins it from now on finds it is not current on
        // its re-check and never reads it.
        let items = unsafe { &mut *spare.items.get() };
        let Some(n) = fill(items, spare_index) else {
            return false;
        };
        spare.len.store(n.min(items.len()), SeqCst);
        spare.tag.store(tag, SeqCst);
        self.current.store(spare_index, SeqCst);
        true
    }

    /// Runs `read` over the current table and its tag; `None` if it could not be pinned
    /// (three attempts, each lost to a concurrent publish).
    ///
    /// # Signal safety
    /// Async-signal-safe: atomics only, bounded.
    pub fn read<R>(&self, read: impl FnOnce(&[T], usize) -> R) -> Option<R> {
        for _ in 0..3 {
            let i = self.current.load(SeqCst);
            let buf = self.buf(i);
            buf.readers.fetch_add(1, SeqCst);
            if self.current.load(SeqCst) == i {
                // SAFETY: the buffer is pinned and current, so the writer does not touch it
                // until we unpin.
                let items = unsafe { &*buf.items.get() };
                let len = buf.len.load(SeqCst);
                let result = read(items.get(..len).unwrap_or(&[]), buf.tag.load(SeqCst));
                buf.readers.fetch_sub(1, SeqCst);
                return Some(result);
            }
            buf.readers.fetch_sub(1, SeqCst);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_see_whole_tables_while_a_writer_publishes() {
        let snap = Snapshot::<[u64; 4]>::new(64).unwrap();
        assert_eq!(snap.read(|t, _| t.len()), Some(0));
        let stop = AtomicBool::new(false);
        let total_reads = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    while !stop.load(SeqCst) {
                        if let Some(ok) = snap.read(|t, tag| {
                            assert_eq!(tag, t.len(), "the tag comes with its table");
                            // Every published table holds n copies of [n; 4].
                            t.iter().all(|row| row.iter().all(|&v| v == t.len() as u64))
                        }) {
                            assert!(ok, "a reader saw a half-written table");
                            total_reads.fetch_add(1, SeqCst);
                        }
                    }
                });
            }
            let mut round = 0u64;
            let (min_rounds, min_reads) = if cfg!(miri) { (20, 5) } else { (2000, 1000) };
            while round < min_rounds || (total_reads.load(SeqCst) < min_reads && round < 10_000_000)
            {
                round += 1;
                let n = (round % 64) as usize;
                assert!(snap.publish(n, |t, _| {
                    for row in &mut t[..n] {
                        *row = [n as u64; 4];
                    }
                    Some(n)
                }));
            }
            stop.store(true, SeqCst);
        });
        assert!(total_reads.load(SeqCst) > 0);
        assert!(!snap.publish(0, |_, _| None));
    }
}
