//! A bare `pthread` for the sampler, so the core needs neither `std` nor an allocator.

use core::ffi::c_void;

use crate::error::{Error, Result};

/// A joinable thread running an `extern "C"` entry point.
pub struct RawThread(libc::pthread_t);

impl RawThread {
    /// Starts `entry(arg)` on a new thread with a 256 KiB stack.
    ///
    /// # Safety
    /// `arg` must stay valid for whatever `entry` does with it until [`RawThread::join`] returns.
    pub unsafe fn spawn(
        entry: extern "C" fn(*mut c_void) -> *mut c_void,
        arg: *mut c_void,
    ) -> Result<Self> {
        // SAFETY: attr is initialised by pthread_attr_init before use and destroyed after;
        // `id` is written by pthread_create before it is read.
        unsafe {
            let mut attr: libc::pthread_attr_t = core::mem::zeroed();
            libc::pthread_attr_init(&mut attr);
            libc::pthread_attr_setstacksize(&mut attr, 256 * 1024);
            let mut id: libc::pthread_t = core::mem::zeroed();
            let rc = libc::pthread_create(&mut id, &attr, entry, arg);
            libc::pthread_attr_destroy(&mut attr);
            if rc != 0 {
                return Err(Error::Sys {
                    call: "pthread_create",
                    errno: rc,
                });
            }
            Ok(RawThread(id))
        }
    }

    /// Waits for the thread to finish.
    pub fn join(self) -> Result<()> {
        // SAFETY: self.0 is a joinable thread created by spawn and joined only once (self moves).
        let rc = unsafe { libc::pthread_join(self.0, core::ptr::null_mut()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(Error::Sys {
                call: "pthread_join",
                errno: rc,
            })
        }
    }
}
