//! A terminal table of the hottest functions, the way `perf report` gives a first look.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;

use super::resolve::Resolution;
use crate::Profile;

/// One function's share of the samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Function name.
    pub function: String,
    /// Weight of samples where it is the innermost frame.
    pub self_weight: u64,
    /// Weight of samples where it is anywhere on the stack.
    pub total_weight: u64,
}

/// Functions by self weight (then total), over the threads `filter` accepts.
pub fn hottest(
    profile: &Profile,
    res: &Resolution,
    filter: impl Fn(&crate::Thread) -> bool,
) -> (Vec<Row>, u64) {
    // Weights per distinct stack first: each stack is walked once, however many samples.
    let mut stacks: HashMap<u32, u64> = HashMap::new();
    let mut all = 0;
    for t in profile.threads.iter().filter(|t| filter(t)) {
        for s in &t.samples {
            all += s.weight as u64;
            *stacks.entry(s.stack).or_default() += s.weight as u64;
        }
    }
    let mut rows: HashMap<&str, (u64, u64)> = HashMap::new();
    for (stack, w) in stacks {
        let stack = res.stack(profile, stack);
        if let Some(leaf) = stack.last() {
            rows.entry(&leaf.function).or_default().0 += w;
        }
        let mut seen = HashSet::new();
        for loc in &stack {
            if seen.insert(loc.function.as_str()) {
                rows.entry(&loc.function).or_default().1 += w;
            }
        }
    }
    let mut rows: Vec<Row> = rows
        .into_iter()
        .map(|(f, (s, t))| Row {
            function: f.to_string(),
            self_weight: s,
            total_weight: t,
        })
        .collect();
    rows.sort_by(|a, b| {
        (b.self_weight, b.total_weight, &a.function).cmp(&(
            a.self_weight,
            a.total_weight,
            &b.function,
        ))
    });
    (rows, all)
}

/// The report text: the `limit` hottest functions by self weight, for all threads merged or
/// for each thread.
pub fn report(profile: &Profile, res: &Resolution, per_thread: bool, limit: usize) -> String {
    let mut out = String::new();
    let mut table = |title: &str, rows: Vec<Row>, all: u64| {
        let pct = |w: u64| 100.0 * w as f64 / all.max(1) as f64;
        let _ = writeln!(out, "{title}: {all} sampling intervals");
        let _ = writeln!(out, "{:>7} {:>7}  function", "self", "total");
        for r in rows.iter().take(limit) {
            let _ = writeln!(
                out,
                "{:>6.2}% {:>6.2}%  {}",
                pct(r.self_weight),
                pct(r.total_weight),
                super::escape_controls(&r.function)
            );
        }
        out.push('\n');
    };
    if per_thread {
        for t in profile.threads.iter().filter(|t| !t.samples.is_empty()) {
            let (rows, all) = hottest(profile, res, |x| x.tid == t.tid);
            let name = super::escape_controls(&t.name);
            table(&format!("thread {name} ({})", t.tid), rows, all);
        }
    } else {
        let (rows, all) = hottest(profile, res, |_| true);
        table("all threads", rows, all);
    }
    out
}
