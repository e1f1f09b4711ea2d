//! `vignette info --json`: a profile's facts as one JSON object, for scripts.

use serde_json::{json, Map, Value};

use crate::{EndReason, Profile};

/// What `vignette info` says of `p`, as JSON: clock, rate, time, exposure, backend, the
/// chunk or window and its trigger, metadata and system facts, threads (id, name, samples,
/// weight), modules (name, debug file and ID, code ID, path), how stacks ended and what was
/// lost, by reason.
pub fn to_json(p: &Profile) -> Value {
    let pairs = |pairs: &[(String, String)]| {
        Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect::<Map<_, _>>(),
        )
    };
    let threads: Vec<Value> = (p.threads.iter())
        .map(|t| {
            json!({
                "tid": t.tid,
                "name": t.name,
                "samples": t.samples.len(),
                "weight": t.samples.iter().map(|s| s.weight as u64).sum::<u64>(),
            })
        })
        .collect();
    let modules: Vec<Value> = (p.modules.iter())
        .map(|m| {
            json!({
                "name": m.name,
                "debug_file": m.debug_file,
                "debug_id": m.debug_id_string(),
                "code_id": m.code_id.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                "path": m.path,
            })
        })
        .collect();
    let mut ends = Map::new();
    for end in EndReason::ALL {
        let n = (p.threads.iter())
            .flat_map(|t| &t.samples)
            .filter(|s| s.end == end)
            .count();
        if n > 0 {
            ends.insert(end.name().into(), n.into());
        }
    }
    let lost: Map<_, _> = (p.lost.by_reason().into_iter())
        .map(|(why, n)| (why.to_string(), Value::from(n)))
        .collect();
    let trigger = p.chunk.trigger.as_ref().map(|t| {
        json!({
            "kind": t.kind.name(),
            "at_ns": t.at_ns,
            "tid": t.tid,
            "late_ns": t.late_ns,
            "note": t.note,
        })
    });
    json!({
        "clock": format!("{:?}", p.clock).to_lowercase(),
        "interval_ns": p.interval_ns,
        "start_unix_ns": p.start_unix_ns,
        "duration_ns": p.duration_ns,
        "process_cpu_ns": p.process_cpu_ns,
        "pid": p.pid,
        "backend": p.backend.name(),
        "jit_names": p.jit.len(),
        "rates": p.rates.iter().map(|r| json!({
            "at_ns": r.at_ns,
            "interval_ns": r.interval_ns,
        })).collect::<Vec<_>>(),
        "chunk": {
            "sequence": p.chunk.sequence,
            "window_ns": p.chunk.window_ns,
            "evicted": p.chunk.evicted,
            "trigger": trigger,
        },
        "samples": p.sample_count(),
        "metadata": pairs(&p.metadata),
        "system": pairs(&p.system),
        "threads": threads,
        "modules": modules,
        "stacks_ended": ends,
        "lost": lost,
        "heap": p.heap.as_ref().map(|h| json!({
            "mean_bytes": h.mean_bytes,
            "samples": h.samples,
            "sites": h.sites.len(),
            "inuse_bytes": h.sites.iter().fold(0u64, |a, s| a.saturating_add(s.inuse_bytes)),
            "alloc_bytes": h.sites.iter().fold(0u64, |a, s| a.saturating_add(s.alloc_bytes)),
            "lost": {
                "sites_full": h.lost.sites_full,
                "unwalked": h.lost.unwalked,
                "untracked": h.lost.untracked,
                "reentrant": h.lost.reentrant,
            },
        })),
    })
}
