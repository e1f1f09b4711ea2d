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
//!
//! ## Where things are (for contributors)
//!
//! One sample's way through the house, on Linux:
//!
//! 1. `profiler.rs`: [`Builder::build`] maps every buffer and installs the handler;
//!    [`Profiler::start`] starts the sampler thread (`sampler/`). The `signal` engine
//!    (`sampler/signal/`: `timed.rs` arms each thread's perf event or CPU timer, `sending.rs`
//!    signals threads from the sampler thread, `watch.rs` finds threads) serves Linux; the
//!    `suspend` engine (`sampler/suspend/`) serves Windows and macOS.
//! 2. The signal reaches `sampler/signal/handler.rs` on the sampled thread: registers from the
//!    `ucontext` (`sys/linux/signal.rs`), a walk of the stack (`unwind/walk.rs` with the rules
//!    of `unwind/compiled.rs`, the CFI interpreter `unwind/cfi/`, frame pointers `unwind/fp.rs`)
//!    over reads that cannot fault (`sys/linux/fault_guard.rs`), against the modules' copied
//!    unwind sections (`code_map.rs`, published through `snapshot.rs`), into a slot of the ring
//!    (`ring.rs`) with the thread's labels (`labels.rs`).
//! 3. The sampler thread drains the ring into the session's tables (`collector/`: frames,
//!    stack prefix tree, threads, modules by epoch in `modules/`), rotates chunks and keeps the
//!    flight recorder (`sampler/series.rs`), and hands them to the delivery thread
//!    (`delivery.rs`).
//! 4. [`Capture`] encodes the tables as `profiles/FORMAT.md` says (`profile/encode.rs`);
//!    [`Profile::decode`] reads them back (`profile/decode.rs`).
//! 5. Off the machine, the `tools` feature (`tools/`): symbol files (`sym_writer.rs`,
//!    `sym_file.rs`, `store.rs`, `remote.rs`), resolution (`resolve.rs`), the converters
//!    (`speedscope.rs`, `pprof.rs`, `firefox.rs`, `collapsed.rs`, `svg.rs`), `report.rs`,
//!    `merge.rs`, `diff.rs`, `info.rs`, `record.rs`; the CLI is `tools/vignette.rs` at the
//!    repository's top.
//!
//! 6. Heap profiles: `alloc/` wraps the global allocator, samples allocations by bytes, walks
//!    the allocating thread's own stack (`sampler/signal/handler.rs`'s `walk_own_stack`, from
//!    registers read by `sys/here.rs`) and keeps sites and live allocations in lock-free
//!    tables; `collector/heap.rs` interns them into each profile.
//!
//! Everything that touches the operating system is in `sys/` (`linux/`, `windows/`, `macos/`,
//! `posix/`); the unwinders for PE (`unwind/pe/`) and Mach-O (`unwind/macho/`,
//! `unwind/compact/`) beside the ELF one; the C API in `ffi.rs` and `include/vignette.h`.
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
#[cfg(all(
    feature = "std",
    any(
        target_os = "linux",
        target_os = "android",
        windows,
        target_os = "macos"
    )
))]
pub mod alloc;
mod error;
pub mod profile;
#[cfg(feature = "tools")]
pub mod tools;

// The capture backend: Linux, Windows and macOS.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    windows,
    target_os = "macos"
))]
mod collector;
#[cfg(all(
    feature = "std",
    any(
        target_os = "linux",
        target_os = "android",
        windows,
        target_os = "macos"
    )
))]
mod delivery;
#[cfg(all(
    feature = "ffi",
    any(
        target_os = "linux",
        target_os = "android",
        windows,
        target_os = "macos"
    )
))]
pub mod ffi;
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    windows,
    target_os = "macos"
))]
mod profiler;

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    windows,
    target_os = "macos"
)))]
compile_error!(
    "vignette has no capture backend for this operating system yet: Linux (and Android), \
     Windows and macOS only for now"
);

// vignette's own workings: public only with the `unstable-internals` feature, for its tests,
// benches and fuzz targets (no stability promise); private otherwise, where what only those
// use is allowed to go unused.
#[cfg(all(
    feature = "unstable-internals",
    any(target_os = "linux", target_os = "android")
))]
#[doc(hidden)]
pub mod code_map;
#[cfg(all(
    not(feature = "unstable-internals"),
    any(target_os = "linux", target_os = "android")
))]
#[allow(dead_code, unused_imports)]
mod code_map;
#[cfg(all(
    feature = "unstable-internals",
    any(
        target_os = "linux",
        target_os = "android",
        windows,
        target_os = "macos"
    )
))]
pub mod modules;
#[cfg(all(
    not(feature = "unstable-internals"),
    any(
        target_os = "linux",
        target_os = "android",
        windows,
        target_os = "macos"
    )
))]
#[allow(dead_code, unused_imports)]
mod modules;
#[cfg(all(
    feature = "unstable-internals",
    any(
        target_os = "linux",
        target_os = "android",
        windows,
        target_os = "macos"
    )
))]
#[doc(hidden)]
pub mod ring;
#[cfg(all(
    not(feature = "unstable-internals"),
    any(
        target_os = "linux",
        target_os = "android",
        windows,
        target_os = "macos"
    )
))]
#[allow(dead_code, unused_imports)]
mod ring;
#[cfg(all(
    feature = "unstable-internals",
    any(target_os = "linux", target_os = "android")
))]
#[doc(hidden)]
pub mod snapshot;
#[cfg(all(
    not(feature = "unstable-internals"),
    any(target_os = "linux", target_os = "android")
))]
#[allow(dead_code, unused_imports)]
mod snapshot;
#[cfg(all(
    feature = "unstable-internals",
    any(target_os = "linux", target_os = "android")
))]
#[doc(hidden)]
pub mod stacks;
#[cfg(all(
    not(feature = "unstable-internals"),
    any(target_os = "linux", target_os = "android")
))]
#[allow(dead_code, unused_imports)]
mod stacks;
#[cfg(feature = "unstable-internals")]
#[doc(hidden)]
pub mod unwind;
#[cfg(not(feature = "unstable-internals"))]
#[allow(dead_code, unused_imports)]
mod unwind;

#[cfg(any(
    target_os = "linux",
    target_os = "android",
    windows,
    target_os = "macos"
))]
pub mod labels;
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    windows,
    target_os = "macos"
))]
pub mod metadata;
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    windows,
    target_os = "macos"
))]
mod sampler;
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    windows,
    target_os = "macos"
))]
mod sys;

#[cfg(all(
    feature = "std",
    any(
        target_os = "linux",
        target_os = "android",
        windows,
        target_os = "macos"
    )
))]
pub use delivery::{Heartbeat, Triggers};
pub use error::{Error, Result};
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    windows,
    target_os = "macos"
))]
pub use profile::Capture;
pub use profile::{
    Backend, Clock, Lost, ObjectFormat, TriggerKind, FORMAT_VERSION, MAX_TRIGGER_NOTE,
};
#[cfg(feature = "std")]
pub use profile::{
    Chunk, Frame, Heap, HeapLost, HeapSite, JitSymbol, Label, LabelValue, Labels, Module, Profile,
    RateChange, Sample, StackNode, Thread, Trigger,
};
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    windows,
    target_os = "macos"
))]
pub use profiler::{Builder, Overhead, Profiler, Target};
#[cfg(any(windows, target_os = "macos"))]
pub use sampler::suspend::Suspensions;
pub use unwind::{EndReason, Unwinder};

/// The README's examples compile (`cargo test` runs them as doctests).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The guide's examples compile too.
#[cfg(doctest)]
#[doc = include_str!("../GUIDE.md")]
struct GuideDoctests;
