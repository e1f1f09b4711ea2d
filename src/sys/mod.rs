//! Operating-system interfaces, one backend per system behind the same names (`sys::mem`,
//! `sys::signal`, `sys::threads`, ...). Nothing outside this module names a backend.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::*;

#[cfg(not(target_os = "linux"))]
compile_error!(
    "vignette has no backend for this operating system yet: Linux only for now (Windows and \
     macOS backends are planned)"
);
