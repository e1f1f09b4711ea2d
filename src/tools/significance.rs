//! Whether a function's share of the samples changed between two sets of profiles (a release
//! against the one before, across a fleet) by more than profiles vary among themselves.
//!
//! Each profile is one observation: a function's self share and total share are computed per
//! profile, so one long or busy profile weighs no more than any other. The two sets are
//! compared by Welch's t-test (unequal variances) on those shares, with a 95% confidence
//! interval for the change of the mean share, and the p-values of every function's two tests
//! are corrected for their number by Benjamini and Hochberg's procedure (a false discovery
//! rate: at a q-value of 0.05, about one reported change in twenty is expected to be noise).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::ops::Range;

use super::diff::Comparison;
use super::merge::{merge, MergeOptions};
use super::report::{hottest_in, Options};
use super::resolve::Resolution;
use super::{ErrorKind, ToolError};
use crate::Profile;

/// Two sets of profiles as one (see [`combine_sets`]).
pub struct SetComparison {
    /// Every profile merged, the base set's first: `pair.base_threads` are the base's.
    pub pair: Comparison,
    /// Each input profile's threads in the merged profile, the base set's first.
    threads: Vec<Range<usize>>,
    /// How many input profiles are the base set's.
    base_profiles: usize,
}

/// How one function's share changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Function name.
    pub function: String,
    /// Its self share ([`ShareChange::base`] and so on: mean over each set's profiles).
    pub self_share: ShareChange,
    /// Its total share (anywhere on the stack).
    pub total_share: ShareChange,
}

/// A mean share in each set, the change and what the test says of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShareChange {
    /// Mean share (0 to 1) over the base set's profiles.
    pub base: f64,
    /// Mean share over the new set's profiles.
    pub new: f64,
    /// 95% confidence interval of `new - base`.
    pub interval: (f64, f64),
    /// Welch's two-sided p-value for "no change".
    pub p: f64,
    /// The p-value corrected for every test made (Benjamini-Hochberg).
    pub q: f64,
}

impl ShareChange {
    /// `new - base`.
    pub fn change(&self) -> f64 {
        self.new - self.base
    }
}

impl Change {
    /// The smaller q-value of its two tests.
    pub fn q(&self) -> f64 {
        self.self_share.q.min(self.total_share.q)
    }
}

/// Puts the profiles of `base` and `new` into one, so that one resolution serves all, keeping
/// which threads came from which profile. Each set needs two profiles at least (a variance
/// needs two observations); all must share a clock and an interval.
pub fn combine_sets(base: &[Profile], new: &[Profile]) -> Result<SetComparison, ToolError> {
    if base.len() < 2 || new.len() < 2 {
        return Err(ToolError::new(
            ErrorKind::Profile,
            format!(
                "a comparison with significance needs at least two profiles on each side \
                 ({} and {} given)",
                base.len(),
                new.len()
            ),
        ));
    }
    let all: Vec<Profile> = base.iter().chain(new).cloned().collect();
    let mut threads = Vec::with_capacity(all.len());
    let mut at = 0;
    for p in &all {
        threads.push(at..at + p.threads.len());
        at += p.threads.len();
    }
    let profile = merge(&all, MergeOptions::default())?;
    let base_threads = base.iter().map(|p| p.threads.len()).sum();
    Ok(SetComparison {
        pair: Comparison {
            profile,
            base_threads,
        },
        threads,
        base_profiles: base.len(),
    })
}

impl SetComparison {
    /// Every function of either set, by the smaller q-value of its two tests, then by the
    /// size of its larger change.
    pub fn changes(&self, res: &Resolution) -> Vec<Change> {
        let profile = &self.pair.profile;
        // Per input profile: function -> (self share, total share).
        let shares: Vec<BTreeMap<String, (f64, f64)>> = (self.threads.iter())
            .map(|range| {
                let threads = profile.threads.get(range.clone()).unwrap_or_default();
                let (rows, all) = hottest_in(profile, res, &Options::default(), threads);
                let all = all.max(1) as f64;
                (rows.into_iter())
                    .map(|r| {
                        let s = (r.self_weight as f64 / all, r.total_weight as f64 / all);
                        (r.function, s)
                    })
                    .collect()
            })
            .collect();
        let functions: std::collections::BTreeSet<&String> =
            shares.iter().flat_map(|s| s.keys()).collect();
        let (base, new) = shares.split_at(self.base_profiles);
        let values = |set: &[BTreeMap<String, (f64, f64)>], f: &String, total: bool| {
            (set.iter())
                .map(|s| s.get(f).map_or(0.0, |&(a, b)| if total { b } else { a }))
                .collect::<Vec<f64>>()
        };
        let mut changes: Vec<Change> = (functions.into_iter())
            .map(|f| {
                let test = |total| welch(&values(base, f, total), &values(new, f, total));
                Change {
                    function: f.clone(),
                    self_share: test(false),
                    total_share: test(true),
                }
            })
            .collect();
        // Benjamini-Hochberg over every test made.
        let mut ps: Vec<(f64, usize, bool)> = (changes.iter().enumerate())
            .flat_map(|(i, c)| [(c.self_share.p, i, false), (c.total_share.p, i, true)])
            .collect();
        let qs = benjamini_hochberg(&ps.iter().map(|p| p.0).collect::<Vec<_>>());
        for ((_, i, total), q) in ps.drain(..).zip(qs) {
            let c = &mut changes[i];
            match total {
                false => c.self_share.q = q,
                true => c.total_share.q = q,
            }
        }
        let size = |c: &Change| {
            c.self_share
                .change()
                .abs()
                .max(c.total_share.change().abs())
        };
        changes.sort_by(|a, b| {
            (a.q().total_cmp(&b.q()))
                .then(size(b).total_cmp(&size(a)))
                .then_with(|| a.function.cmp(&b.function))
        });
        changes
    }

    /// The table: `limit` rows of [`SetComparison::changes`], shares in percent.
    pub fn report(&self, res: &Resolution, limit: usize) -> String {
        let (b, n) = (self.base_profiles, self.threads.len() - self.base_profiles);
        let changes = self.changes(res);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{b} base profiles against {n} new ones, each profile one observation (Welch's \
             t-test, 95% intervals, q: p corrected by Benjamini-Hochberg over {} tests)",
            2 * changes.len()
        );
        let _ = writeln!(
            out,
            "self share: base -> new, change [interval] q;   total share: the same;   function"
        );
        let pct = |x: f64| 100.0 * x;
        let share = |s: &ShareChange| {
            format!(
                "{:>6.2}% -> {:>6.2}% {:>+7.2}% [{:>+6.2}, {:>+6.2}] q {:<8}",
                pct(s.base),
                pct(s.new),
                pct(s.change()),
                pct(s.interval.0),
                pct(s.interval.1),
                format_q(s.q)
            )
        };
        for c in changes.iter().take(limit) {
            let _ = writeln!(
                out,
                "{}   {}   {}",
                share(&c.self_share),
                share(&c.total_share),
                super::escape_controls(&c.function)
            );
        }
        out
    }
}

fn format_q(q: f64) -> String {
    if q < 1e-4 {
        format!("{q:.0e}")
    } else {
        format!("{q:.4}")
    }
}

/// Welch's test of `b`'s mean against `a`'s (each at least two values); `q` is left as `p`.
fn welch(a: &[f64], b: &[f64]) -> ShareChange {
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let var = |v: &[f64], m: f64| {
        v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() as f64 - 1.0)
    };
    let (ma, mb) = (mean(a), mean(b));
    let (va, vb) = (var(a, ma) / a.len() as f64, var(b, mb) / b.len() as f64);
    let se = (va + vb).sqrt();
    let change = mb - ma;
    let (p, half) = if se > 0.0 {
        let df = (va + vb).powi(2)
            / (va * va / (a.len() as f64 - 1.0) + vb * vb / (b.len() as f64 - 1.0));
        let p = 2.0 * student_t_upper(change.abs() / se, df);
        (p.min(1.0), t_quantile_975(df) * se)
    } else {
        // No spread at all: any change is certain, none is none.
        (if change == 0.0 { 1.0 } else { 0.0 }, 0.0)
    };
    ShareChange {
        base: ma,
        new: mb,
        interval: (change - half, change + half),
        p,
        q: p,
    }
}

/// Benjamini-Hochberg q-values of `p`, in `p`'s order.
fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut q = vec![1.0; m];
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(p[i] * m as f64 / (rank + 1) as f64);
        q[i] = running.min(1.0);
    }
    q
}

/// P(T > t) for Student's t with `df` degrees of freedom, t >= 0.
fn student_t_upper(t: f64, df: f64) -> f64 {
    0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
}

/// The t with P(T > t) = 0.025 for `df` degrees of freedom (by bisection).
fn t_quantile_975(df: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, 1e3);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if student_t_upper(mid, df) > 0.025 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The regularized incomplete beta function I_x(a, b) (Numerical Recipes' continued fraction).
fn incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_fraction(b, a, 1.0 - x) / b
    }
}

/// The continued fraction of the incomplete beta function, by Lentz's method.
fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    d = if d.abs() < TINY { TINY } else { d };
    d = 1.0 / d;
    let mut h = d;
    for m in 1..300 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < TINY { TINY } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < TINY { TINY } else { c };
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < TINY { TINY } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < TINY { TINY } else { c };
        d = 1.0 / d;
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// ln Γ(x) for x > 0 (Lanczos' approximation, g = 7, 9 terms).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = G[0];
    for (i, g) in G.iter().enumerate().skip(1) {
        sum += g / (x + i as f64);
    }
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against published tables: the two-sided 5% points of Student's t.
    #[test]
    fn student_t_matches_its_tables() {
        for (df, t) in [
            (1.0, 12.706),
            (5.0, 2.571),
            (10.0, 2.228),
            (30.0, 2.042),
            (1e6, 1.960),
        ] {
            let p = 2.0 * student_t_upper(t, df);
            assert!((p - 0.05).abs() < 2e-4, "df {df}: p {p}");
            assert!((t_quantile_975(df) - t).abs() < 2e-3, "df {df}");
        }
        assert!((2.0 * student_t_upper(0.0, 7.0) - 1.0).abs() < 1e-12);
    }

    /// Benjamini and Hochberg's own example (their 1995 paper's 15 p-values): at 5%, the four
    /// smallest are discoveries.
    #[test]
    fn benjamini_hochberg_finds_what_the_paper_finds() {
        let p = [
            0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459, 0.3240, 0.4262,
            0.5719, 0.6528, 0.7590, 1.000,
        ];
        let q = benjamini_hochberg(&p);
        let found = q.iter().filter(|&&q| q <= 0.05).count();
        assert_eq!(found, 4, "{q:?}");
        assert!(q.windows(2).all(|w| w[0] <= w[1]), "monotone for sorted p");
    }

    #[test]
    fn welch_gives_an_interval_around_the_change() {
        let a = [0.30, 0.31, 0.29, 0.30, 0.32, 0.28];
        let b = [0.35, 0.36, 0.34, 0.35, 0.37, 0.33];
        let w = welch(&a, &b);
        assert!((w.change() - 0.05).abs() < 1e-12);
        assert!(w.interval.0 > 0.0 && w.interval.0 < 0.05 && w.interval.1 > 0.05);
        assert!(
            (w.p - 1.12e-4).abs() < 1e-5,
            "t = 6.12 on 10 degrees of freedom: {}",
            w.p
        );
        let same = welch(&a, &a);
        assert!(same.p > 0.99 && same.interval.0 < 0.0 && same.interval.1 > 0.0);
    }
}
