//! # vignette
//!
//! A sampling profiler you can ship inside release binaries. The core interrupts every thread
//! of the process with a signal, walks its stack inside the handler without allocating or
//! locking, and writes a compact, **un-symbolicated** profile: instruction addresses relative
//! to their modules, plus each module's Breakpad debug id and build id. Symbols are resolved
//! later, on another machine (the `tools` feature).
//!
//! ```no_run
//! use vignette::{Clock, Profiler};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut profiler = Profiler::builder()
//!     .frequency(1000)
//!     .clock(Clock::Cpu)
//!     .build()?;
//! profiler.start()?;
//! // ... the work to profile ...
//! let capture = profiler.stop()?;
//! let file = std::fs::File::create("app.vignette")?;
//! capture.write_to(std::io::BufWriter::new(file))?;
//! # Ok(()) }
//! ```
//!
//! Without the default `std` feature the crate is `#![no_std]` and needs only libc: every
//! buffer is mapped with `mmap` at [`Builder::build`], and [`Capture::encode_into`] writes the
//! profile into a caller's buffer.
//!
//! Linux on x86_64 and aarch64, Windows on x86_64, and macOS on x86_64 and arm64 (on Windows
//! and macOS the sampler suspends each thread and unwinds a copy of its stack instead of
//! signalling it; macOS is built and unit-tested on Linux only, never run); other systems
//! and architectures stop the build with an error that names the missing backend.
#![cfg_attr(not(feature = "std"), no_std)]
// The signal path's contract, for every module unless it is exempted below as off that path:
// no panics, so no unwrap, expect, panic or unchecked indexing. (Tests may.)
#![cfg_attr(
    not(test),
    deny(
        clippy::panic,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing
    )
)]

// Modules off the signal path (run in the application's threads or on the sampler thread,
// never in the handler) say so with an inner `allow` of the lints above, at the top of their
// own file.
mod error;
pub mod profile;
#[cfg(feature = "tools")]
pub mod tools;

// The capture backend: Linux, Windows and macOS.
#[cfg(any(target_os = "linux", windows, target_os = "macos"))]
mod collector;
#[cfg(all(
    feature = "std",
    any(target_os = "linux", windows, target_os = "macos")
))]
mod delivery;
#[cfg(all(
    feature = "ffi",
    any(target_os = "linux", windows, target_os = "macos")
))]
pub mod ffi;
#[cfg(any(target_os = "linux", windows, target_os = "macos"))]
mod profiler;

#[cfg(not(any(target_os = "linux", windows, target_os = "macos")))]
compile_error!(
    "vignette has no capture backend for this operating system yet: Linux, Windows and macOS \
     only for now"
);

// vignette's own workings: public only with the `unstable-internals` feature, for its tests,
// benches and fuzz targets (no stability promise); private otherwise, where what only those
// use is allowed to go unused.
#[cfg(all(feature = "unstable-internals", target_os = "linux"))]
#[doc(hidden)]
pub mod code_map;
#[cfg(all(not(feature = "unstable-internals"), target_os = "linux"))]
#[allow(dead_code, unused_imports)]
mod code_map;
#[cfg(all(
    feature = "unstable-internals",
    any(target_os = "linux", windows, target_os = "macos")
))]
pub mod modules;
#[cfg(all(
    not(feature = "unstable-internals"),
    any(target_os = "linux", windows, target_os = "macos")
))]
#[allow(dead_code, unused_imports)]
mod modules;
#[cfg(all(
    feature = "unstable-internals",
    any(target_os = "linux", windows, target_os = "macos")
))]
#[doc(hidden)]
pub mod ring;
#[cfg(all(
    not(feature = "unstable-internals"),
    any(target_os = "linux", windows, target_os = "macos")
))]
#[allow(dead_code, unused_imports)]
mod ring;
#[cfg(all(feature = "unstable-internals", target_os = "linux"))]
#[doc(hidden)]
pub mod snapshot;
#[cfg(all(not(feature = "unstable-internals"), target_os = "linux"))]
#[allow(dead_code, unused_imports)]
mod snapshot;
#[cfg(all(feature = "unstable-internals", target_os = "linux"))]
#[doc(hidden)]
pub mod stacks;
#[cfg(all(not(feature = "unstable-internals"), target_os = "linux"))]
#[allow(dead_code, unused_imports)]
mod stacks;
#[cfg(feature = "unstable-internals")]
#[doc(hidden)]
pub mod unwind;
#[cfg(not(feature = "unstable-internals"))]
#[allow(dead_code, unused_imports)]
mod unwind;

#[cfg(any(target_os = "linux", windows, target_os = "macos"))]
pub mod labels;
#[cfg(any(target_os = "linux", windows, target_os = "macos"))]
pub mod metadata;
#[cfg(any(target_os = "linux", windows, target_os = "macos"))]
mod sampler;
#[cfg(any(target_os = "linux", windows, target_os = "macos"))]
mod sys;

#[cfg(all(
    feature = "std",
    any(target_os = "linux", windows, target_os = "macos")
))]
pub use delivery::{Heartbeat, Triggers};
pub use error::{Error, Result};
#[cfg(any(target_os = "linux", windows, target_os = "macos"))]
pub use profile::Capture;
pub use profile::{
    Backend, Clock, Lost, ObjectFormat, TriggerKind, FORMAT_VERSION, MAX_TRIGGER_NOTE,
};
#[cfg(feature = "std")]
pub use profile::{
    Chunk, Frame, Label, LabelValue, Labels, Module, Profile, Sample, StackNode, Thread, Trigger,
};
#[cfg(any(target_os = "linux", windows, target_os = "macos"))]
pub use profiler::{Builder, Profiler, Target};
#[cfg(any(windows, target_os = "macos"))]
pub use sampler::suspend::Suspensions;
pub use unwind::{EndReason, Unwinder};

/// The README's examples compile (`cargo test` runs them as doctests).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
