//! Working with the labels samples carry: keeping the samples with a label
//! (`--filter KEY=VALUE`), the values a key takes (`report --by KEY`), and labels shown as a
//! frame at the root of each stack, for formats that have no labels of their own (speedscope,
//! collapsed stacks, SVG, the Firefox Profiler).

use std::collections::HashMap;

use super::{ErrorKind, Location, Resolution, ToolError};
use crate::{Frame, Profile, StackNode};

/// A `KEY=VALUE` label filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelFilter {
    /// The key's name.
    pub key: String,
    /// The value, as text (an integer in decimal).
    pub value: String,
}

impl std::str::FromStr for LabelFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok(LabelFilter {
                key: k.to_string(),
                value: v.to_string(),
            }),
            _ => Err(format!("{s:?} is not KEY=VALUE")),
        }
    }
}

/// Whether label set `labels` (a sample's) has `key` = `value`.
fn has(profile: &Profile, labels: u32, key: &str, value: &str) -> bool {
    profile
        .labels
        .of(labels)
        .any(|(k, v)| k == key && v == value)
}

/// The profile with only the samples labelled `filter` (each kept sample's time delta takes in
/// the dropped ones before it, so times stay true); threads left without samples are dropped.
pub fn filter(profile: &Profile, filter: &LabelFilter) -> Profile {
    let mut out = profile.clone();
    for t in &mut out.threads {
        let mut carried = 0u64;
        t.samples.retain_mut(|s| {
            if has(profile, s.labels, &filter.key, &filter.value) {
                s.dt_us = s.dt_us.saturating_add(carried);
                carried = 0;
                true
            } else {
                carried = carried.saturating_add(s.dt_us);
                false
            }
        });
    }
    out.threads.retain(|t| !t.samples.is_empty());
    out
}

/// The values `key` takes in `profile`'s samples, by weight (heaviest first); samples without
/// the key are not counted.
pub fn values(profile: &Profile, key: &str) -> Vec<(String, u64)> {
    let mut by_set: HashMap<u32, u64> = HashMap::new();
    for s in profile.threads.iter().flat_map(|t| &t.samples) {
        *by_set.entry(s.labels).or_default() += s.weight as u64;
    }
    let mut by_value: HashMap<String, u64> = HashMap::new();
    for (set, weight) in by_set {
        if let Some((_, v)) = profile.labels.of(set).find(|(k, _)| *k == key) {
            *by_value.entry(v.into_owned()).or_default() += weight;
        }
    }
    let mut v: Vec<_> = by_value.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// Checks that `key` names a label of `profile`, with an error that lists those it has.
pub fn check_key(profile: &Profile, key: &str) -> Result<(), ToolError> {
    if profile.labels.keys.iter().any(|k| k == key) {
        return Ok(());
    }
    let known = match profile.labels.keys.is_empty() {
        true => "it has none (vignette::labels::set adds them)".to_string(),
        false => format!("it has {}", profile.labels.keys.join(", ")),
    };
    Err(ToolError::new(
        ErrorKind::Profile,
        format!("the profile has no label {key:?}: {known}"),
    ))
}

/// The profile and its resolution with each labelled sample's stack under one more root frame
/// naming its labels (`endpoint=/search request=12`), for formats without labels. Linear in
/// the stack nodes times the label sets in use.
pub fn as_root_frames(profile: &Profile, res: &Resolution) -> (Profile, Resolution) {
    let (mut p, mut r) = (profile.clone(), res.clone());
    p.max_frames = p.max_frames.saturating_add(1);
    // One frame per label set, named by its labels.
    let first = p.frames.len() as u32;
    for set in 1..=profile.labels.sets.len() as u32 {
        let name: Vec<String> = profile
            .labels
            .of(set)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        p.frames.push(Frame {
            module: 0,
            address: 0,
        });
        r.frames.push(vec![Location {
            function: name.join(" "),
            file: None,
            line: 0,
        }]);
    }
    // (set, old node) -> new node (+1), built on demand, parents first.
    let mut moved: HashMap<(u32, u32), u32> = HashMap::new();
    let mut chain = Vec::new();
    for t in &mut p.threads {
        for s in &mut t.samples {
            if s.labels == 0 {
                continue;
            }
            let set = s.labels;
            let root = *moved.entry((set, u32::MAX)).or_insert_with(|| {
                p.stacks.push(StackNode {
                    parent: 0,
                    frame: first + set - 1,
                });
                p.stacks.len() as u32
            });
            chain.clear();
            let mut at = Some(s.stack);
            while let Some(n) = at {
                if moved.contains_key(&(set, n)) {
                    break;
                }
                chain.push(n);
                at = profile
                    .stacks
                    .get(n as usize)
                    .and_then(|x| x.parent.checked_sub(1));
            }
            let mut parent = at.map_or(root, |n| moved[&(set, n)]);
            for &n in chain.iter().rev() {
                let frame = profile.stacks[n as usize].frame;
                p.stacks.push(StackNode { parent, frame });
                parent = p.stacks.len() as u32;
                moved.insert((set, n), parent);
            }
            s.stack = parent - 1;
        }
    }
    (p, r)
}
