//! Stacks of vignette's own for the signal handler.
//!
//! A handler runs on the interrupted thread's stack, or on its alternate signal stack, which
//! may be a few kilobytes (Rust installs one of `SIGSTKSZ` on every thread). Walking CFI needs
//! more than that in unoptimised builds, so the handler moves onto one of a small pool of
//! preallocated stacks, each with a guard page below it, claimed with a compare-and-swap.

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, Ordering};

use super::arch::run_on_stack;
use super::pages::{map_anonymous, zero_in_child};
use crate::error::{Error, Result};
use crate::sys::mem::Region;

/// Bytes of each handler stack (not counting its guard page).
pub const STACK_SIZE: usize = 128 * 1024;
const PAGE: usize = 4096;

/// A pool of handler stacks.
pub struct HandlerStacks {
    base: u64,
    count: usize,
    busy: Region<AtomicBool>,
}

impl HandlerStacks {
    /// Maps `count` stacks with a guard page under each, in one mapping that a forked child
    /// finds zeroed (the handler never runs there).
    pub fn new(count: usize) -> Result<Self> {
        let stride = STACK_SIZE + PAGE;
        let bytes = count
            .checked_mul(stride)
            .ok_or(Error::OutOfMemory)?
            .max(PAGE);
        let base = map_anonymous(bytes, libc::MAP_NORESERVE)?;
        // SAFETY: exactly the mapping just made.
        unsafe { zero_in_child(base, bytes) };
        // Guard regions (Linux 6.13 and later) keep the mapping one area of the kernel's; a
        // protected page splits it in three, and every area costs each `fork` and `exit`.
        let mut guard: fn(*mut c_void) -> bool = guard_region;
        for i in 0..count {
            // SAFETY: the guard page lies inside the mapping just made, which nothing uses yet.
            let page = unsafe { base.cast::<u8>().add(i * stride).cast() };
            if !guard(page) {
                guard = protect;
                guard(page);
            }
        }
        Ok(HandlerStacks {
            base: base as u64,
            count,
            busy: Region::new(count)?,
        })
    }

    /// Runs `f` on a free handler stack, or returns `false` if every stack is in use. `f` gets
    /// the stack pointer of the stack it was called from, where that stack's free part begins.
    ///
    /// # Signal safety
    /// Async-signal-safe and lock-free: at most `count` compare-and-swaps, then a stack switch.
    pub fn run(&self, f: &mut dyn FnMut(u64)) -> bool {
        for (i, busy) in self.busy.iter().enumerate() {
            if busy
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                let top = self.base + ((i + 1) * (STACK_SIZE + PAGE)) as u64;
                let mut f = f;
                // SAFETY: stack i is ours until we release it below; its top is page-aligned
                // (so 16-byte aligned) and a guard page lies below it.
                unsafe {
                    run_on_stack(
                        top,
                        trampoline,
                        (&mut f) as *mut &mut dyn FnMut(u64) as *mut c_void,
                    )
                };
                busy.store(false, Ordering::Release);
                return true;
            }
        }
        false
    }

    /// Bytes mapped for the stacks (touched only as used).
    pub fn mapped_bytes(&self) -> usize {
        self.count * (STACK_SIZE + PAGE) + self.busy.mapped_bytes()
    }
}

impl Drop for HandlerStacks {
    fn drop(&mut self) {
        let bytes = (self.count * (STACK_SIZE + PAGE)).max(PAGE);
        // SAFETY: unmaps exactly the mapping made in `new`, which nothing uses any more (the
        // profiler drops this only after no handler can run).
        unsafe { libc::munmap(self.base as usize as *mut c_void, bytes) };
    }
}

/// `madvise(MADV_GUARD_INSTALL)` (not yet in every `libc`), in the kernel's ABI.
const MADV_GUARD_INSTALL: i32 = 102;

/// Makes `page` fault when touched without splitting its mapping; `false` if the kernel has
/// no guard regions.
fn guard_region(page: *mut c_void) -> bool {
    // SAFETY: advice on one page of a private anonymous mapping of ours, not yet used.
    unsafe { libc::madvise(page, PAGE, MADV_GUARD_INSTALL) == 0 }
}

/// Makes `page` fault when touched by removing its access rights.
fn protect(page: *mut c_void) -> bool {
    // SAFETY: one page of a private anonymous mapping of ours, not yet used.
    unsafe { libc::mprotect(page, PAGE, libc::PROT_NONE) == 0 }
}

extern "C" fn trampoline(arg: *mut c_void, entry_sp: u64) {
    // SAFETY: `run` passes a pointer to a live `&mut dyn FnMut(u64)`.
    let f = unsafe { &mut *(arg as *mut &mut dyn FnMut(u64)) };
    f(entry_sp);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn deep(n: u32) -> u64 {
        let pad = core::hint::black_box([n as u64; 64]);
        if n == 0 {
            return pad[3];
        }
        pad[5] + deep(n - 1)
    }

    #[test]
    fn runs_code_on_its_own_stacks() {
        let stacks = HandlerStacks::new(2).unwrap();
        let mut sp_seen = 0u64;
        let mut result = 0;
        assert!(stacks.run(&mut |_| {
            let local = 0u8;
            sp_seen = &local as *const u8 as u64;
            result = deep(100); // ~60 KiB of stack
                                // A nested run takes the other stack.
            assert!(stacks.run(&mut |_| {}));
        }));
        assert!(sp_seen > stacks.base && sp_seen < stacks.base + stacks.mapped_bytes() as u64);
        assert_eq!(result, (1..=100).sum::<u64>());
    }

    /// Whether `addr` can be read, asked of the kernel (which reports a fault as an error).
    fn readable(addr: u64) -> bool {
        let mut byte = 0u8;
        let local = libc::iovec {
            iov_base: (&mut byte as *mut u8).cast(),
            iov_len: 1,
        };
        let remote = libc::iovec {
            iov_base: addr as usize as *mut c_void,
            iov_len: 1,
        };
        // SAFETY: reads one byte of this process into `byte`; a bad address is an error.
        unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) == 1 }
    }

    #[test]
    fn a_guard_page_lies_under_each_stack_in_one_area() {
        let stacks = HandlerStacks::new(4).unwrap();
        let stride = (STACK_SIZE + PAGE) as u64;
        // An emulator (qemu-user) may neither read through this call nor install guard
        // regions (it takes `madvise` as a hint); only the area count is checked there.
        let probe_works = readable(&stride as *const u64 as u64);
        for i in (0..4).filter(|_| probe_works) {
            let guard = stacks.base + i * stride;
            assert!(!readable(guard), "guard page of stack {i}");
            assert!(readable(guard + PAGE as u64), "stack {i}");
        }
        let (lo, hi) = (stacks.base, stacks.base + 4 * stride);
        let areas = std::fs::read_to_string("/proc/self/maps")
            .unwrap()
            .lines()
            .filter(|l| {
                let (a, b) = l.split_once(' ').unwrap().0.split_once('-').unwrap();
                let (a, b) = (
                    u64::from_str_radix(a, 16).unwrap(),
                    u64::from_str_radix(b, 16).unwrap(),
                );
                a < hi && b > lo
            })
            .count();
        // One area where the kernel has guard regions (6.13 and later), else one per page
        // protected and one per stack.
        let release: Vec<u32> = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap()
            .split(|c: char| !c.is_ascii_digit())
            .take(2)
            .map(|n| n.parse().unwrap_or(0))
            .collect();
        if release.as_slice() >= [6, 13].as_slice() {
            assert_eq!(areas, 1);
        } else {
            assert_eq!(areas, 8);
        }
    }
}
