//! Encoding a session straight from the collector's tables, without allocating.
//!
//! The views below serialize as postcard tuples in exactly the field order of the owned types
//! in [`crate::profile`], so [`crate::Profile::decode`] reads what they write (a round-trip test
//! guards this).

use serde::ser::{Serialize, SerializeSeq, Serializer};

use super::packed::{label_runs, SampleCoder};
use super::{Backend, Clock, Lost, TriggerKind, FORMAT_VERSION, MAGIC};
use crate::collector::{Collector, HEAP_OBJECT_SCALE};
use crate::error::{Error, Result};
use crate::labels::{self, STRING_VALUE};
use crate::metadata::Metadata;
use crate::unwind::EndReason;

/// The profiler's settings a capture reports, to make captures of any of its tables.
#[derive(Clone)]
pub(crate) struct CaptureConfig {
    pub clock: Clock,
    pub interval_ns: u64,
    pub max_frames: u32,
    /// Whether modules carry their full paths ([`crate::Builder::module_paths`]).
    pub module_paths: bool,
    pub backend: Backend,
    /// What the application says about itself ([`crate::Builder::metadata`]).
    pub metadata: Metadata,
    /// Facts about the system ([`crate::metadata::system_facts`]).
    pub system: Metadata,
}

impl CaptureConfig {
    /// A capture of the tables `c`, with their lost counts.
    pub fn capture<'a>(&'a self, c: &'a Collector) -> Capture<'a> {
        Capture {
            collector: c,
            clock: self.clock,
            interval_ns: self.interval_ns,
            max_frames: self.max_frames,
            module_paths: self.module_paths,
            metadata: &self.metadata,
            system: &self.system,
            lost: Lost {
                unseen: self.unseen(c),
                ..c.lost
            },
            backend: self.backend,
        }
    }

    /// Under [`Clock::Cpu`], the intervals of the process's CPU time in `c`'s session (less
    /// vignette's sampler thread) that neither a sample's weight nor a lost count covers.
    fn unseen(&self, c: &Collector) -> u64 {
        if self.clock != Clock::Cpu || c.cpu_start_ns == 0 || c.cpu_end_ns <= c.cpu_start_ns {
            return 0;
        }
        let intervals = (c.cpu_end_ns - c.cpu_start_ns) / self.interval_ns.max(1);
        let sampled: u64 = (c.samples.iter().take(c.samples_len))
            .map(|s| s.weight as u64)
            .sum();
        intervals.saturating_sub(
            sampled
                + Lost {
                    unseen: 0,
                    ..c.lost
                }
                .total(),
        )
    }
}

/// A finished session, borrowed from its profiler until the next `start`.
pub struct Capture<'a> {
    pub(crate) collector: &'a Collector,
    pub(crate) clock: Clock,
    pub(crate) interval_ns: u64,
    pub(crate) max_frames: u32,
    /// Whether modules carry their full paths ([`crate::Builder::module_paths`]).
    pub(crate) module_paths: bool,
    pub(crate) lost: Lost,
    pub(crate) backend: Backend,
    pub(crate) metadata: &'a Metadata,
    pub(crate) system: &'a Metadata,
}

impl Capture<'_> {
    /// What took the samples.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Samples kept.
    pub fn sample_count(&self) -> usize {
        self.collector.samples_len
    }

    /// Samples lost, by cause.
    pub fn lost(&self) -> Lost {
        self.lost
    }

    /// Threads seen.
    pub fn thread_count(&self) -> usize {
        self.collector.threads_len
    }

    /// Its number in the session's series of chunks or windows (from 0 at each start).
    pub fn sequence(&self) -> u64 {
        self.collector.chunk.sequence
    }

    /// What made it be captured, if a trigger did: the kind and the thread it names.
    pub fn trigger(&self) -> Option<(TriggerKind, i32)> {
        let t = &self.collector.chunk.trigger;
        TriggerKind::from_u8(t.kind).map(|k| (k, t.tid))
    }

    /// For a flight recorder's window: the samples it had evicted as older than the window.
    pub fn evicted(&self) -> u64 {
        self.collector.chunk.evicted
    }

    /// Its time range, monotonic nanoseconds (`CLOCK_MONOTONIC` on Linux): consecutive
    /// rotated chunks abut.
    pub fn time_range_ns(&self) -> core::ops::Range<u64> {
        self.collector.start_ns..self.collector.end_ns
    }

    /// Exact size of the encoded profile in bytes.
    pub fn encoded_len(&self) -> usize {
        postcard::serialize_with_flavor(&File(self), Counter(0)).unwrap_or(0)
    }

    /// Encodes into `buf`, returning the bytes used; [`Error::BufferTooSmall`] says how many
    /// are needed when `buf` is short. Never allocates.
    pub fn encode_into(&self, buf: &mut [u8]) -> Result<usize> {
        match postcard::to_slice(&File(self), buf) {
            Ok(used) => Ok(used.len()),
            Err(_) => Err(Error::BufferTooSmall {
                needed: self.encoded_len(),
            }),
        }
    }

    /// Encodes into `writer` (buffer it: postcard writes in small pieces). Returns the bytes
    /// written.
    #[cfg(feature = "std")]
    pub fn write_to<W: std::io::Write>(&self, writer: W) -> Result<usize> {
        postcard::to_io(&File(self), writer).map_err(|_| Error::Write)?;
        Ok(self.encoded_len())
    }

    /// The encoded profile as a new vector.
    #[cfg(feature = "std")]
    pub fn to_vec(&self) -> std::vec::Vec<u8> {
        let mut v = std::vec![0u8; self.encoded_len()];
        let n = self.encode_into(&mut v).unwrap_or(0);
        v.truncate(n);
        v
    }

    /// The session as an owned, decoded [`crate::Profile`].
    #[cfg(feature = "std")]
    pub fn to_profile(&self) -> crate::Profile {
        crate::Profile::decode(&self.to_vec()).expect("a fresh encoding decodes")
    }
}

/// Counts bytes instead of writing them.
struct Counter(usize);

impl postcard::ser_flavors::Flavor for Counter {
    type Output = usize;
    fn try_push(&mut self, _: u8) -> postcard::Result<()> {
        self.0 += 1;
        Ok(())
    }
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0 += data.len();
        Ok(())
    }
    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.0)
    }
}

/// The whole file: magic, format version, body.
struct File<'a>(&'a Capture<'a>);

impl Serialize for File<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        (MAGIC, FORMAT_VERSION, Body(self.0)).serialize(s)
    }
}

/// The body, in the field order of [`crate::Profile`].
struct Body<'a>(&'a Capture<'a>);

impl Serialize for Body<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        let (cap, c) = (self.0, self.0.collector);
        (
            c.start_unix_ns,
            c.end_ns.saturating_sub(c.start_ns),
            cap.clock,
            cap.interval_ns,
            cap.max_frames,
            Modules(c, cap.module_paths),
            Frames(c),
            Stacks(c),
            Threads(c),
            cap.lost,
            ChunkView(c),
            LabelsView(c),
            cap.backend,
            // Serde's tuples stop at 16; postcard writes a nested tuple's fields in order
            // with nothing between, as the flat layout.
            (
                MetadataView(cap.metadata),
                MetadataView(cap.system),
                c.cpu_end_ns.saturating_sub(c.cpu_start_ns),
                c.pid,
                Seq(c
                    .rates
                    .entries()
                    .iter()
                    .map(|&(at, interval)| (at.saturating_sub(c.start_ns), interval))),
                Seq(c.jit.iter()),
                HeapView(c),
            ),
        )
            .serialize(s)
    }
}

/// The heap: `None` unless the profiler samples allocations; objects unscaled to whole ones.
struct HeapView<'a>(&'a Collector);

impl Serialize for HeapView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        let c = self.0;
        if c.heap_mean == 0 {
            return None::<()>.serialize(s);
        }
        let scale = HEAP_OBJECT_SCALE;
        let st = &c.heap_stats;
        let sites = Seq(c.heap.iter().take(c.heap_len).map(|h| {
            (
                h.stack,
                h.alloc_bytes,
                h.alloc_objects.saturating_add(scale / 2) / scale,
                h.inuse_bytes,
                h.inuse_objects.saturating_add(scale / 2) / scale,
            )
        }));
        let lost = (st.sites_full, st.unwalked, st.untracked, st.reentrant);
        Some((c.heap_mean, st.samples, sites, lost)).serialize(s)
    }
}

/// Key-value pairs, as a sequence of string pairs.
struct MetadataView<'a>(&'a Metadata);

impl Serialize for MetadataView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for pair in self.0.iter() {
            seq.serialize_element(&pair)?;
        }
        seq.end()
    }
}

/// The chunk: sequence, window, evictions and the trigger (times relative to the start).
struct ChunkView<'a>(&'a Collector);

impl Serialize for ChunkView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        let (c, k) = (self.0, &self.0.chunk);
        let t = &k.trigger;
        let trigger = TriggerKind::from_u8(t.kind).map(|kind| {
            (
                kind,
                t.at_ns.saturating_sub(c.start_ns),
                t.tid as u32,
                t.late_ns,
                t.note(),
            )
        });
        (k.sequence, k.window_ns, k.evicted, trigger).serialize(s)
    }
}

/// The module table; paths only when the application asked for them.
struct Modules<'a>(&'a Collector, bool);

impl Serialize for Modules<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.modules.len()))?;
        for m in self.0.modules.iter() {
            seq.serialize_element(&(
                m.name,
                if self.1 { m.path } else { "" },
                m.start_avma,
                m.end_avma,
                m.base_avma,
                m.build_id,
                m.debug_id,
                m.age,
                m.debug_file,
                m.format,
            ))?;
        }
        seq.end()
    }
}

struct Frames<'a>(&'a Collector);

impl Serialize for Frames<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        let frames = &self.0.frames[..self.0.frames_len];
        let mut seq = s.serialize_seq(Some(frames.len()))?;
        for f in frames {
            seq.serialize_element(&(f.module, f.address))?;
        }
        seq.end()
    }
}

struct Stacks<'a>(&'a Collector);

impl Serialize for Stacks<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        let nodes = &self.0.nodes[..self.0.nodes_len];
        let mut seq = s.serialize_seq(Some(nodes.len()))?;
        for n in nodes {
            seq.serialize_element(&(n.parent, n.frame))?;
        }
        seq.end()
    }
}

struct Threads<'a>(&'a Collector);

impl Serialize for Threads<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        let c = self.0;
        let threads = &c.threads[..c.threads_len];
        let mut seq = s.serialize_seq(Some(threads.len()))?;
        for (i, t) in threads.iter().enumerate() {
            let len = t.name.iter().position(|&b| b == 0).unwrap_or(t.name.len());
            let name = match core::str::from_utf8(&t.name[..len]) {
                Ok(n) => n,
                Err(e) => core::str::from_utf8(&t.name[..e.valid_up_to()]).unwrap_or(""),
            };
            let labels = ThreadLabels {
                c,
                next: t.first,
                left: t.count,
            };
            seq.serialize_element(&(t.tid as u32, name, Samples(c, i), label_runs(labels)))?;
        }
        seq.end()
    }
}

/// Thread `.1`'s samples, walking its list: times as microsecond deltas, packed with the
/// format's sample stream.
struct Samples<'a>(&'a Collector, usize);

impl Serialize for Samples<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        let (c, t) = (self.0, &self.0.threads[self.1]);
        let mut seq = s.serialize_seq(Some(t.count as usize))?;
        let mut prev_us = 0u64;
        let mut coder = SampleCoder::default();
        let mut next = t.first;
        for _ in 0..t.count {
            let Some(rec) = c.samples[..c.samples_len].get(next as usize) else {
                break;
            };
            let us = rec.time_ns.saturating_sub(c.start_ns) / 1000;
            let end = EndReason::from_u8(rec.end).unwrap_or(EndReason::BadUnwindInfo);
            seq.serialize_element(&coder.pack(
                us.saturating_sub(prev_us),
                rec.stack,
                rec.weight,
                end,
            ))?;
            prev_us = us.max(prev_us);
            next = rec.next;
        }
        seq.end()
    }
}

/// A thread's samples' label sets, in order (cloned to count the runs first).
#[derive(Clone)]
struct ThreadLabels<'a> {
    c: &'a Collector,
    next: u32,
    left: u32,
}

impl Iterator for ThreadLabels<'_> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        self.left = self.left.checked_sub(1)?;
        let rec = self.c.samples[..self.c.samples_len].get(self.next as usize)?;
        self.next = rec.next;
        Some(rec.labels)
    }
}

/// A label value as the format codes it (the owned `LabelValue`'s variants, in order).
#[derive(serde::Serialize, Clone, Copy)]
enum ValueView {
    Int(i64),
    Str(u32),
}

/// The label names the session's sets use, and the sets.
struct LabelsView<'a>(&'a Collector);

impl LabelsView<'_> {
    /// One past the highest key and string indices the sets use.
    fn extents(&self) -> (u32, u32) {
        let c = self.0;
        let mut ext = (0, 0);
        for set in &c.label_sets[..c.label_sets_len] {
            for (k, v) in set.pairs() {
                ext.0 = ext.0.max((k & !STRING_VALUE) + 1);
                if k & STRING_VALUE != 0 {
                    ext.1 = ext.1.max(v as u32 + 1);
                }
            }
        }
        ext
    }
}

impl Serialize for LabelsView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        let c = self.0;
        let (keys, strings) = self.extents();
        let sets = &c.label_sets[..c.label_sets_len];
        (
            Seq((0..keys).map(labels::key_name)),
            Seq((0..strings).map(labels::string_text)),
            Seq(sets.iter().map(set_view)),
        )
            .serialize(s)
    }
}

/// A label set as the format codes it: (key index, value) pairs.
fn set_view(set: &labels::LabelSet) -> Seq<impl Iterator<Item = (u32, ValueView)> + Clone + '_> {
    Seq(set.pairs().map(|(k, v)| {
        let value = match k & STRING_VALUE {
            0 => ValueView::Int(v as i64),
            _ => ValueView::Str(v as u32),
        };
        (k & !STRING_VALUE, value)
    }))
}

/// Any cloneable iterator of serializable items, as a sequence.
struct Seq<I>(I);

impl<I: Iterator + Clone> Serialize for Seq<I>
where
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.clone().count()))?;
        for x in self.0.clone() {
            seq.serialize_element(&x)?;
        }
        seq.end()
    }
}
