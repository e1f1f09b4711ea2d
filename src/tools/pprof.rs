//! pprof's `profile.proto`, gzipped: what `go tool pprof`, Pyroscope, Parca and Datadog read.
//!
//! Resolved, with Functions and Lines (inline frames as extra Lines, innermost first), or
//! unresolved, with only addresses and Mappings carrying build IDs, for server-side
//! symbolization. Written with a small protobuf encoder: the format needs only varints,
//! length-delimited fields and packed repeated integers.

use std::collections::HashMap;
use std::io::Write;

use super::heap::HeapMeasure;
use super::protobuf::{Msg, Strings};
use super::resolve::Resolution;
use crate::{Clock, Profile};

/// Encodes `profile` as a gzipped pprof profile. With `res`, locations carry functions, files
/// and lines; without, only addresses and mappings (for symbolization elsewhere).
pub fn to_pprof(profile: &Profile, res: Option<&Resolution>) -> Vec<u8> {
    encode(profile, res, 0)
}

/// [`to_pprof`], with the samples of the first `base_threads` threads as the base of a
/// comparison, the way `go tool pprof -diff_base` keeps one: their values negated and labeled
/// `pprof::base`. pprof's views then show, per function, the new weight minus the base's.
pub fn to_pprof_diff(profile: &Profile, res: &Resolution, base_threads: usize) -> Vec<u8> {
    encode(profile, Some(res), base_threads)
}

/// The heap of `profile` (`Profile::heap`; no samples without one) as a pprof heap profile,
/// as Go writes one: `alloc_objects`, `alloc_space`, `inuse_objects` and `inuse_space` per
/// stack, `measure`'s space the default view (`go tool pprof -sample_index=` picks another).
pub fn heap_to_pprof(profile: &Profile, res: Option<&Resolution>, measure: HeapMeasure) -> Vec<u8> {
    let mut s = Strings::new();
    let mut p = Msg::default();
    for (kind, unit) in [
        ("alloc_objects", "count"),
        ("alloc_space", "bytes"),
        ("inuse_objects", "count"),
        ("inuse_space", "bytes"),
    ] {
        p.bytes(1, &value_type(&mut s, kind, unit));
    }
    let heap = profile.heap.as_ref();
    for site in heap.iter().flat_map(|h| &h.sites) {
        let values = [
            site.alloc_objects,
            site.alloc_bytes,
            site.inuse_objects,
            site.inuse_bytes,
        ]
        .map(|v| v.min(i64::MAX as u64));
        let mut m = Msg::default();
        m.packed(1, &location_ids(profile, site.stack))
            .packed(2, &values);
        p.bytes(2, &m.0);
    }
    let default = s.id(match measure {
        HeapMeasure::InUse => "inuse_space",
        HeapMeasure::Allocated => "alloc_space",
    });
    p.int(14, default);
    // As Go's heap profiles drop the runtime's allocator: the program's frames stay.
    let drop_frames = s.id(&super::heap::allocator_entries_regex());
    p.int(7, drop_frames);
    let period_type = value_type(&mut s, "space", "bytes");
    let period = heap.map_or(0, |h| h.mean_bytes);
    finish(profile, res, s, p, &period_type, period)
}

/// A `ValueType` message of `kind` in `unit`.
fn value_type(s: &mut Strings, kind: &str, unit: &str) -> Vec<u8> {
    let mut m = Msg::default();
    m.int(1, s.id(kind)).int(2, s.id(unit));
    m.0
}

fn encode(profile: &Profile, res: Option<&Resolution>, base_threads: usize) -> Vec<u8> {
    let mut s = Strings::new();
    let mut p = Msg::default();
    let clock = match profile.clock {
        Clock::Cpu => "cpu",
        Clock::Wall => "wall",
    };
    let samples_type = value_type(&mut s, "samples", "count");
    let time_type = value_type(&mut s, clock, "nanoseconds");
    p.bytes(1, &samples_type).bytes(1, &time_type);
    // Samples, leaf first; location ids are frame indices + 1.
    let thread_key = s.id("thread");
    let tid_key = s.id("thread_id");
    let base_label = (base_threads > 0).then(|| (s.id("pprof::base"), s.id("true")));
    for (i, t) in profile.threads.iter().enumerate() {
        let name = s.id(&t.name);
        let base = i < base_threads;
        for smp in &t.samples {
            let locations = location_ids(profile, smp.stack);
            let weight = smp.weight as i64;
            let time = weight.saturating_mul(profile.interval_ns.min(i64::MAX as u64) as i64);
            // int64 values: a base sample's are negative (two's complement varints).
            let sign = if base { -1 } else { 1 };
            let mut label_thread = Msg::default();
            label_thread.int(1, thread_key).int(2, name);
            let mut label_tid = Msg::default();
            label_tid.int(1, tid_key).int(3, t.tid as u64);
            let mut m = Msg::default();
            m.packed(1, &locations)
                .packed(2, &[(sign * weight) as u64, (sign * time) as u64]);
            m.bytes(3, &label_thread.0).bytes(3, &label_tid.0);
            if let Some((key, value)) = base_label.filter(|_| base) {
                let mut label_base = Msg::default();
                label_base.int(1, key).int(2, value);
                m.bytes(3, &label_base.0);
            }
            // The application's labels: `-tagfocus` and Pyroscope or Parca filter by them.
            for (key, value) in profile.labels.entries(smp.labels) {
                let mut label = Msg::default();
                label.int(1, s.id(key));
                match value {
                    Ok(v) => label.int(3, v as u64),
                    Err(text) => label.int(2, s.id(text)),
                };
                m.bytes(3, &label.0);
            }
            p.bytes(2, &m.0);
        }
    }
    finish(profile, res, s, p, &time_type, profile.interval_ns)
}

/// The rest of a profile after its sample types and samples: mappings, locations, functions,
/// the string table, comments, the time range and the period; gzipped.
fn finish(
    profile: &Profile,
    res: Option<&Resolution>,
    mut s: Strings,
    mut p: Msg,
    period_type: &[u8],
    period: u64,
) -> Vec<u8> {
    // Mappings: one per module.
    for (i, m) in profile.modules.iter().enumerate() {
        let mut mm = Msg::default();
        mm.int(1, i as u64 + 1)
            .int(2, m.base_avma)
            .int(3, m.end_avma)
            .int(4, 0)
            // The recorded path, else the file name: Pyroscope and Parca show it, and
            // symbolize by the build ID.
            .int(5, s.id(if m.path.is_empty() { &m.name } else { &m.path }))
            .int(6, s.id(&m.code_id_string()))
            .int(7, res.is_some() as u64)
            .int(8, res.is_some() as u64)
            .int(9, res.is_some() as u64)
            .int(10, res.is_some() as u64);
        p.bytes(3, &mm.0);
    }
    // Locations (one per frame) and, when resolved, functions (one per name and file).
    let mut functions: HashMap<(String, Option<String>), u64> = HashMap::new();
    let mut function_msgs = Vec::new();
    for (i, f) in profile.frames.iter().enumerate() {
        let mut loc = Msg::default();
        let module = f
            .module
            .checked_sub(1)
            .and_then(|m| profile.modules.get(m as usize));
        let avma = module.map_or(f.address, |m| m.base_avma + f.address);
        loc.int(1, i as u64 + 1)
            .int(2, f.module as u64)
            .int(3, avma);
        if let Some(frames) = res.and_then(|r| r.frames.get(i)) {
            for l in frames {
                let key = (l.function.clone(), l.file.clone());
                let next = functions.len() as u64 + 1;
                let fid = *functions.entry(key).or_insert_with(|| {
                    let mut fm = Msg::default();
                    fm.int(1, next)
                        .int(2, s.id(&l.function))
                        .int(3, s.id(&l.function));
                    fm.int(4, s.id(l.file.as_deref().unwrap_or("")));
                    function_msgs.push(fm.0);
                    next
                });
                let mut line = Msg::default();
                line.int(1, fid).int(2, l.line as u64);
                loc.bytes(4, &line.0);
            }
        }
        p.bytes(4, &loc.0);
    }
    for fm in &function_msgs {
        p.bytes(5, fm);
    }
    // What the profile came from, as pprof's comments (`go tool pprof -comments`).
    let exposure = (profile.process_cpu_ns > 0).then(|| {
        let cpu = profile.process_cpu_ns.to_string();
        ("process_cpu_ns".to_string(), cpu)
    });
    let comments: Vec<u64> = (profile.metadata.iter())
        .chain(&profile.system)
        .chain(&exposure)
        .map(|(k, v)| s.id(&format!("{k}={v}")))
        .collect();
    for st in &s.table {
        p.bytes(6, st.as_bytes());
    }
    for c in comments {
        p.int(13, c);
    }
    p.int(9, profile.start_unix_ns).int(10, profile.duration_ns);
    p.bytes(11, period_type).int(12, period);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = gz.write_all(&p.0);
    gz.finish().unwrap_or_default()
}

/// Location ids (frame index + 1) of stack node `node`, leaf first.
fn location_ids(profile: &Profile, node: u32) -> Vec<u64> {
    let mut ids = Vec::new();
    let mut next = Some(node);
    while let Some(n) = next.and_then(|n| profile.stacks.get(n as usize)) {
        ids.push(n.frame as u64 + 1);
        next = n.parent.checked_sub(1);
    }
    ids
}
