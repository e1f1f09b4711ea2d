//! Zeroed pages from `VirtualAlloc`, for [`crate::sys::mem`].

use super::api;
use crate::error::{Error, Result};

/// Commits `bytes` of zeroed, page-aligned, readable and writable memory.
pub(crate) fn map(bytes: usize) -> Result<*mut core::ffi::c_void> {
    // SAFETY: a fresh allocation with no address hint touches no existing memory.
    let ptr = unsafe {
        api::VirtualAlloc(
            core::ptr::null_mut(),
            bytes,
            api::MEM_COMMIT | api::MEM_RESERVE,
            api::PAGE_READWRITE,
        )
    };
    if ptr.is_null() {
        Err(Error::OutOfMemory)
    } else {
        Ok(ptr)
    }
}

/// Windows has no `fork`: nothing to do (see the POSIX version).
///
/// # Safety
/// None needed; `unsafe` as the POSIX version is.
pub(crate) unsafe fn zero_in_child(_ptr: *mut core::ffi::c_void, _bytes: usize) {}

/// Releases what [`map`] committed.
///
/// # Safety
/// `ptr` must come from [`map`] and nothing may use it any more.
pub(crate) unsafe fn unmap(ptr: *mut core::ffi::c_void, _bytes: usize) {
    // SAFETY: the caller's promise; MEM_RELEASE frees the whole allocation.
    unsafe { api::VirtualFree(ptr, 0, api::MEM_RELEASE) };
}
