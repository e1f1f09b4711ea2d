//! Operating-system interfaces, one backend per system behind the same names (`sys::pages`,
//! `sys::threads`, `sys::time`, ...), and what is built on them for every system
//! ([`mem`]) or for those that sample by suspending threads (`suspended`). Nothing outside this module names a backend; `lib.rs` says which systems have
//! one.

#[cfg(feature = "std")]
pub mod here;
pub mod mem;
#[cfg(any(windows, target_os = "macos"))]
pub mod suspended;

#[cfg(any(target_os = "linux", target_os = "android"))]
mod linux;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use linux::*;
#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
pub use macos::*;
#[cfg(unix)]
mod posix;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::*;
