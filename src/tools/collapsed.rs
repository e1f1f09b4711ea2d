//! Collapsed stacks (`thread;outer;...;inner weight`), the input of flame graph tools.

use std::collections::BTreeMap;

use super::escape_controls;
use super::resolve::Resolution;
use crate::Profile;

/// One line per distinct stack, the thread name first, weights in sampling intervals. Names
/// are made safe for the format: control characters become `\u{..}` escapes (a newline would
/// split a line and invent a frame), `;` in a function becomes `:`, and `;` or a space in a
/// thread name becomes `_`. Each distinct stack is walked once, however many samples it has.
pub fn to_collapsed(profile: &Profile, res: &Resolution) -> String {
    let mut weights: BTreeMap<(usize, u32), u64> = BTreeMap::new();
    for (i, t) in profile.threads.iter().enumerate() {
        for s in &t.samples {
            *weights.entry((i, s.stack)).or_default() += s.weight as u64;
        }
    }
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for ((i, stack), w) in weights {
        let t = &profile.threads[i];
        let mut line = if t.name.is_empty() {
            format!("thread-{}", t.tid)
        } else {
            escape_controls(&t.name).replace([';', ' '], "_")
        };
        line.push(';');
        line.push_str(&stack_line(profile, res, stack));
        *counts.entry(line).or_default() += w;
    }
    counts
        .into_iter()
        .map(|(stack, n)| format!("{stack} {n}\n"))
        .collect()
}

/// Stack node `node` as collapsed stacks write it, outermost function first, `;` between
/// (inline frames included; names made safe as [`to_collapsed`] says).
pub fn stack_line(profile: &Profile, res: &Resolution, node: u32) -> String {
    stack_line_trimmed(profile, res, node, |_| false)
}

/// [`stack_line`] without the innermost frames whose function `trim` names (at least the
/// outermost frame stays).
pub fn stack_line_trimmed(
    profile: &Profile,
    res: &Resolution,
    node: u32,
    trim: fn(&str) -> bool,
) -> String {
    let mut stack = res.stack(profile, node);
    super::heap::trim_innermost(&mut stack, trim);
    (stack.iter())
        .map(|loc| escape_controls(&loc.function).replace(';', ":"))
        .collect::<Vec<_>>()
        .join(";")
}
