//! The sampler's thread ([`RawThread`], shared with macOS) and its name.

pub use crate::sys::posix::thread::RawThread;

/// Names the calling thread (at most 15 bytes are kept).
pub fn set_current_name(name: &core::ffi::CStr) {
    // SAFETY: name is NUL-terminated; pthread_self is always valid.
    unsafe { libc::pthread_setname_np(libc::pthread_self(), name.as_ptr()) };
}
