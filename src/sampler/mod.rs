//! The sampling machinery, in one of two engines with the same names (`Shared`, `Job`,
//! `Running`, `claim_handler`, `drain`, `sample_now`, ...), which `profiler.rs` drives:
//!
//! - [`signal`] (Linux): the sampler thread sends each thread a signal, and the thread walks
//!   its own stack in the handler;
//! - `suspend` (Windows): the sampler thread suspends each thread, copies its stack, resumes
//!   it, and walks the copy.

#[cfg(target_os = "linux")]
pub(crate) mod signal;
#[cfg(target_os = "linux")]
pub(crate) use signal::*;
#[cfg(windows)]
pub(crate) mod suspend;
#[cfg(windows)]
pub(crate) use suspend::*;
