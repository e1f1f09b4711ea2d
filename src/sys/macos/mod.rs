//! macOS system interface: memory, threads, clocks, dyld's image list, and the suspension of
//! a thread to read its registers and copy its stack. Most of the macOS backend's `unsafe` is
//! here, each call a thin, documented wrapper over a Mach, dyld or pthread function ([`api`]).
//!
//! As on Windows, there is no signal handler: the sampler thread suspends each thread it
//! samples (`thread_suspend`), and while a thread is suspended it may hold any lock (malloc's,
//! dyld's), so everything [`suspend::capture`] does until `thread_resume` is a Mach call that
//! takes no user-mode lock (`thread_get_state`, `mach_vm_read_overwrite`). Items that may run
//! then say so in a "Suspension safety" section.
//!
//! Built and linted on Linux for `x86_64-apple-darwin` and `aarch64-apple-darwin`; never run
//! here (no macOS machine).

pub mod api;
pub mod facts;
pub mod loader;
pub mod memory;
pub use super::posix::pages;
pub mod spawn;
pub mod suspend;
pub mod threads;
pub mod time;
