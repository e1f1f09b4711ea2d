//! Reading the live stack of the interrupted thread, confined to bounds known to be mapped.

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

use crate::unwind::StackReader;

/// The sampled thread's stack from its interrupted stack pointer up to the end of the mapping
/// that holds it. Reads outside `[lo, hi)` return `None`.
#[derive(Debug, Clone, Copy)]
pub struct LiveStack {
    lo: u64,
    hi: u64,
}

impl LiveStack {
    /// A reader for `[lo, hi)`.
    ///
    /// # Safety
    /// Every byte of `[lo, hi)` must stay mapped and readable while the reader is used. The
    /// handler guarantees this by taking `hi` from a mapping snapshot that holds the interrupted
    /// stack pointer, and using the reader only while the sampled thread (whose stack it is) is
    /// stopped inside the handler.
    ///
    /// # Signal safety
    /// Async-signal-safe.
    pub unsafe fn new(lo: u64, hi: u64) -> Self {
        LiveStack { lo, hi }
    }
}

impl StackReader for LiveStack {
    /// # Signal safety
    /// Async-signal-safe: a bounds check and one aligned or unaligned load.
    fn read_u64(&self, addr: u64) -> Option<u64> {
        if addr < self.lo || addr.checked_add(8)? > self.hi {
            return None;
        }
        // SAFETY: [addr, addr+8) lies inside [lo, hi), which the constructor's caller promised
        // is mapped and readable. Volatile, because another thread may write the memory.
        Some(unsafe { core::ptr::read_volatile(addr as usize as *const u64) })
    }
}
