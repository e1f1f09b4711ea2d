//! Reading the live stack of the interrupted thread, confined to mappings known to be its own,
//! through loads that survive the memory disappearing ([`super::fault_guard`]).

use core::cell::{Cell, UnsafeCell};

use super::fault_guard::{guarded_load, ReadMode};
use crate::unwind::StackReader;

const CHUNK: usize = 4096;

/// Stack bytes copied with `process_vm_readv` ([`ReadMode::Copied`]): one page-aligned chunk
/// (and the 8 bytes after it, for a read that straddles the page end).
pub struct CopyBuffer {
    pid: i32,
    base: Cell<u64>,
    len: Cell<usize>,
    bytes: UnsafeCell<[u8; CHUNK + 8]>,
    /// The system call was refused (seccomp, `EPERM`): nothing can be read this way.
    pub refused: Cell<bool>,
}

impl CopyBuffer {
    /// An empty buffer for reading this process (`pid`).
    ///
    /// # Signal safety
    /// Async-signal-safe.
    pub fn new(pid: i32) -> Self {
        CopyBuffer {
            pid,
            base: Cell::new(0),
            len: Cell::new(0),
            bytes: UnsafeCell::new([0; CHUNK + 8]),
            refused: Cell::new(false),
        }
    }

    /// The u64 at `addr` if the buffer holds it.
    fn hit(&self, addr: u64) -> Option<u64> {
        let off = usize::try_from(addr.checked_sub(self.base.get())?).ok()?;
        let end = off.checked_add(8)?;
        if end > self.len.get() {
            return None;
        }
        // SAFETY: the buffer is only written in `read`, never while this shared borrow lives
        // (the type is not Sync and `read` does not call back into `hit` while writing).
        let bytes = unsafe { &*self.bytes.get() };
        Some(u64::from_le_bytes(bytes.get(off..end)?.try_into().ok()?))
    }

    /// The u64 at `addr` (inside `[.., hi)`), copying its page first if needed.
    ///
    /// # Signal safety
    /// Async-signal-safe: at most one `process_vm_readv` call.
    fn read(&self, addr: u64, hi: u64) -> Option<u64> {
        if let Some(v) = self.hit(addr) {
            return Some(v);
        }
        if self.refused.get() {
            return None;
        }
        let base = addr & !(CHUNK as u64 - 1);
        let want = (hi.saturating_sub(base) as usize).min(CHUNK + 8);
        let local = libc::iovec {
            iov_base: self.bytes.get().cast(),
            iov_len: want,
        };
        let remote = libc::iovec {
            iov_base: base as usize as *mut libc::c_void,
            iov_len: want,
        };
        self.len.set(0);
        // SAFETY: `local` is our own buffer, not borrowed now; the kernel checks `remote` and
        // reports EFAULT (or a short count) instead of faulting.
        let got = unsafe { libc::process_vm_readv(self.pid, &local, 1, &remote, 1, 0) };
        if got < 0 {
            let e = super::fs::errno();
            if e == libc::EPERM || e == libc::ENOSYS {
                self.refused.set(true);
            }
            return None;
        }
        self.base.set(base);
        self.len.set(got as usize);
        self.hit(addr)
    }
}

/// The sampled thread's stack from its interrupted stack pointer up to the end of the mapping
/// that holds it; after a signal frame, the stack the interrupted code ran on. Reads outside
/// the current `[lo, hi)` return `None`, and so do reads of memory unmapped or protected since
/// the mapping snapshot was taken.
pub struct LiveStack<'a> {
    ranges: &'a [[u64; 2]],
    lo: u64,
    hi: u64,
    mode: ReadMode,
    copy: Option<&'a CopyBuffer>,
}

/// The `[start, end)` range in sorted `ranges` that holds `addr`.
///
/// # Signal safety
/// Async-signal-safe: bounds-checked reads, no allocation, locks or panics.
pub fn mapping_of(ranges: &[[u64; 2]], addr: u64) -> Option<[u64; 2]> {
    let i = ranges.partition_point(|r| r[1] <= addr);
    ranges.get(i).copied().filter(|r| r[0] <= addr)
}

impl<'a> LiveStack<'a> {
    /// A reader for the stack holding `sp`, or `None` if no mapping in `ranges` holds it.
    ///
    /// # Safety
    /// `mode` must come from [`super::fault_guard::read_mode`] for this signal, and the
    /// reader be used only inside that handler. `copy` is needed in [`ReadMode::Copied`].
    ///
    /// # Signal safety
    /// Async-signal-safe: a binary search.
    pub unsafe fn new(
        ranges: &'a [[u64; 2]],
        sp: u64,
        mode: ReadMode,
        copy: Option<&'a CopyBuffer>,
    ) -> Option<Self> {
        let [_, hi] = mapping_of(ranges, sp)?;
        Some(LiveStack {
            ranges,
            lo: sp,
            hi,
            mode,
            copy,
        })
    }
}

/// How far above its stack pointer a thread reads its own stack when the mappings snapshot
/// does not hold it yet (a thread started since): 8 MiB, the default main-thread stack. Reads
/// are guarded, so reading past the stack's real end cannot fault.
const OWN_STACK_SPAN: u64 = 8 << 20;

impl<'a> LiveStack<'a> {
    /// A reader for the calling thread's own stack from `sp` (read by the thread itself) up to
    /// the end of its mapping in `ranges`, or [`OWN_STACK_SPAN`] when `ranges` does not hold it.
    ///
    /// # Safety
    /// The fault guard must be armed, and the reader used only by the calling thread, on its
    /// own stack (a fault's frame goes there).
    ///
    /// # Signal safety
    /// Async-signal-safe: a binary search.
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    pub unsafe fn own(ranges: &'a [[u64; 2]], sp: u64) -> Self {
        let hi = match mapping_of(ranges, sp) {
            Some([_, hi]) => hi,
            None => sp.saturating_add(OWN_STACK_SPAN),
        };
        LiveStack {
            ranges,
            lo: sp,
            hi,
            mode: ReadMode::Guarded(0),
            copy: None,
        }
    }
}

impl StackReader for LiveStack<'_> {
    /// # Signal safety
    /// Async-signal-safe: a bounds check and one fault-recovering load (or, in
    /// [`ReadMode::Copied`], at most one system call).
    fn read_u64(&self, addr: u64) -> Option<u64> {
        if addr < self.lo || addr.checked_add(8)? > self.hi {
            return None;
        }
        match self.mode {
            ReadMode::Guarded(scratch_sp) => {
                // SAFETY: the constructor's contract: the guard was armed and the scratch stack
                // has room for a fault's frame. The load may fault; the guard turns that into
                // `ok == 0`.
                let loaded = unsafe { guarded_load(addr, scratch_sp) };
                (loaded.ok == 1).then_some(loaded.value)
            }
            ReadMode::Copied => self.copy?.read(addr, self.hi),
        }
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
