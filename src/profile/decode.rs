//! Decoding and validating profiles (feature `std`).

use std::string::String;
use std::vec::Vec;

use super::packed::owned::ThreadV4;
use super::{
    Backend, Chunk, Clock, Frame, LabelValue, Labels, Lost, Module, ObjectFormat, Profile, Sample,
    StackNode, Thread, FORMAT_VERSION, MAGIC, MAX_TRIGGER_NOTE,
};
use crate::error::{Error, Result};

impl Profile {
    /// Decodes a profile, rejecting bytes that are not a profile, cut short, damaged, or from a
    /// newer format version, with an error that says which.
    pub fn decode(bytes: &[u8]) -> Result<Profile> {
        let Some(head) = bytes.get(..MAGIC.len()) else {
            return Err(if MAGIC.starts_with(bytes) {
                Error::Truncated
            } else {
                Error::BadMagic
            });
        };
        if head != MAGIC {
            return Err(Error::BadMagic);
        }
        let rest = &bytes[MAGIC.len()..];
        let (version, rest) = postcard::take_from_bytes::<u16>(rest).map_err(postcard_error)?;
        if version > FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if version == 0 {
            return Err(Error::Corrupt("format version 0 does not exist"));
        }
        let (profile, rest) = match version {
            1 => {
                let (v1, rest) = postcard::take_from_bytes::<V1>(rest).map_err(postcard_error)?;
                (v1.into_profile(), rest)
            }
            2 | 3 => {
                let (v3, rest) = postcard::take_from_bytes::<V3>(rest).map_err(postcard_error)?;
                (v3.into_profile(), rest)
            }
            4 => {
                let (v4, rest) = postcard::take_from_bytes::<V4>(rest).map_err(postcard_error)?;
                (v4.into_profile(), rest)
            }
            5 => {
                let (v5, rest) = postcard::take_from_bytes::<V5>(rest).map_err(postcard_error)?;
                (v5.into_profile(), rest)
            }
            // Version 7 has version 6's layout (and Mach-O modules).
            6 | 7 => {
                let (v7, rest) = postcard::take_from_bytes::<V7>(rest).map_err(postcard_error)?;
                (v7.into_profile(), rest)
            }
            8 => {
                let (v8, rest) = postcard::take_from_bytes::<V8>(rest).map_err(postcard_error)?;
                (v8.into_profile(), rest)
            }
            9 => {
                let (v9, rest) = postcard::take_from_bytes::<V9>(rest).map_err(postcard_error)?;
                (v9.into_profile(), rest)
            }
            10 => {
                let (v10, rest) = postcard::take_from_bytes::<V10>(rest).map_err(postcard_error)?;
                (v10.into_profile(), rest)
            }
            _ => postcard::take_from_bytes::<Profile>(rest).map_err(postcard_error)?,
        };
        if !rest.is_empty() {
            return Err(Error::Corrupt("trailing bytes after the profile"));
        }
        profile.validate()?;
        Ok(profile)
    }

    /// Encodes this profile (the same bytes the sampler writes for the same content).
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(&(MAGIC, FORMAT_VERSION, self))
            .expect("encoding into a Vec cannot fail")
    }

    /// Checks that every index points at something that exists, that the stack tree is acyclic
    /// (every node's parent precedes it), and that no stack is deeper than the profile's own
    /// `max_frames` (at most [`MAX_DEPTH`]): what the tools rely on to stay linear in the input.
    pub(crate) fn validate(&self) -> Result<()> {
        // Metadata is a handful of short pairs from the writer (16 of at most 32 + 128 bytes):
        // more is damage.
        for pairs in [&self.metadata, &self.system] {
            if pairs.len() > 64 || pairs.iter().any(|(k, v)| k.len() > 256 || v.len() > 4096) {
                return Err(Error::Corrupt("metadata beyond any writer's bounds"));
            }
        }
        let max_depth = (self.max_frames as usize).clamp(1, MAX_DEPTH);
        let mut depth = Vec::with_capacity(self.stacks.len());
        for (i, n) in self.stacks.iter().enumerate() {
            let d = match (n.parent as usize).checked_sub(1) {
                None => 1,
                Some(p) if p < i => depth.get(p).copied().unwrap_or(0) + 1,
                Some(_) => return Err(Error::Corrupt("a stack node's parent does not precede it")),
            };
            if d > max_depth {
                return Err(Error::Corrupt(
                    "a stack is deeper than the profile's max_frames",
                ));
            }
            depth.push(d);
        }
        if self
            .frames
            .iter()
            .any(|f| f.module as usize > self.modules.len())
        {
            return Err(Error::Corrupt(
                "a frame refers to a module that does not exist",
            ));
        }
        if self
            .stacks
            .iter()
            .any(|n| n.frame as usize >= self.frames.len())
        {
            return Err(Error::Corrupt(
                "a stack node refers to a frame that does not exist",
            ));
        }
        for t in &self.threads {
            if t.samples
                .iter()
                .any(|s| s.stack as usize >= self.stacks.len())
            {
                return Err(Error::Corrupt(
                    "a sample refers to a stack that does not exist",
                ));
            }
        }
        if self.modules.iter().any(|m| m.start_avma > m.end_avma) {
            return Err(Error::Corrupt("a module ends before it starts"));
        }
        let l = &self.labels;
        let bad_label = |x: &super::Label| {
            x.key as usize >= l.keys.len()
                || matches!(x.value, LabelValue::Str(i) if i as usize >= l.strings.len())
        };
        if l.sets
            .iter()
            .any(|s| s.len() > MAX_LABELS_PER_SET || s.iter().any(bad_label))
        {
            return Err(Error::Corrupt(
                "a label set is too long or names what does not exist",
            ));
        }
        let sets = l.sets.len() as u64;
        if (self.threads.iter()).any(|t| t.samples.iter().any(|s| s.labels as u64 > sets)) {
            return Err(Error::Corrupt(
                "a sample refers to a label set that does not exist",
            ));
        }
        if let Some(heap) = &self.heap {
            if heap
                .sites
                .iter()
                .any(|s| s.stack as usize >= self.stacks.len())
            {
                return Err(Error::Corrupt(
                    "a heap site refers to a stack that does not exist",
                ));
            }
        }
        if self.rates.windows(2).any(|w| w[1].at_ns < w[0].at_ns) {
            return Err(Error::Corrupt("the rate changes are not in time order"));
        }
        if (self.chunk.trigger.as_ref()).is_some_and(|t| t.note.len() > MAX_TRIGGER_NOTE) {
            return Err(Error::Corrupt(
                "a trigger's note is longer than the format allows",
            ));
        }
        Ok(())
    }
}

/// The most labels one set may hold (the sampler keeps 4).
pub const MAX_LABELS_PER_SET: usize = 64;

/// The deepest stack any profile may hold (the builder's limit on `max_frames`).
pub const MAX_DEPTH: usize = 1024;

/// A module of versions 1 to 3: ELF only, without `debug_file` and `format`.
#[derive(serde::Deserialize)]
struct ModuleV3(String, String, u64, u64, u64, Vec<u8>, [u8; 16], u32);

impl ModuleV3 {
    fn into_module(self) -> Module {
        Module {
            debug_file: self.0.clone(),
            name: self.0,
            path: self.1,
            start_avma: self.2,
            end_avma: self.3,
            base_avma: self.4,
            code_id: self.5,
            debug_id: self.6,
            age: self.7,
            format: ObjectFormat::Elf,
        }
    }
}

/// Versions 2 and 3: version 4's layout with version-3 modules.
#[derive(serde::Deserialize)]
struct V3(
    u64,
    u64,
    Clock,
    u64,
    u32,
    Vec<ModuleV3>,
    Vec<Frame>,
    Vec<StackNode>,
    Vec<ThreadV4>,
    LostV7,
);

impl V3 {
    fn into_profile(self) -> Profile {
        V4(
            self.0,
            self.1,
            self.2,
            self.3,
            self.4,
            self.5.into_iter().map(ModuleV3::into_module).collect(),
            self.6,
            self.7,
            self.8,
            self.9,
        )
        .into_profile()
    }
}

/// [`Lost`] before version 8: without `signal_taken` and `unseen`.
#[derive(serde::Deserialize)]
struct LostV7(u64, u64, u64, u64);

impl From<LostV7> for Lost {
    fn from(l: LostV7) -> Lost {
        Lost {
            ring_full: l.0,
            tables_full: l.1,
            unanswered: l.2,
            threads_over_capacity: l.3,
            ..Lost::default()
        }
    }
}

/// [`Lost`] of version 8: without `signal_blocked`.
#[derive(serde::Deserialize)]
struct LostV8(u64, u64, u64, u64, u64, u64);

impl From<LostV8> for Lost {
    fn from(l: LostV8) -> Lost {
        Lost {
            ring_full: l.0,
            tables_full: l.1,
            unanswered: l.2,
            threads_over_capacity: l.3,
            signal_taken: l.4,
            unseen: l.5,
            signal_blocked: 0,
        }
    }
}

/// Version 8: version 7's layout with version 8's lost counts, then the metadata, the system
/// facts, the process CPU time and the pid; version 9 is the same with its own lost counts
/// (`signal_blocked`), then the rates.
#[derive(serde::Deserialize)]
struct V8<L = LostV8>(
    V5<L>,
    Backend,
    Vec<(String, String)>,
    Vec<(String, String)>,
    u64,
    u32,
);

impl<L: Into<Lost>> V8<L> {
    fn into_profile(self) -> Profile {
        Profile {
            backend: self.1,
            metadata: self.2,
            system: self.3,
            process_cpu_ns: self.4,
            pid: self.5,
            ..self.0.into_profile()
        }
    }
}

/// Version 9: version 8's layout and the rate over time (before the JIT's names).
#[derive(serde::Deserialize)]
struct V9(V8<Lost>, Vec<crate::RateChange>);

impl V9 {
    fn into_profile(self) -> Profile {
        Profile {
            rates: self.1,
            ..self.0.into_profile()
        }
    }
}

/// Version 10: version 9's layout and the JIT's names (before the heap).
#[derive(serde::Deserialize)]
struct V10(V9, Vec<crate::JitSymbol>);

impl V10 {
    fn into_profile(self) -> Profile {
        Profile {
            jit: self.1,
            ..self.0.into_profile()
        }
    }
}

/// Versions 6 and 7: version 5's layout and the backend (postcard writes a nested tuple's
/// fields in order, as the flat layout).
#[derive(serde::Deserialize)]
struct V7(V5, Backend);

impl V7 {
    fn into_profile(self) -> Profile {
        Profile {
            backend: self.1,
            ..self.0.into_profile()
        }
    }
}

/// Version 5: version 6's layout without the backend (its lost counts are `LostV7`; version 8
/// reads its first fields with its own).
#[derive(serde::Deserialize)]
struct V5<L = LostV7>(
    u64,
    u64,
    Clock,
    u64,
    u32,
    Vec<Module>,
    Vec<Frame>,
    Vec<StackNode>,
    Vec<Thread>,
    L,
    Chunk,
    Labels,
);

impl<L: Into<Lost>> V5<L> {
    fn into_profile(self) -> Profile {
        Profile {
            start_unix_ns: self.0,
            duration_ns: self.1,
            clock: self.2,
            interval_ns: self.3,
            max_frames: self.4,
            modules: self.5,
            frames: self.6,
            stacks: self.7,
            threads: self.8,
            lost: self.9.into(),
            chunk: self.10,
            labels: self.11,
            backend: Backend::Unrecorded,
            metadata: Vec::new(),
            system: Vec::new(),
            process_cpu_ns: 0,
            pid: 0,
            rates: Vec::new(),
            jit: Vec::new(),
            heap: None,
        }
    }
}

/// Version 4: version 5's layout without the chunk and labels.
#[derive(serde::Deserialize)]
struct V4(
    u64,
    u64,
    Clock,
    u64,
    u32,
    Vec<Module>,
    Vec<Frame>,
    Vec<StackNode>,
    Vec<ThreadV4>,
    LostV7,
);

impl V4 {
    fn into_profile(self) -> Profile {
        V5(
            self.0,
            self.1,
            self.2,
            self.3,
            self.4,
            self.5,
            self.6,
            self.7,
            self.8.into_iter().map(|t| t.0).collect(),
            self.9,
            Chunk::default(),
            Labels::default(),
        )
        .into_profile()
    }
}

/// Version 1: the same layout with each sample written whole, `(dt_us, stack, weight, end)`.
#[derive(serde::Deserialize)]
struct V1(
    u64,
    u64,
    Clock,
    u64,
    u32,
    Vec<ModuleV3>,
    Vec<Frame>,
    Vec<StackNode>,
    Vec<(u32, String, Vec<SampleV1>)>,
    LostV7,
);

/// A version-1 sample, written whole.
#[derive(serde::Deserialize)]
struct SampleV1(u64, u32, u32, crate::unwind::EndReason);

impl V1 {
    fn into_profile(self) -> Profile {
        let threads = (self.8.into_iter())
            .map(|(tid, name, samples)| {
                let samples = (samples.into_iter())
                    .map(|s| Sample {
                        dt_us: s.0,
                        stack: s.1,
                        weight: s.2,
                        end: s.3,
                        labels: 0,
                    })
                    .collect();
                ThreadV4(Thread { tid, name, samples })
            })
            .collect();
        V3(
            self.0, self.1, self.2, self.3, self.4, self.5, self.6, self.7, threads, self.9,
        )
        .into_profile()
    }
}

fn postcard_error(e: postcard::Error) -> Error {
    match e {
        postcard::Error::DeserializeUnexpectedEnd => Error::Truncated,
        postcard::Error::DeserializeBadVarint => Error::Corrupt("bad variable-length integer"),
        postcard::Error::DeserializeBadUtf8 => Error::Corrupt("a string is not valid UTF-8"),
        postcard::Error::DeserializeBadEnum => Error::Corrupt("unknown enum value"),
        _ => Error::Corrupt("undecodable bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EndReason;

    fn profile() -> Profile {
        Profile {
            start_unix_ns: 1,
            duration_ns: 2,
            clock: Clock::Wall,
            interval_ns: 1_000_000,
            max_frames: 8,
            modules: std::vec![Module {
                name: "m".into(),
                path: "/m".into(),
                start_avma: 0x1000,
                end_avma: 0x2000,
                base_avma: 0x1000,
                code_id: std::vec![1, 2, 3],
                debug_id: [7; 16],
                age: 0,
                debug_file: "m".into(),
                format: ObjectFormat::Elf,
            }],
            frames: std::vec![
                Frame {
                    module: 1,
                    address: 0x10
                },
                Frame {
                    module: 0,
                    address: 0x9999
                }
            ],
            stacks: std::vec![
                StackNode {
                    parent: 0,
                    frame: 0
                },
                StackNode {
                    parent: 1,
                    frame: 1
                }
            ],
            threads: std::vec![Thread {
                tid: 5,
                name: "t".into(),
                samples: std::vec![Sample {
                    dt_us: 3,
                    stack: 1,
                    weight: 2,
                    end: EndReason::Root,
                    labels: 1,
                }],
            }],
            lost: Lost {
                ring_full: 1,
                tables_full: 2,
                unanswered: 3,
                threads_over_capacity: 4,
                signal_taken: 5,
                unseen: 6,
                signal_blocked: 8,
            },
            chunk: Chunk {
                sequence: 7,
                window_ns: 10_000_000_000,
                evicted: 99,
                trigger: Some(super::super::Trigger {
                    kind: super::super::TriggerKind::Hang,
                    at_ns: 5,
                    tid: 5,
                    late_ns: 300_000_000,
                    note: "frame loop".into(),
                }),
            },
            labels: Labels {
                keys: std::vec!["endpoint".into(), "request".into()],
                strings: std::vec!["/search".into()],
                sets: std::vec![std::vec![
                    super::super::Label {
                        key: 0,
                        value: LabelValue::Str(0)
                    },
                    super::super::Label {
                        key: 1,
                        value: LabelValue::Int(-1234)
                    }
                ]],
            },
            backend: Backend::PerfEvents,
            metadata: std::vec![("app".into(), "test".into())],
            system: std::vec![("os".into(), "linux".into())],
            process_cpu_ns: 7,
            pid: 42,
            rates: std::vec![
                super::super::RateChange {
                    at_ns: 1,
                    interval_ns: 4_000_000
                },
                super::super::RateChange {
                    at_ns: 2,
                    interval_ns: 0
                }
            ],
            jit: std::vec![super::super::JitSymbol {
                start: 0x7000_0000,
                size: 0x40,
                name: "LazyCompile:*hot /app.js:3".into(),
            }],
            heap: Some(super::super::Heap {
                mean_bytes: 524_288,
                samples: 3,
                sites: std::vec![super::super::HeapSite {
                    stack: 1,
                    alloc_bytes: 1 << 20,
                    alloc_objects: 10,
                    inuse_bytes: 1 << 19,
                    inuse_objects: 5,
                }],
                lost: super::super::HeapLost {
                    sites_full: 1,
                    unwalked: 2,
                    untracked: 3,
                    reentrant: 4,
                },
            }),
        }
    }

    #[test]
    fn version_10_reads_without_a_heap() {
        let p = Profile {
            heap: None,
            ..profile()
        };
        let mut bytes = p.encode();
        bytes[MAGIC.len()] = 10;
        assert_eq!(bytes.pop(), Some(0), "no heap is one byte");
        assert_eq!(Profile::decode(&bytes), Ok(p));
    }

    #[test]
    fn a_heap_site_must_name_a_stack() {
        let mut p = profile();
        p.heap.as_mut().unwrap().sites[0].stack = 2;
        assert!(Profile::decode(&p.encode()).is_err());
    }

    #[test]
    fn version_9_reads_without_jit_names() {
        let p = Profile {
            jit: Vec::new(),
            heap: None,
            ..profile()
        };
        // Version 9's layout: everything up to the rates, nothing after.
        let mut bytes = p.encode();
        bytes[MAGIC.len()] = 9;
        assert_eq!(bytes.pop(), Some(0), "no heap is one byte");
        assert_eq!(bytes.pop(), Some(0), "an empty JIT table is one byte");
        assert_eq!(Profile::decode(&bytes), Ok(p));
    }

    #[test]
    fn version_8_reads_as_ticking_at_the_requested_interval() {
        let mut p = Profile {
            rates: Vec::new(),
            jit: Vec::new(),
            heap: None,
            ..profile()
        };
        p.lost.signal_blocked = 0;
        // Version 8's layout: no `signal_blocked` in the lost counts, no rates at the end.
        let l = &p.lost;
        let bytes = postcard::to_stdvec(&(
            MAGIC,
            8u16,
            (
                p.start_unix_ns,
                p.duration_ns,
                p.clock,
                p.interval_ns,
                p.max_frames,
                &p.modules,
                &p.frames,
                &p.stacks,
                &p.threads,
                (
                    l.ring_full,
                    l.tables_full,
                    l.unanswered,
                    l.threads_over_capacity,
                    l.signal_taken,
                    l.unseen,
                ),
                &p.chunk,
                &p.labels,
                p.backend,
                &p.metadata,
                &p.system,
                (p.process_cpu_ns, p.pid),
            ),
        ))
        .unwrap();
        assert_eq!(Profile::decode(&bytes), Ok(p));
    }

    #[test]
    fn round_trips_and_rejects_damage() {
        let p = profile();
        let bytes = p.encode();
        assert_eq!(Profile::decode(&bytes), Ok(p.clone()));
        for len in 0..bytes.len() {
            assert_eq!(Profile::decode(&bytes[..len]), Err(Error::Truncated));
        }
        let mut bad = p.clone();
        bad.stacks[1].frame = 9;
        assert!(matches!(
            Profile::decode(&bad.encode()),
            Err(Error::Corrupt(_))
        ));
        let mut bad = p.clone();
        bad.stacks[0].parent = 2;
        assert!(matches!(
            Profile::decode(&bad.encode()),
            Err(Error::Corrupt(_))
        ));
        let mut bad = p.clone();
        bad.rates.reverse();
        assert!(matches!(
            Profile::decode(&bad.encode()),
            Err(Error::Corrupt(_))
        ));
        let mut bad = p;
        bad.threads[0].samples[0].stack = 5;
        assert!(matches!(
            Profile::decode(&bad.encode()),
            Err(Error::Corrupt(_))
        ));
    }
}
