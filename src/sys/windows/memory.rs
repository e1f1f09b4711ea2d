//! Reading this process's memory without faulting: `ReadProcessMemory` on the current process
//! fails, instead of faulting, on pages that are unmapped or protected at that moment.

use super::api;

/// Fills `buf` from `avma`; `false` (and `buf` unspecified) if any byte could not be read.
///
/// # Suspension safety
/// A system call that takes no user-mode lock: safe while another thread is suspended.
pub fn read(avma: u64, buf: &mut [u8]) -> bool {
    if buf.is_empty() {
        return true;
    }
    let mut got = 0usize;
    // SAFETY: the destination is our own writable buffer of buf.len() bytes; the source is
    // only read by the kernel, which reports unreadable pages as a failure.
    let ok = unsafe {
        api::ReadProcessMemory(
            api::GetCurrentProcess(),
            avma as usize as *const core::ffi::c_void,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut got,
        )
    };
    ok != 0 && got == buf.len()
}

/// [`read`] as an [`crate::unwind::ImageReader`]: module memory for the x64 unwinder.
pub struct ProcessMemory;

impl crate::unwind::ImageReader for ProcessMemory {
    fn read(&self, avma: u64, buf: &mut [u8]) -> bool {
        read(avma, buf)
    }
}
