//! A bare Win32 thread for the sampler, so the core needs neither `std` nor an allocator.

use core::ffi::c_void;

use super::api;
use crate::error::{Error, Result};

/// A joinable thread.
pub struct RawThread(api::HANDLE);

impl RawThread {
    /// Starts `entry(arg)` on a new thread with a 256 KiB stack.
    ///
    /// # Safety
    /// `arg` must stay valid for whatever `entry` does with it until [`RawThread::join`] returns.
    pub unsafe fn spawn(entry: api::ThreadStart, arg: *mut c_void) -> Result<Self> {
        // SAFETY: entry and arg are the caller's; no attributes, default flags.
        let h = unsafe {
            api::CreateThread(
                core::ptr::null_mut(),
                256 * 1024,
                entry,
                arg,
                0,
                core::ptr::null_mut(),
            )
        };
        if h.is_null() {
            // SAFETY: reads the calling thread's last error.
            let errno = unsafe { api::GetLastError() } as i32;
            return Err(Error::Sys {
                call: "CreateThread",
                errno,
            });
        }
        Ok(RawThread(h))
    }

    /// Waits for the thread to finish.
    pub fn join(self) -> Result<()> {
        // SAFETY: our own thread handle, waited on and closed once (self moves).
        let rc = unsafe {
            let rc = api::WaitForSingleObject(self.0, api::INFINITE);
            api::CloseHandle(self.0);
            rc
        };
        if rc == api::WAIT_OBJECT_0 {
            Ok(())
        } else {
            Err(Error::Sys {
                call: "WaitForSingleObject",
                errno: rc as i32,
            })
        }
    }
}
