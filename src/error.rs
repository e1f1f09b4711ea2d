//! The core's error type: small, `Copy`, and printable without allocating.
// Off the signal path: the signal path's lints (lib.rs) do not bind this module.
#![cfg_attr(
    not(test),
    allow(
        clippy::panic,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing
    )
)]

use core::fmt;

/// Everything that can go wrong while building, running or encoding a profiler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A builder setting is out of range; the text names the setting and its range.
    InvalidConfig(&'static str),
    /// The operating system refused memory for the preallocated buffers (`mmap` failed).
    OutOfMemory,
    /// Another signal handler (not vignette's) already owns the sampling signal. Pick another
    /// signal with `Builder::signal`, or remove the other handler.
    SignalInUse(i32),
    /// Another `Profiler` exists in this process; only one may own the signal at a time.
    AlreadyExists,
    /// A system call failed; `call` names it and `errno` says why.
    Sys {
        /// The call that failed.
        call: &'static str,
        /// The `errno` it returned.
        errno: i32,
    },
    /// The operation needs a stopped profiler, but it is sampling (call `stop` first).
    Running,
    /// The operation needs a running profiler, but it is stopped (call `start` first).
    NotRunning,
    /// The caller's buffer cannot hold the encoded profile; `needed` bytes are required.
    BufferTooSmall {
        /// Bytes the encoded profile needs.
        needed: usize,
    },
    /// The profile bytes end before the profile does: the file was cut short.
    Truncated,
    /// The bytes do not start with the vignette magic: this is not a vignette profile.
    BadMagic,
    /// The profile was written by a newer vignette (format version `found`); this build reads
    /// versions up to `supported`. Upgrade vignette to read it.
    UnsupportedVersion {
        /// Version in the file.
        found: u16,
        /// Newest version this build reads.
        supported: u16,
    },
    /// The profile bytes are damaged; the text says which part is inconsistent.
    Corrupt(&'static str),
    /// Writing the encoded profile failed (the writer returned an error).
    Write,
    /// No thread with this id exists in the process (it may have exited).
    NoSuchThread(i32),
    /// This profiler was built before `fork()` and the caller is the child: its sampler
    /// thread and session belong to the parent. Drop it (that is safe in the child) and build
    /// a new one.
    Forked,
    /// vignette's delivery thread takes the chunks ([`crate::Profiler::deliver`]); the
    /// application cannot take them too. Stop the profiler to end delivery.
    Delivering,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidConfig(what) => write!(f, "invalid configuration: {what}"),
            Error::OutOfMemory => f.write_str("could not map memory for the profiler's buffers"),
            Error::SignalInUse(sig) => write!(
                f,
                "signal {sig} already has a handler that is not vignette's; choose another signal \
                 with Builder::signal"
            ),
            Error::AlreadyExists => {
                f.write_str("another vignette Profiler exists in this process; drop it first")
            }
            Error::Sys { call, errno } => write!(f, "{call} failed with errno {errno}"),
            Error::Running => f.write_str("the profiler is running; stop it first"),
            Error::NotRunning => f.write_str("the profiler is not running; start it first"),
            Error::BufferTooSmall { needed } => {
                write!(
                    f,
                    "buffer too small: the encoded profile needs {needed} bytes"
                )
            }
            Error::Truncated => f.write_str("the profile is truncated (it ends too early)"),
            Error::BadMagic => f.write_str("not a vignette profile (bad magic bytes)"),
            Error::UnsupportedVersion { found, supported } => write!(
                f,
                "profile format version {found} is newer than this build supports \
                 (up to {supported}); upgrade vignette"
            ),
            Error::Corrupt(what) => write!(f, "the profile is corrupt: {what}"),
            Error::Write => f.write_str("writing the profile failed"),
            Error::NoSuchThread(tid) => {
                write!(f, "no thread {tid} in this process (has it exited?)")
            }
            Error::Forked => f.write_str(
                "this profiler was built in the parent process before fork(); drop it and \
                 build a new one in the child",
            ),
            Error::Delivering => f.write_str(
                "the delivery thread takes this profiler's chunks; use a trigger, or stop \
                 the profiler",
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// Shorthand for results with the core [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;
