//! Speedscope's file format (<https://www.speedscope.app/file-format-schema.json>): one sampled
//! profile per thread, weights in microseconds, shared frames with file and line; with a heap,
//! two more, its stacks weighed in bytes in use and allocated.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::heap::{self, HeapMeasure};
use super::resolve::Resolution;
use super::sym_file::Location;
use crate::Profile;

/// Builds the Speedscope document for `profile`, titled `name`.
pub fn to_speedscope(profile: &Profile, res: &Resolution, name: &str) -> Value {
    // The application's own name, where it said it.
    let app = profile.app_name();
    let name = app.as_deref().unwrap_or(name);
    let mut frame_index: HashMap<&Location, usize> = HashMap::new();
    let mut frames: Vec<Value> = Vec::new();
    // A stack node's locations as indices into the shared frames, root first.
    let stack_of = |index: &mut HashMap<_, _>, frames: &mut Vec<Value>, node: u32, heap: bool| {
        let mut locations: Vec<&Location> = res.stack(profile, node);
        if heap {
            heap::trim_innermost(&mut locations, heap::is_allocator_entry);
        }
        (locations.into_iter())
            .map(|loc| {
                *index.entry(loc).or_insert_with(|| {
                    let mut f = json!({ "name": loc.function });
                    if let Some(file) = &loc.file {
                        f["file"] = json!(file);
                        if loc.line > 0 {
                            f["line"] = json!(loc.line);
                        }
                    }
                    frames.push(f);
                    frames.len() - 1
                })
            })
            .collect::<Vec<usize>>()
    };
    let mut profiles = Vec::new();
    let interval_us = profile.interval_ns as f64 / 1000.0;
    for t in profile.threads.iter().filter(|t| !t.samples.is_empty()) {
        let mut samples = Vec::with_capacity(t.samples.len());
        let mut weights = Vec::with_capacity(t.samples.len());
        let mut total = 0.0;
        for s in &t.samples {
            let stack = stack_of(&mut frame_index, &mut frames, s.stack, false);
            let w = s.weight as f64 * interval_us;
            total += w;
            samples.push(stack);
            weights.push(w);
        }
        let title = if t.name.is_empty() {
            format!("thread {}", t.tid)
        } else {
            format!("{} ({})", t.name, t.tid)
        };
        profiles.push(json!({
            "type": "sampled",
            "name": title,
            "unit": "microseconds",
            "startValue": 0,
            "endValue": total,
            "samples": samples,
            "weights": weights,
        }));
    }
    // The heap's views: stacks weighed in bytes.
    for measure in HeapMeasure::ALL {
        if profile.heap.is_none() {
            break;
        }
        let mut samples = Vec::new();
        let mut weights = Vec::new();
        for (stack, bytes) in heap::weights(profile, measure) {
            samples.push(stack_of(&mut frame_index, &mut frames, stack, true));
            weights.push(bytes);
        }
        profiles.push(json!({
            "type": "sampled",
            "name": format!("heap: {}", measure.about()),
            "unit": "bytes",
            "startValue": 0,
            "endValue": weights.iter().fold(0u64, |a, &b| a.saturating_add(b)),
            "samples": samples,
            "weights": weights,
        }));
    }
    if profiles.is_empty() {
        // Speedscope refuses a file without profiles: an empty profile says so instead.
        profiles.push(json!({
            "type": "sampled",
            "name": "no samples",
            "unit": "microseconds",
            "startValue": 0,
            "endValue": 0,
            "samples": [],
            "weights": [],
        }));
    }
    json!({
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "name": name,
        "exporter": format!("vignette {}", env!("CARGO_PKG_VERSION")),
        "activeProfileIndex": 0,
        "shared": { "frames": frames },
        "profiles": profiles,
    })
}
