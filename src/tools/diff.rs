//! What changed between two profiles (a release against the one before, a slow run against a
//! normal one): per function, its share of the samples before and after, as a table sorted by
//! change, as pprof (`go tool pprof -diff_base`'s form: base samples negated), and as a
//! differential flame graph (width from the new profile, red where a stack grew, blue where it
//! shrank).
//!
//! Shares, not raw weights, are compared: two profiles of different lengths compare fairly.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::collapsed::stack_line;
use super::merge::{merge, MergeOptions};
use super::report::{hottest, Options};
use super::resolve::Resolution;
use super::{ErrorKind, ToolError};
use crate::Profile;

/// The two profiles as one (see [`combine`]).
pub struct Comparison {
    /// Both profiles merged: the base's threads first, then the new one's.
    pub profile: Profile,
    /// How many of `profile`'s threads are the base's.
    pub base_threads: usize,
}

/// Puts `base` and `new` into one profile, so that one resolution serves both (their common
/// modules are one module). They must share a clock and an interval.
pub fn combine(base: &Profile, new: &Profile) -> Result<Comparison, ToolError> {
    let profile = merge(&[base.clone(), new.clone()], MergeOptions::default())?;
    Ok(Comparison {
        profile,
        base_threads: base.threads.len(),
    })
}

/// One function's shares (0 to 1) of the base's and the new profile's samples.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffRow {
    /// Function name.
    pub function: String,
    /// Share of the base's samples with it innermost.
    pub base_self: f64,
    /// Share of the base's samples with it anywhere on the stack.
    pub base_total: f64,
    /// Share of the new profile's samples with it innermost.
    pub new_self: f64,
    /// Share of the new profile's samples with it anywhere on the stack.
    pub new_total: f64,
}

impl DiffRow {
    /// How the self share changed (new minus base).
    pub fn self_change(&self) -> f64 {
        self.new_self - self.base_self
    }

    /// How the total share changed (new minus base).
    pub fn total_change(&self) -> f64 {
        self.new_total - self.base_total
    }
}

impl Comparison {
    fn is_base(&self, t: &crate::Thread) -> bool {
        let base = &self.profile.threads[..self.base_threads];
        base.as_ptr_range().contains(&(t as *const crate::Thread))
    }

    /// Every function of either profile, the largest change first: of its self share or of its
    /// total share, whichever changed more (a function that got slower may spend the new time
    /// in what it calls, so only its total share grows).
    pub fn rows(&self, res: &Resolution) -> Vec<DiffRow> {
        let options = Options::default();
        let shares = |base: bool| {
            let (rows, all) = hottest(&self.profile, res, &options, |t| self.is_base(t) == base);
            let all = all.max(1) as f64;
            rows.into_iter()
                .map(|r| {
                    let s = (r.self_weight as f64 / all, r.total_weight as f64 / all);
                    (r.function, s)
                })
                .collect::<BTreeMap<_, _>>()
        };
        let (before, after) = (shares(true), shares(false));
        let mut rows: Vec<DiffRow> = before
            .keys()
            .chain(after.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|f| {
                let (bs, bt) = before.get(f).copied().unwrap_or_default();
                let (ns, nt) = after.get(f).copied().unwrap_or_default();
                DiffRow {
                    function: f.clone(),
                    base_self: bs,
                    base_total: bt,
                    new_self: ns,
                    new_total: nt,
                }
            })
            .collect();
        rows.sort_by(|a, b| {
            let key = |r: &DiffRow| {
                let (s, t) = (r.self_change().abs(), r.total_change().abs());
                (s.max(t), s)
            };
            key(b)
                .partial_cmp(&key(a))
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| a.function.cmp(&b.function))
        });
        rows
    }

    /// The table: `limit` rows of [`Comparison::rows`], shares in percent.
    pub fn report(&self, res: &Resolution, limit: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "self share (base -> new, change), total share (base -> new, change), function; \
             largest change (of either) first"
        );
        for r in self.rows(res).iter().take(limit) {
            let pct = |x: f64| 100.0 * x;
            let _ = writeln!(
                out,
                "{:>6.2}% -> {:>6.2}% {:>+7.2}%   {:>6.2}% -> {:>6.2}% {:>+7.2}%   {}",
                pct(r.base_self),
                pct(r.new_self),
                pct(r.self_change()),
                pct(r.base_total),
                pct(r.new_total),
                pct(r.total_change()),
                super::escape_controls(&r.function)
            );
        }
        out
    }

    /// The comparison as pprof (see [`super::pprof::to_pprof_diff`]).
    pub fn to_pprof(&self, res: &Resolution) -> Vec<u8> {
        super::pprof::to_pprof_diff(&self.profile, res, self.base_threads)
    }

    /// A differential flame graph: each stack as wide as its share of the new profile, red
    /// where its share grew, blue where it shrank (the base's weights are scaled to the new
    /// profile's total, so the colours compare shares).
    pub fn to_svg(&self, res: &Resolution, title: &str) -> Result<Vec<u8>, ToolError> {
        let mut weights: BTreeMap<(bool, u32), u64> = BTreeMap::new();
        for t in &self.profile.threads {
            let base = self.is_base(t);
            for s in &t.samples {
                *weights.entry((base, s.stack)).or_default() += s.weight as u64;
            }
        }
        let total = |base: bool| -> u64 {
            weights
                .iter()
                .filter(|((b, _), _)| *b == base)
                .map(|(_, w)| w)
                .sum()
        };
        let (base_all, new_all) = (total(true).max(1), total(false).max(1));
        let mut lines: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for ((base, stack), w) in weights {
            let line = stack_line(&self.profile, res, stack);
            let e = lines.entry(line).or_default();
            if base {
                e.0 += w;
            } else {
                e.1 += w;
            }
        }
        let text: Vec<String> = lines
            .into_iter()
            .map(|(line, (b, n))| {
                let scaled = (b as u128 * new_all as u128 / base_all as u128) as u64;
                format!("{line} {scaled} {n}")
            })
            .collect();
        if text.is_empty() {
            return Err(ToolError::new(
                ErrorKind::Profile,
                "both profiles are empty: nothing to compare",
            ));
        }
        let mut options = inferno::flamegraph::Options::default();
        options.title = super::escape_controls(title).into_owned();
        options.count_name = "samples".to_string();
        let mut svg = Vec::new();
        inferno::flamegraph::from_lines(&mut options, text.iter().map(String::as_str), &mut svg)
            .map_err(|e| {
                ToolError::new(ErrorKind::Output, format!("rendering the flame graph: {e}"))
            })?;
        Ok(svg)
    }
}
