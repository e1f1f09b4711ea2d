//! Reading this process's memory without faulting: `mach_vm_read_overwrite` on the task's own
//! port fails, instead of faulting, on pages that are unmapped or protected at that moment.

use super::api;

/// Fills `buf` from `avma`; `false` (and `buf` unspecified) if any byte could not be read.
///
/// # Suspension safety
/// A Mach call into the kernel that takes no user-mode lock (its reply port is the calling
/// thread's, made once): safe while another thread is suspended.
pub fn read(avma: u64, buf: &mut [u8]) -> bool {
    if buf.is_empty() {
        return true;
    }
    let mut got = 0u64;
    // SAFETY: the destination is our own writable buffer of buf.len() bytes; the source is
    // only read by the kernel, which reports unreadable pages as a failure.
    let kr = unsafe {
        api::mach_vm_read_overwrite(
            api::task_self(),
            avma,
            buf.len() as u64,
            buf.as_mut_ptr() as u64,
            &mut got,
        )
    };
    kr == api::KERN_SUCCESS && got == buf.len() as u64
}

/// [`read`] as an [`crate::unwind::ImageReader`]: module memory for the unwinder.
pub struct ProcessMemory;

impl crate::unwind::ImageReader for ProcessMemory {
    fn read(&self, avma: u64, buf: &mut [u8]) -> bool {
        read(avma, buf)
    }
}
