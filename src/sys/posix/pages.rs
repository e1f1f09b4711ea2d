//! Anonymous memory mappings, for [`crate::sys::mem`] and the handler's stacks.

use crate::error::{Error, Result};

/// Maps `bytes` of zeroed, page-aligned, readable and writable memory (`extra_flags` are
/// added to `MAP_PRIVATE | MAP_ANONYMOUS`).
pub(crate) fn map_anonymous(bytes: usize, extra_flags: i32) -> Result<*mut core::ffi::c_void> {
    // SAFETY: an anonymous private mapping with no address hint touches no existing memory.
    let ptr = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | extra_flags,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        Err(Error::OutOfMemory)
    } else {
        Ok(ptr)
    }
}

/// Maps `bytes` of zeroed, page-aligned, readable and writable memory.
pub(crate) fn map(bytes: usize) -> Result<*mut core::ffi::c_void> {
    map_anonymous(bytes, 0)
}

/// Asks that a child forked from this process find the pages of a [`map`] mapping zeroed
/// rather than copied (`MADV_WIPEONFORK`, Linux 4.14 and later; a no-op elsewhere or if the
/// kernel refuses): a fork then neither copies their page tables nor leaves the parent to take
/// copy-on-write faults on every page it writes after.
///
/// # Safety
/// `ptr` and `bytes` must describe exactly one such mapping.
pub(crate) unsafe fn zero_in_child(ptr: *mut core::ffi::c_void, bytes: usize) {
    // (Miri runs no `madvise`, and forks nothing.)
    #[cfg(all(any(target_os = "linux", target_os = "android"), not(miri)))]
    // SAFETY: the caller's promise; advice changes no content in this process.
    unsafe {
        libc::madvise(ptr, bytes, libc::MADV_WIPEONFORK)
    };
    #[cfg(any(not(any(target_os = "linux", target_os = "android")), miri))]
    let _ = (ptr, bytes);
}

/// Unmaps what [`map`] or [`map_anonymous`] mapped.
///
/// # Safety
/// `ptr` and `bytes` must describe exactly one such mapping, which nothing uses any more.
pub(crate) unsafe fn unmap(ptr: *mut core::ffi::c_void, bytes: usize) {
    // SAFETY: the caller's promise.
    unsafe { libc::munmap(ptr, bytes) };
}

/// Grows or shrinks a mapping from [`map_anonymous`] from `old` to `new` bytes, moving it if
/// `may_move` (the kernel's `mremap`, called directly: not every C library declares it).
/// `None` if it could not.
///
/// # Safety
/// `ptr` and `old` must describe exactly one such mapping; if it moves, nothing may use the
/// old address any more.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) unsafe fn remap(
    ptr: *mut core::ffi::c_void,
    old: usize,
    new: usize,
    may_move: bool,
) -> Option<*mut core::ffi::c_void> {
    /// `MREMAP_MAYMOVE` in the kernel's ABI.
    const MAY_MOVE: libc::c_long = 1;
    // SAFETY: the caller's promise; the kernel checks the range.
    let p = unsafe {
        libc::syscall(
            libc::SYS_mremap,
            ptr,
            old,
            new,
            if may_move { MAY_MOVE } else { 0 },
        )
    };
    (p != -1).then_some(p as usize as *mut core::ffi::c_void)
}
