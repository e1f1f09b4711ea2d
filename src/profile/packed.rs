//! The version-2 sample stream: each thread's samples coded against the sample before.
//!
//! A sample is written as `dt` (the zigzag difference between its time delta and the previous
//! sample's, µs), `code` (the zigzag difference between its stack node and the previous
//! sample's, shifted left once; the low bit says that `weight` and `end` follow) and, only when
//! they differ from the common `1` and `Root`, `weight` and `end`. On a steady workload that is
//! about three bytes a sample (see `profiles/FORMAT.md`). Both encoders (the sampler's tables
//! and the owned [`crate::Profile`]) go through [`SampleCoder::pack`]; the decoder through
//! `SampleCoder::unpack`.

use serde::ser::{Serialize, SerializeTuple, Serializer};

use crate::unwind::EndReason;

/// Coding state of one thread's sample stream; starts at zero for every thread.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SampleCoder {
    prev_stack: u32,
    prev_dt_us: u64,
}

/// One sample as it is written.
pub(crate) struct Packed {
    dt: u64,
    code: u64,
    rare: Option<(u32, EndReason)>,
}

fn zigzag(d: i64) -> u64 {
    ((d << 1) ^ (d >> 63)) as u64
}

#[cfg(feature = "std")]
fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

impl SampleCoder {
    /// Codes the next sample of this thread.
    pub(crate) fn pack(&mut self, dt_us: u64, stack: u32, weight: u32, end: EndReason) -> Packed {
        let dt = zigzag((dt_us as i64).wrapping_sub(self.prev_dt_us as i64));
        let rare = (weight != 1 || end != EndReason::Root).then_some((weight, end));
        let code =
            zigzag(i64::from(stack) - i64::from(self.prev_stack)) << 1 | rare.is_some() as u64;
        self.prev_stack = stack;
        self.prev_dt_us = dt_us;
        Packed { dt, code, rare }
    }

    /// Decodes the next sample from its `dt` and `code`; `rare` reads the weight and end when
    /// the code says they follow. `None` when the stack index leaves the `u32` range.
    #[cfg(feature = "std")]
    pub(crate) fn unpack<E>(
        &mut self,
        dt: u64,
        code: u64,
        rare: impl FnOnce() -> Result<(u32, EndReason), E>,
    ) -> Result<Option<super::Sample>, E> {
        let (weight, end) = if code & 1 == 1 {
            rare()?
        } else {
            (1, EndReason::Root)
        };
        let dt_us = (self.prev_dt_us as i64).wrapping_add(unzigzag(dt)) as u64;
        let Ok(stack) = u32::try_from(i64::from(self.prev_stack).wrapping_add(unzigzag(code >> 1)))
        else {
            return Ok(None);
        };
        self.prev_stack = stack;
        self.prev_dt_us = dt_us;
        Ok(Some(super::Sample {
            dt_us,
            stack,
            weight,
            end,
            labels: 0,
        }))
    }
}

/// A thread's label sets as runs: (how many consecutive samples, their set), coding each
/// sample's labels against the previous one's (a steady thread: one run).
pub(crate) struct LabelRuns<I>(I);

/// The runs of `labels`, one per sample in order.
pub(crate) fn label_runs<I: Iterator<Item = u32> + Clone>(labels: I) -> LabelRuns<I> {
    LabelRuns(labels)
}

impl<I: Iterator<Item = u32> + Clone> Serialize for LabelRuns<I> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let runs = |f: &mut dyn FnMut(u32, u32)| {
            let mut it = self.0.clone();
            let Some(mut current) = it.next() else { return };
            let mut count = 1u32;
            for l in it {
                if l == current && count < u32::MAX {
                    count += 1;
                } else {
                    f(count, current);
                    (current, count) = (l, 1);
                }
            }
            f(count, current);
        };
        let mut n = 0;
        runs(&mut |_, _| n += 1);
        let mut seq = s.serialize_seq(Some(n))?;
        let mut result = Ok(());
        runs(&mut |count, set| {
            if result.is_ok() {
                result = seq.serialize_element(&(count, set));
            }
        });
        result?;
        seq.end()
    }
}

impl Serialize for Packed {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Postcard writes tuples without a length, so the two shapes share one stream.
        let mut t = s.serialize_tuple(if self.rare.is_some() { 4 } else { 2 })?;
        t.serialize_element(&self.dt)?;
        t.serialize_element(&self.code)?;
        if let Some((weight, end)) = self.rare {
            t.serialize_element(&weight)?;
            t.serialize_element(&end)?;
        }
        t.end()
    }
}

/// The owned [`crate::Thread`] is written and read through the same stream.
#[cfg(feature = "std")]
pub(crate) mod owned {
    use core::fmt;

    use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
    use serde::ser::{Serialize, SerializeSeq, SerializeTuple, Serializer};
    use serde::Deserialize;
    use std::string::String;
    use std::vec::Vec;

    use super::SampleCoder;
    use crate::profile::{Sample, Thread};
    use crate::unwind::EndReason;

    impl Serialize for Thread {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut t = s.serialize_tuple(4)?;
            t.serialize_element(&self.tid)?;
            t.serialize_element(&self.name)?;
            t.serialize_element(&Stream(&self.samples))?;
            t.serialize_element(&super::label_runs(self.samples.iter().map(|s| s.labels)))?;
            t.end()
        }
    }

    /// A thread of formats 1 to 4: no label runs.
    pub(crate) struct ThreadV4(pub Thread);

    impl<'de> Deserialize<'de> for ThreadV4 {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_tuple(3, ThreadVisitor { runs: false })
                .map(ThreadV4)
        }
    }

    struct ThreadVisitor {
        /// Whether label runs follow the samples (format 5).
        runs: bool,
    }

    impl<'de> Visitor<'de> for ThreadVisitor {
        type Value = Thread;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a thread")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Thread, A::Error> {
            let tid = field(&mut seq, 0)?;
            let name: String = field(&mut seq, 1)?;
            let mut samples: Vec<Sample> = seq
                .next_element_seed(SamplesSeed)?
                .ok_or_else(|| de::Error::invalid_length(2, &"a thread"))?;
            if self.runs {
                let runs: Vec<(u32, u32)> = field(&mut seq, 3)?;
                let mut at = samples.iter_mut();
                for (count, labels) in runs {
                    for _ in 0..count {
                        at.next()
                            .ok_or_else(|| de::Error::custom("label runs longer than the samples"))?
                            .labels = labels;
                    }
                }
                if at.next().is_some() {
                    return Err(de::Error::custom("label runs shorter than the samples"));
                }
            }
            Ok(Thread { tid, name, samples })
        }
    }

    struct Stream<'a>(&'a [Sample]);

    impl Serialize for Stream<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut coder = SampleCoder::default();
            let mut seq = s.serialize_seq(Some(self.0.len()))?;
            for x in self.0 {
                seq.serialize_element(&coder.pack(x.dt_us, x.stack, x.weight, x.end))?;
            }
            seq.end()
        }
    }

    fn field<'de, A: SeqAccess<'de>, T: Deserialize<'de>>(
        seq: &mut A,
        i: usize,
    ) -> Result<T, A::Error> {
        seq.next_element()?
            .ok_or_else(|| de::Error::invalid_length(i, &"a complete record"))
    }

    impl<'de> Deserialize<'de> for Thread {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_tuple(4, ThreadVisitor { runs: true })
        }
    }

    struct SamplesSeed;

    impl<'de> DeserializeSeed<'de> for SamplesSeed {
        type Value = Vec<Sample>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Sample>, D::Error> {
            d.deserialize_seq(self)
        }
    }

    impl<'de> Visitor<'de> for SamplesSeed {
        type Value = Vec<Sample>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a sample stream")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Sample>, A::Error> {
            // The length comes from the input: cap what is reserved ahead of the bytes.
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
            let mut coder = SampleCoder::default();
            while let Some(s) = seq.next_element_seed(SampleSeed(&mut coder))? {
                out.push(s);
            }
            Ok(out)
        }
    }

    struct SampleSeed<'a>(&'a mut SampleCoder);

    impl<'de> DeserializeSeed<'de> for SampleSeed<'_> {
        type Value = Sample;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Sample, D::Error> {
            // Postcard reads tuple fields on demand, so the visitor reads two or four.
            d.deserialize_tuple(4, self)
        }
    }

    impl<'de> Visitor<'de> for SampleSeed<'_> {
        type Value = Sample;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a sample")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Sample, A::Error> {
            let dt: u64 = field(&mut seq, 0)?;
            let code: u64 = field(&mut seq, 1)?;
            self.0
                .unpack(dt, code, || {
                    Ok((field(&mut seq, 2)?, field::<A, EndReason>(&mut seq, 3)?))
                })?
                .ok_or_else(|| de::Error::custom("a sample's stack index is out of range"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "std")]
    #[test]
    fn zigzag_round_trips_extremes() {
        for d in [0i64, 1, -1, 63, -64, i64::MAX, i64::MIN, 1 << 40] {
            assert_eq!(unzigzag(zigzag(d)), d);
        }
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
    }

    #[cfg(feature = "std")]
    #[test]
    fn pack_then_unpack_gives_the_samples_back() {
        let samples = [
            (1000u64, 7u32, 1u32, EndReason::Root),
            (0, 0, 1, EndReason::Root),
            (u64::MAX, u32::MAX, 3, EndReason::OutOfBounds),
            (999, 6, 1, EndReason::DepthLimit),
            (999, 6, 1, EndReason::Root),
        ];
        let (mut enc, mut dec) = (SampleCoder::default(), SampleCoder::default());
        for (dt_us, stack, weight, end) in samples {
            let p = enc.pack(dt_us, stack, weight, end);
            let s = dec
                .unpack(p.dt, p.code, || Ok::<_, ()>(p.rare.unwrap()))
                .unwrap()
                .unwrap();
            assert_eq!(
                (s.dt_us, s.stack, s.weight, s.end),
                (dt_us, stack, weight, end)
            );
        }
    }
}
