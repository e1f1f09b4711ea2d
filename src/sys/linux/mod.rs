//! Linux system interface: system calls, signals, memory and the fault-recovering reads. Most
//! of the crate's `unsafe` is here; the rest is in the lock-free structures that hand memory
//! between the handler and the sampler thread (`ring`, `snapshot`, `code_map`), in the
//! sampler's handler entry, and in the `Zeroed` markers of mapped tables.
//!
//! Everything here is a thin, documented wrapper over raw system calls. Items callable from the signal handler say so in a "Signal safety" section.

mod arch;
pub mod dl;
pub mod facts;
pub mod fault_guard;
pub mod fs;
pub mod handler_stack;
pub mod maps;
pub use super::posix::pages;
pub mod signal;
pub mod spawn;
pub mod stack;
pub mod thread_timer;
pub mod threads;
pub mod time;
