//! Linux system interface: the only place, with [`crate::ring`], that uses `unsafe`.
//!
//! Everything here is a thin, documented wrapper over raw system calls, so the rest of the crate
//! is safe code. Items callable from the signal handler say so in a "Signal safety" section.

pub mod dl;
pub mod fault_guard;
pub mod fs;
pub mod handler_stack;
pub mod maps;
pub mod mem;
pub mod signal;
pub mod spawn;
pub mod stack;
pub mod threads;
pub mod time;
