//! Collapsed stacks (`thread;outer;...;inner weight`), the input of flame graph tools.

use std::collections::BTreeMap;

use super::resolve::Resolution;
use crate::Profile;

/// One line per distinct stack, the thread name first, weights in sampling intervals.
pub fn to_collapsed(profile: &Profile, res: &Resolution) -> String {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for t in &profile.threads {
        let thread = if t.name.is_empty() {
            format!("thread-{}", t.tid)
        } else {
            t.name.replace([';', ' '], "_")
        };
        for s in &t.samples {
            let mut line = thread.clone();
            for loc in res.stack(profile, s.stack) {
                line.push(';');
                line.push_str(&loc.function.replace(';', ":"));
            }
            *counts.entry(line).or_default() += s.weight as u64;
        }
    }
    counts
        .into_iter()
        .map(|(stack, n)| format!("{stack} {n}\n"))
        .collect()
}
