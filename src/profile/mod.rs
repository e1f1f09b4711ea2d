//! The profile: what a session captured, as it travels (see `profiles/FORMAT.md`).
//!
//! Encoding works straight from the profiler's fixed tables ([`crate::Capture`]) without
//! allocating; decoding (feature `std`) gives the owned [`Profile`].
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

#[cfg(feature = "std")]
mod decode;
mod encode;
mod packed;

pub use encode::Capture;
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    windows,
    target_os = "macos"
))]
pub(crate) use encode::CaptureConfig;

use serde::{Deserialize, Serialize};

/// The eight bytes every profile starts with.
pub const MAGIC: [u8; 8] = *b"VIGNETTE";
/// The format version this build writes (and the newest it reads).
pub const FORMAT_VERSION: u16 = 11;

/// The object format of a module, which says how its code id reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[repr(u8)]
pub enum ObjectFormat {
    /// ELF (Linux): the code id is the GNU build ID.
    #[default]
    Elf = 0,
    /// PE (Windows): the code id is the link time stamp and the image size, 4 bytes each,
    /// big-endian.
    Pe = 1,
    /// Mach-O (macOS): the code id is the `LC_UUID`'s 16 bytes.
    MachO = 2,
}

/// What drives sampling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Clock {
    /// Per-thread CPU time: a thread is sampled once per interval of CPU it uses, so idle
    /// threads cost nothing.
    #[default]
    Cpu,
    /// Wall-clock time: every thread is sampled every interval, running or blocked.
    Wall,
}

/// What took the samples: which mechanism interrupted the threads (format 6; older profiles
/// decode as [`Backend::Unrecorded`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[repr(u8)]
pub enum Backend {
    /// The profile predates format 6, which records it.
    #[default]
    Unrecorded = 0,
    /// vignette's sampler thread signals each thread per interval (of wall time, or of the
    /// thread's CPU time, which it reads every tick).
    SamplerThread = 1,
    /// The kernel signals each thread after every interval of its own CPU time (Linux perf
    /// events, software `task-clock`): high-resolution timers, no cost for idle threads.
    PerfEvents = 2,
    /// The kernel signals each thread after every interval of its own CPU time (POSIX
    /// per-thread CPU timers): no cost for idle threads, but the kernel checks these timers
    /// only at its scheduler tick, so above its rate a sample stands for several intervals.
    CpuTimers = 3,
    /// vignette's sampler thread suspends each thread and walks a copy of its stack (Windows,
    /// macOS).
    Suspension = 4,
}

impl Backend {
    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Unrecorded => "unrecorded",
            Backend::SamplerThread => "sampler thread",
            Backend::PerfEvents => "perf events (task-clock)",
            Backend::CpuTimers => "thread CPU timers",
            Backend::Suspension => "thread suspension",
        }
    }
}

/// Samples the session could not keep, by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lost {
    /// The sample ring was full when a handler ran (raise `ring_capacity`).
    pub ring_full: u64,
    /// The sample, frame or stack tables were full (raise `sample_capacity`, `frame_capacity`).
    pub tables_full: u64,
    /// A thread had not answered the previous signal (it is stopped, or did not run), or
    /// stopped the session with one unanswered.
    pub unanswered: u64,
    /// Intervals missed by live threads that had no slot because `max_threads` threads were
    /// live already (counted per thread-scan period: an upper bound under `Clock::Cpu`, where
    /// an idle thread would not have been sampled), or whose sample found the profile's thread
    /// table full (raise `max_threads`).
    pub threads_over_capacity: u64,
    /// Intervals not sampled while the program had its own handler on vignette's signal
    /// (sampling pauses until the program leaves the signal at its default action again).
    pub signal_taken: u64,
    /// Intervals of the process's CPU time (under [`Clock::Cpu`]) that neither a sample nor
    /// another count covers: threads that exited before the sampler found them, and each
    /// thread's last partial interval. Format 8 on; 0 under [`Clock::Wall`].
    pub unseen: u64,
    /// Intervals of threads that block vignette's signal (as threads that a program starts
    /// with every signal blocked do: xz's workers, many thread pools), which no signal can
    /// sample. Format 9 on.
    pub signal_blocked: u64,
}

impl Lost {
    /// All lost samples.
    pub fn total(&self) -> u64 {
        self.by_reason().iter().map(|&(_, n)| n).sum()
    }

    /// Each count with its name (`ring_full`, ..., `unseen`), in the format's order.
    pub fn by_reason(&self) -> [(&'static str, u64); 7] {
        [
            ("ring_full", self.ring_full),
            ("tables_full", self.tables_full),
            ("unanswered", self.unanswered),
            ("threads_over_capacity", self.threads_over_capacity),
            ("signal_taken", self.signal_taken),
            ("unseen", self.unseen),
            ("signal_blocked", self.signal_blocked),
        ]
    }
}

impl Lost {
    /// What a count's name means, in a few words, for people reading a report.
    pub fn meaning(reason: &str) -> &'static str {
        match reason {
            "ring_full" => "the sample ring was full",
            "tables_full" => "the profile's tables were full",
            "unanswered" => "threads did not answer a signal in time",
            "threads_over_capacity" => "threads beyond max_threads",
            "signal_taken" => "the program had its own handler on the signal",
            "unseen" => {
                "CPU no sample covered: threads gone before they were found, last partial intervals"
            }
            "signal_blocked" => "threads that block vignette's signal",
            _ => "",
        }
    }
}

impl core::ops::AddAssign for Lost {
    fn add_assign(&mut self, b: Lost) {
        self.ring_full += b.ring_full;
        self.tables_full += b.tables_full;
        self.unanswered += b.unanswered;
        self.threads_over_capacity += b.threads_over_capacity;
        self.signal_taken += b.signal_taken;
        self.unseen += b.unseen;
        self.signal_blocked += b.signal_blocked;
    }
}

/// What made a profile be captured at that moment (a flight recorder's trigger).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum TriggerKind {
    /// The application asked ([`crate::Profiler::window`], a trigger handle, the C API).
    Manual = 1,
    /// A thread's heartbeat was later than its threshold: the thread looked hung.
    Hang = 2,
    /// A thread panicked.
    Panic = 3,
    /// The heap in use grew past a threshold ([`crate::Triggers::heap_over`]; format 11 on).
    Heap = 4,
}

impl TriggerKind {
    /// The kind coded as `v`, if any.
    pub fn from_u8(v: u8) -> Option<TriggerKind> {
        [
            TriggerKind::Manual,
            TriggerKind::Hang,
            TriggerKind::Panic,
            TriggerKind::Heap,
        ]
        .into_iter()
        .find(|k| *k as u8 == v)
    }

    /// A lowercase name for reports (`manual`, `hang`, `panic`).
    pub fn name(self) -> &'static str {
        match self {
            TriggerKind::Manual => "manual",
            TriggerKind::Hang => "hang",
            TriggerKind::Panic => "panic",
            TriggerKind::Heap => "heap",
        }
    }
}

/// The longest note a trigger carries, in bytes (longer notes are cut at a character
/// boundary).
pub const MAX_TRIGGER_NOTE: usize = 96;

#[cfg(feature = "std")]
pub use owned::*;

#[cfg(feature = "std")]
mod owned {
    use super::{Backend, Clock, Lost, ObjectFormat, TriggerKind};
    use crate::unwind::EndReason;
    use serde::{Deserialize, Serialize};
    use std::string::String;
    use std::vec::Vec;

    /// A decoded profile.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Profile {
        /// Wall-clock start, nanoseconds since the Unix epoch.
        pub start_unix_ns: u64,
        /// Session length in nanoseconds.
        pub duration_ns: u64,
        /// The sampling clock.
        pub clock: Clock,
        /// Requested sampling interval in nanoseconds.
        pub interval_ns: u64,
        /// Frame limit per sample.
        pub max_frames: u32,
        /// Every module seen during the session.
        pub modules: Vec<Module>,
        /// Distinct frames.
        pub frames: Vec<Frame>,
        /// The stack prefix tree: each node is a frame under a parent node.
        pub stacks: Vec<StackNode>,
        /// Samples, per thread.
        pub threads: Vec<Thread>,
        /// Samples that could not be kept.
        pub lost: Lost,
        /// Where this profile sits in a series of rotated chunks or flight-recorder windows.
        pub chunk: Chunk,
        /// The label sets samples refer to, with the names they use.
        pub labels: Labels,
        /// What took the samples.
        pub backend: Backend,
        /// What the application said about itself ([`crate::Builder::metadata`]): key-value
        /// pairs in the order it set them (format 8 on).
        pub metadata: Vec<(String, String)>,
        /// Facts about the system it ran on (`os`, `os_version`, `arch`, `cpu`, `cores`,
        /// `memory_gib`, `vignette`; see `vignette::metadata::system_facts`), as far as it
        /// told them (format 8 on).
        pub system: Vec<(String, String)>,
        /// The CPU time the process used in the session, less vignette's sampler thread, in
        /// nanoseconds (0: not measured): with `duration_ns`, what the profile was exposed to,
        /// to normalise across profiles (format 8 on).
        pub process_cpu_ns: u64,
        /// The process id (0: not recorded): on Linux its main thread is the thread whose id
        /// this is (format 8 on).
        pub pid: u32,
        /// When an overhead budget ([`crate::Builder::max_overhead`]) changed the sampling
        /// interval: from which time on (nanoseconds after the start) the sampler ticked at
        /// which interval, oldest first; empty while it ticked at `interval_ns` throughout
        /// (format 9 on).
        pub rates: Vec<RateChange>,
        /// Names of sampled code outside every module, from the JIT's perf map (format 10;
        /// empty without one): a frame with no module is named by the last entry that covers
        /// its address.
        pub jit: Vec<JitSymbol>,
        /// The heap, when the profiler sampled allocations ([`crate::Builder::sample_allocations`];
        /// format 11 on).
        pub heap: Option<Heap>,
    }

    /// The heap as the allocation sampler estimated it (see `vignette::alloc`).
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Heap {
        /// The mean bytes between sampled allocations.
        pub mean_bytes: u64,
        /// Allocations sampled since sampling began.
        pub samples: u64,
        /// Per stack: what was allocated there since sampling began, and what of it was still
        /// live when the profile was captured.
        pub sites: Vec<HeapSite>,
        /// Sampled allocations kept with no stack, or not followed to their free.
        pub lost: HeapLost,
    }

    /// One stack's allocations (estimates: each sampled allocation of `s` bytes stands for
    /// `s / p` bytes and `1 / p` objects, `p` its chance of being sampled).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct HeapSite {
        /// Index of the innermost stack node (the allocation's caller).
        pub stack: u32,
        /// Bytes allocated.
        pub alloc_bytes: u64,
        /// Objects allocated.
        pub alloc_objects: u64,
        /// Bytes still live.
        pub inuse_bytes: u64,
        /// Objects still live.
        pub inuse_objects: u64,
    }

    /// Sampled allocations the heap sampler could not keep whole, by cause.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct HeapLost {
        /// Their stack found the table of distinct stacks full (kept with no stack).
        pub sites_full: u64,
        /// Their stack could not be walked: no profiler was running, the thread blocked
        /// `SIGSEGV`, or the system has no own-stack walk yet (kept with no stack).
        pub unwalked: u64,
        /// Their address found the table of live allocations full: counted as allocated,
        /// never as live.
        pub untracked: u64,
        /// Allocations made inside the sampler itself (a signal handler allocating while its
        /// thread was sampling): not sampled.
        pub reentrant: u64,
    }

    /// The sampling interval from a moment on (see [`Profile::rates`]).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RateChange {
        /// From when, nanoseconds after the profile's start.
        pub at_ns: u64,
        /// The interval between the sampler's ticks from then on, in nanoseconds; 0 when it
        /// changed too often to record from then on (the samples' weights still count the
        /// intervals each stands for).
        pub interval_ns: u64,
    }

    /// Labels: the names, and the distinct sets samples carry ([`Sample::labels`]).
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Labels {
        /// Key names (a [`Label::key`] indexes them).
        pub keys: Vec<String>,
        /// String values (a [`LabelValue::Str`] indexes them).
        pub strings: Vec<String>,
        /// Distinct label sets.
        pub sets: Vec<Vec<Label>>,
    }

    /// One label of a set.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub struct Label {
        /// Index into [`Labels::keys`].
        pub key: u32,
        /// Its value.
        pub value: LabelValue,
    }

    /// A label's value.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum LabelValue {
        /// An integer.
        Int(i64),
        /// An index into [`Labels::strings`].
        Str(u32),
    }

    impl Labels {
        /// The labels of set `labels` (a [`Sample::labels`]: 0 for none) as (key, value): an
        /// integer, or a string (`Err`).
        pub fn entries(
            &self,
            labels: u32,
        ) -> impl Iterator<Item = (&str, core::result::Result<i64, &str>)> + '_ {
            let set = labels
                .checked_sub(1)
                .and_then(|i| self.sets.get(i as usize));
            set.into_iter().flatten().map(|l| {
                let key = self.keys.get(l.key as usize).map_or("", String::as_str);
                let value = match l.value {
                    LabelValue::Int(v) => Ok(v),
                    LabelValue::Str(i) => {
                        Err(self.strings.get(i as usize).map_or("", String::as_str))
                    }
                };
                (key, value)
            })
        }

        /// The labels of set `labels` (a [`Sample::labels`]: 0 for none) as (key, value text).
        pub fn of(
            &self,
            labels: u32,
        ) -> impl Iterator<Item = (&str, std::borrow::Cow<'_, str>)> + '_ {
            self.entries(labels).map(|(key, value)| {
                let value = match value {
                    Ok(v) => std::borrow::Cow::Owned(std::format!("{v}")),
                    Err(s) => std::borrow::Cow::Borrowed(s),
                };
                (key, value)
            })
        }
    }

    /// A profile's place in a series: the chunks one session is rotated into, or the windows
    /// a flight recorder captures (format 5; older profiles decode with the default).
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Chunk {
        /// Counts the chunks (or windows) of a session from 0 at its start; consecutive
        /// chunks have consecutive numbers, so a gap means one went missing.
        pub sequence: u64,
        /// The flight recorder's window in nanoseconds, 0 when the profile is not a window.
        pub window_ns: u64,
        /// Samples the flight recorder dropped as older than its window, since it started.
        pub evicted: u64,
        /// What made the profile be captured, if a trigger did.
        pub trigger: Option<Trigger>,
    }

    /// A trigger that fired (see [`Chunk::trigger`]).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Trigger {
        /// Manual, hang or panic.
        pub kind: TriggerKind,
        /// When it fired, nanoseconds after the profile's start.
        pub at_ns: u64,
        /// The thread it names (the hung or panicking thread; the caller for a manual
        /// trigger), 0 if none.
        pub tid: u32,
        /// For a hang: how long the thread's heartbeat had been silent, in nanoseconds.
        pub late_ns: u64,
        /// The application's note (a manual trigger's reason, the panic message), at most
        /// [`super::MAX_TRIGGER_NOTE`] bytes.
        pub note: String,
    }

    /// A module (executable, shared library, vDSO).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Module {
        /// File name.
        pub name: String,
        /// Path on the machine that captured the profile.
        pub path: String,
        /// First mapped address during capture.
        pub start_avma: u64,
        /// One past the last mapped address.
        pub end_avma: u64,
        /// Breakpad base address (frames are relative to it).
        pub base_avma: u64,
        /// The code id (ELF: the GNU build ID; PE: time stamp and image size); may be empty.
        pub code_id: Vec<u8>,
        /// Breakpad debug id GUID bytes, in printed order.
        pub debug_id: [u8; 16],
        /// Breakpad debug id age (always 0 for ELF).
        pub age: u32,
        /// The file symbols are made from and stored under: the module's own name for ELF,
        /// its PDB's name for PE.
        pub debug_file: String,
        /// ELF or PE.
        pub format: ObjectFormat,
    }

    impl Module {
        /// The Breakpad debug id as symbol stores spell it: 32 uppercase hex digits and the age
        /// (e.g. `7DD4E2B7AD9B626374162F3BE1737BAF0`).
        pub fn debug_id_string(&self) -> String {
            let mut s: String = self
                .debug_id
                .iter()
                .map(|b| std::format!("{b:02X}"))
                .collect();
            s.push_str(&std::format!("{:X}", self.age));
            s
        }

        /// The code id as Breakpad tools write it: an ELF build ID as lowercase hex (empty
        /// without one); a PE time stamp as 8 uppercase hex digits followed by the image size
        /// (`6B0A9558E000`).
        pub fn code_id_string(&self) -> String {
            match (self.format, self.code_id.as_slice()) {
                (ObjectFormat::Pe, [t0, t1, t2, t3, s0, s1, s2, s3]) => std::format!(
                    "{:08X}{:X}",
                    u32::from_be_bytes([*t0, *t1, *t2, *t3]),
                    u32::from_be_bytes([*s0, *s1, *s2, *s3])
                ),
                _ => self
                    .code_id
                    .iter()
                    .map(|b| std::format!("{b:02x}"))
                    .collect(),
            }
        }
    }

    /// A distinct frame address.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub struct Frame {
        /// 0 if the address is in no known module, else the module index plus one.
        pub module: u32,
        /// Module-relative lookup address; the absolute address when `module` is 0.
        pub address: u64,
    }

    /// A piece of JIT-compiled code, as the runtime's perf map named it.
    #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub struct JitSymbol {
        /// Its first address.
        pub start: u64,
        /// Its size in bytes.
        pub size: u64,
        /// Its name (`LazyCompile:*hot /app.js:3`).
        pub name: String,
    }

    /// A node of the stack prefix tree.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub struct StackNode {
        /// 0 for an outermost frame, else the parent node index plus one.
        pub parent: u32,
        /// Index into [`Profile::frames`].
        pub frame: u32,
    }

    /// One thread's samples. Serialized as the format's sample stream (`profile/packed.rs`).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Thread {
        /// Kernel thread id.
        pub tid: u32,
        /// Thread name (at most 15 bytes on Linux).
        pub name: String,
        /// Samples in time order.
        pub samples: Vec<Sample>,
    }

    /// One sample.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Sample {
        /// Microseconds since the thread's previous sample (the first: since the session start).
        pub dt_us: u64,
        /// Index of the innermost stack node.
        pub stack: u32,
        /// How many sampling intervals this sample stands for.
        pub weight: u32,
        /// How the stack walk ended.
        pub end: EndReason,
        /// Its labels: an index into [`Labels::sets`] plus one, 0 for none.
        pub labels: u32,
    }

    /// The value of `key` in `pairs`.
    fn value_of<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
        (pairs.iter().find(|(k, _)| k == key)).map(|(_, v)| v.as_str())
    }

    impl Profile {
        /// The application's metadata value for `key`, if it set one.
        pub fn metadata_value(&self, key: &str) -> Option<&str> {
            value_of(&self.metadata, key)
        }

        /// The system fact `key` (`os`, `arch`, ...), if the profile has it.
        pub fn system_fact(&self, key: &str) -> Option<&str> {
            value_of(&self.system, key)
        }

        /// What the application calls itself: its `app` metadata and `version` if it set them
        /// (`app 1.2`), else `None`.
        pub fn app_name(&self) -> Option<String> {
            let app = self.metadata_value("app")?;
            Some(match self.metadata_value("version") {
                Some(v) => std::format!("{app} {v}"),
                None => app.into(),
            })
        }

        /// The frames of stack node `node`, innermost first.
        pub fn stack_frames(&self, node: u32) -> impl Iterator<Item = &Frame> + '_ {
            let mut next = Some(node);
            core::iter::from_fn(move || {
                let n = self.stacks.get(next? as usize)?;
                next = n.parent.checked_sub(1);
                self.frames.get(n.frame as usize)
            })
        }

        /// Samples in all threads.
        pub fn sample_count(&self) -> usize {
            self.threads.iter().map(|t| t.samples.len()).sum()
        }
    }
}
