//! Speedscope's file format (<https://www.speedscope.app/file-format-schema.json>): one sampled
//! profile per thread, weights in microseconds, shared frames with file and line.

use std::collections::HashMap;

use serde_json::{json, Value};

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
    let mut profiles = Vec::new();
    let interval_us = profile.interval_ns as f64 / 1000.0;
    for t in profile.threads.iter().filter(|t| !t.samples.is_empty()) {
        let mut samples = Vec::with_capacity(t.samples.len());
        let mut weights = Vec::with_capacity(t.samples.len());
        let mut total = 0.0;
        for s in &t.samples {
            let stack: Vec<usize> = res
                .stack(profile, s.stack)
                .into_iter()
                .map(|loc| {
                    *frame_index.entry(loc).or_insert_with(|| {
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
                .collect();
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
