//! Reading the live stack of the interrupted thread, confined to mappings known to be its own.

use crate::unwind::StackReader;

/// The sampled thread's stack from its interrupted stack pointer up to the end of the mapping
/// that holds it; after a signal frame, the stack the interrupted code ran on. Reads outside
/// the current `[lo, hi)` return `None`.
#[derive(Debug, Clone, Copy)]
pub struct LiveStack<'a> {
    ranges: &'a [[u64; 2]],
    lo: u64,
    hi: u64,
}

/// The `[start, end)` range in sorted `ranges` that holds `addr`.
pub fn mapping_of(ranges: &[[u64; 2]], addr: u64) -> Option<[u64; 2]> {
    let i = ranges.partition_point(|r| r[1] <= addr);
    ranges.get(i).copied().filter(|r| r[0] <= addr)
}

impl<'a> LiveStack<'a> {
    /// A reader for the stack holding `sp`, or `None` if no mapping in `ranges` holds it.
    ///
    /// # Safety
    /// `ranges` must be a current snapshot of this process's writable mappings, `sp` the
    /// interrupted stack pointer of the calling thread, and the reader used only while that
    /// thread is stopped in the signal handler: then the thread's own stack (the mapping
    /// holding `sp`, and the one its interrupted code ran on) stays mapped while it is read.
    ///
    /// # Signal safety
    /// Async-signal-safe: a binary search.
    pub unsafe fn new(ranges: &'a [[u64; 2]], sp: u64) -> Option<Self> {
        let [_, hi] = mapping_of(ranges, sp)?;
        Some(LiveStack { ranges, lo: sp, hi })
    }
}

impl StackReader for LiveStack<'_> {
    /// # Signal safety
    /// Async-signal-safe: a bounds check and one load.
    fn read_u64(&self, addr: u64) -> Option<u64> {
        if addr < self.lo || addr.checked_add(8)? > self.hi {
            return None;
        }
        // SAFETY: [addr, addr+8) lies inside [lo, hi), part of the sampled thread's own stack
        // mapping, which the constructor's caller promised stays mapped. Volatile, because the
        // memory may change under us (it is not ours to borrow); unaligned reads are fine.
        let bytes = unsafe { core::ptr::read_volatile(addr as usize as *const [u8; 8]) };
        Some(u64::from_le_bytes(bytes))
    }

    /// # Signal safety
    /// Async-signal-safe: a binary search.
    fn switch_stack(&mut self, sp: u64) {
        if sp >= self.lo && sp < self.hi {
            return;
        }
        // The interrupted code's stack: the thread's own, as the constructor's contract says.
        match mapping_of(self.ranges, sp) {
            Some([_, hi]) => {
                self.lo = sp;
                self.hi = hi;
            }
            None => self.hi = self.lo, // nothing readable
        }
    }
}
