//! The sampler's thread ([`RawThread`], shared with Linux) and its name.

pub use crate::sys::posix::thread::RawThread;

/// Names the calling thread (macOS names only the calling thread).
pub fn set_current_name(name: &core::ffi::CStr) {
    // SAFETY: name is NUL-terminated.
    unsafe { libc::pthread_setname_np(name.as_ptr()) };
}
