//! Windows system interface: memory, threads, clocks, the loader's module list, and the
//! suspension of a thread to read its registers and copy its stack. Most of the Windows
//! backend's `unsafe` is here, each call a thin, documented wrapper over a Win32 or NT
//! function ([`api`]).
//!
//! There is no signal handler on Windows: the sampler thread suspends each thread it samples.
//! While a thread is suspended it may hold any lock (the heap's, the loader's), so everything
//! [`suspend::capture`] does between `SuspendThread` and `ResumeThread` is a system call that
//! takes no user-mode lock: `GetThreadContext`, `ReadProcessMemory` on this process. Items
//! that may run then say so in a "Suspension safety" section.

pub mod api;
pub mod facts;
pub mod loader;
pub mod memory;
pub mod pages;
pub mod spawn;
pub mod suspend;
pub mod threads;
pub mod time;
