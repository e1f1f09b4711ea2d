//! A terminal table of the hottest functions, the way `perf report` gives a first look.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;

use super::resolve::Resolution;
use super::sym_file::Location;
use crate::Profile;

/// How rows are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// By self weight: where the CPU was spent (then by total)
    #[default]
    Self_,
    /// By total weight: what the time was spent under (then by self)
    Total,
}

impl Sort {
    /// Both orders.
    pub const ALL: [Sort; 2] = [Sort::Self_, Sort::Total];

    /// Its name, as the command line takes it.
    pub fn name(self) -> &'static str {
        match self {
            Sort::Self_ => "self",
            Sort::Total => "total",
        }
    }

    /// What it orders by, in a few words.
    pub fn about(self) -> &'static str {
        match self {
            Sort::Self_ => "By self weight: where the CPU was spent (then by total)",
            Sort::Total => "By total weight: what the time was spent under (then by self)",
        }
    }
}

impl std::str::FromStr for Sort {
    type Err = String;

    /// The order named `s` (see [`Sort::name`]).
    fn from_str(s: &str) -> Result<Self, String> {
        (Sort::ALL.into_iter().find(|o| o.name() == s)).ok_or_else(|| format!("no order {s:?}"))
    }
}

/// What [`report`] shows.
#[derive(Debug, Clone)]
pub struct Options {
    /// How rows are ordered.
    pub sort: Sort,
    /// Rows per table.
    pub limit: usize,
    /// One table per thread instead of all threads merged.
    pub per_thread: bool,
    /// Inlined functions as rows of their own; by default their time counts for the function
    /// they were inlined into (the one the code is in), which is what a person reads first.
    pub inlined: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sort: Sort::Self_,
            limit: 20,
            per_thread: false,
            inlined: false,
        }
    }
}

/// One function's share of the samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Function name.
    pub function: String,
    /// Weight of samples where it is the innermost frame.
    pub self_weight: u64,
    /// Weight of samples where it is anywhere on the stack.
    pub total_weight: u64,
    /// Where in it most of that weight is (`file:line`; self weight first, else total), if
    /// the symbols say.
    pub hottest_line: Option<String>,
}

/// The locations of stack node `node`, root first: with `inlined`, every inline frame;
/// otherwise only the function each frame's code is in (the outermost of its inline frames),
/// its line being that of the inlined call.
fn stack<'a>(
    profile: &Profile,
    res: &'a Resolution,
    node: u32,
    inlined: bool,
) -> Vec<&'a Location> {
    if inlined {
        return res.stack(profile, node);
    }
    let mut out = Vec::new();
    let mut next = Some(node);
    while let Some(n) = next.and_then(|n| profile.stacks.get(n as usize)) {
        if let Some(outer) = res.frames.get(n.frame as usize).and_then(|f| f.last()) {
            out.push(outer);
        }
        next = n.parent.checked_sub(1);
    }
    out.reverse();
    out
}

/// `file:line` with at most the file's folder and name (`common/workload.rs:42`).
fn short_location(l: &Location) -> Option<String> {
    let file = l.file.as_deref()?;
    let mut parts = file.rsplit(['/', '\\']);
    let name = parts.next().unwrap_or(file);
    Some(match parts.next().filter(|d| !d.is_empty()) {
        Some(dir) => format!("{dir}/{name}:{}", l.line),
        None => format!("{name}:{}", l.line),
    })
}

/// Functions over the threads `filter` accepts, ordered by `options.sort`, and the weight of
/// all their samples.
pub fn hottest(
    profile: &Profile,
    res: &Resolution,
    options: &Options,
    filter: impl Fn(&crate::Thread) -> bool,
) -> (Vec<Row>, u64) {
    hottest_in(
        profile,
        res,
        options,
        profile.threads.iter().filter(|t| filter(t)),
    )
}

/// [`hottest`] over `threads`, some of `profile`'s (a slice of them costs only its own
/// samples, where a filter looks at every thread).
pub fn hottest_in<'a>(
    profile: &Profile,
    res: &Resolution,
    options: &Options,
    threads: impl IntoIterator<Item = &'a crate::Thread>,
) -> (Vec<Row>, u64) {
    // Weights per distinct stack first: each stack is walked once, however many samples.
    let mut stacks: HashMap<u32, u64> = HashMap::new();
    let mut all = 0;
    for t in threads {
        for s in &t.samples {
            all += s.weight as u64;
            *stacks.entry(s.stack).or_default() += s.weight as u64;
        }
    }
    (rows_of(profile, res, options, stacks, |_| false), all)
}

/// Functions by the weights of the distinct stacks (stack node to weight) they are in,
/// ordered by `options.sort`; innermost frames whose function `trim` names are left out.
pub fn rows_of(
    profile: &Profile,
    res: &Resolution,
    options: &Options,
    stacks: HashMap<u32, u64>,
    trim: fn(&str) -> bool,
) -> Vec<Row> {
    #[derive(Default)]
    struct Acc<'a> {
        self_weight: u64,
        total_weight: u64,
        /// (self, total) weight per location inside the function.
        lines: HashMap<(Option<&'a str>, u32), (u64, u64)>,
    }
    let mut rows: HashMap<&str, Acc> = HashMap::new();
    for (node, w) in stacks {
        let mut stack = stack(profile, res, node, options.inlined);
        super::heap::trim_innermost(&mut stack, trim);
        if let Some(leaf) = stack.last() {
            let acc = rows.entry(&leaf.function).or_default();
            acc.self_weight += w;
            acc.lines
                .entry((leaf.file.as_deref(), leaf.line))
                .or_default()
                .0 += w;
        }
        let mut seen = HashSet::new();
        for loc in &stack {
            if seen.insert(loc.function.as_str()) {
                let acc = rows.entry(&loc.function).or_default();
                acc.total_weight += w;
                acc.lines
                    .entry((loc.file.as_deref(), loc.line))
                    .or_default()
                    .1 += w;
            }
        }
    }
    let mut rows: Vec<Row> = rows
        .into_iter()
        .map(|(f, acc)| {
            let hottest = acc
                .lines
                .iter()
                .filter(|((file, _), _)| file.is_some())
                .max_by_key(|(&(file, line), &(s, t))| (s, t, std::cmp::Reverse((file, line))));
            Row {
                function: f.to_string(),
                self_weight: acc.self_weight,
                total_weight: acc.total_weight,
                hottest_line: hottest.and_then(|(&(file, line), _)| {
                    short_location(&Location {
                        function: String::new(),
                        file: file.map(str::to_string),
                        line,
                    })
                }),
            }
        })
        .collect();
    let key = |r: &Row| match options.sort {
        Sort::Self_ => (r.self_weight, r.total_weight),
        Sort::Total => (r.total_weight, r.self_weight),
    };
    rows.sort_by(|a, b| (key(b), &a.function).cmp(&(key(a), &b.function)));
    rows
}

/// The report text: the hottest functions as `options` says, for all threads merged or for
/// each thread.
pub fn report(profile: &Profile, res: &Resolution, options: &Options) -> String {
    let mut out = chunk_header(profile);
    let mut table = |title: &str, rows: Vec<Row>, all: u64| {
        let pct = |w: u64| 100.0 * w as f64 / all.max(1) as f64;
        let sorted = options.sort.name();
        let _ = writeln!(out, "{title}: {all} sampling intervals, by {sorted}");
        write_rows(&mut out, &rows, options.limit, 7, |w| {
            format!("{:.2}%", pct(w))
        });
    };
    if options.per_thread {
        for t in profile.threads.iter().filter(|t| !t.samples.is_empty()) {
            let (rows, all) = hottest(profile, res, options, |x| x.tid == t.tid);
            let name = super::escape_controls(&t.name);
            table(&format!("thread {name} ({})", t.tid), rows, all);
        }
    } else {
        let (rows, all) = hottest(profile, res, options, |_| true);
        table("all threads", rows, all);
        // The thread a trigger names (the hung or panicking one), on its own.
        let named = profile.chunk.trigger.as_ref().map(|t| t.tid);
        if let Some(t) = profile
            .threads
            .iter()
            .find(|t| Some(t.tid) == named && t.tid != 0)
        {
            let (rows, all) = hottest(profile, res, options, |x| x.tid == t.tid);
            let name = super::escape_controls(&t.name);
            table(
                &format!("the trigger's thread {name} ({})", t.tid),
                rows,
                all,
            );
        }
    }
    heap_tables(&mut out, profile, res, options);
    out
}

/// The heap's tables, when the profile has one: functions by bytes in use, then by bytes
/// allocated.
fn heap_tables(out: &mut String, profile: &Profile, res: &Resolution, options: &Options) {
    let Some(summary) = super::heap::summary(profile) else {
        return;
    };
    let _ = writeln!(out, "{summary}\n");
    for measure in super::heap::HeapMeasure::ALL {
        let mut stacks: HashMap<u32, u64> = HashMap::new();
        for (stack, bytes) in super::heap::weights(profile, measure) {
            let w = stacks.entry(stack).or_default();
            *w = w.saturating_add(bytes);
        }
        // Sums of a file's counts: saturating, never a panic on a hostile profile.
        let all = stacks.values().fold(0u64, |a, &b| a.saturating_add(b));
        let rows = rows_of(
            profile,
            res,
            options,
            stacks,
            super::heap::is_allocation_plumbing,
        );
        let human = super::heap::human_bytes;
        let sorted = options.sort.name();
        let _ = writeln!(
            out,
            "heap, {}: {}, by {sorted} (self: the innermost function outside Rust's alloc \
             and core crates)",
            measure.about(),
            human(all)
        );
        write_rows(out, &rows, options.limit, 10, human);
    }
}

/// A table's header and its first `limit` rows, each weight shown by `show` in a column
/// `width` wide, then a blank line.
fn write_rows(
    out: &mut String,
    rows: &[Row],
    limit: usize,
    width: usize,
    show: impl Fn(u64) -> String,
) {
    let _ = writeln!(
        out,
        "{:>width$} {:>width$}  function (hottest line)",
        "self", "total"
    );
    for r in rows.iter().take(limit) {
        let (s, t) = (show(r.self_weight), show(r.total_weight));
        let f = super::escape_controls(&r.function);
        let _ = write!(out, "{s:>width$} {t:>width$}  {f}");
        if let Some(at) = &r.hottest_line {
            let _ = write!(out, "  ({})", super::escape_controls(at));
        }
        out.push('\n');
    }
    out.push('\n');
}

/// What sampled the profile, and what the chunk is: a flight recorder's window, a rotated
/// chunk, what triggered it.
fn chunk_header(profile: &Profile) -> String {
    let c = &profile.chunk;
    let mut out = String::new();
    let secs = |ns: u64| ns as f64 / 1e9;
    if c.window_ns > 0 {
        let _ = writeln!(
            out,
            "flight recorder window {} of the last {:.3} s ({} older samples evicted)",
            c.sequence,
            secs(c.window_ns),
            c.evicted
        );
    } else if c.sequence > 0 {
        let _ = writeln!(out, "chunk {} of a rotated session", c.sequence);
    }
    if profile.backend != crate::Backend::Unrecorded {
        let _ = writeln!(
            out,
            "sampled by {} on the {} clock every {:.3} ms",
            profile.backend.name(),
            match profile.clock {
                crate::Clock::Cpu => "CPU",
                crate::Clock::Wall => "wall",
            },
            profile.interval_ns as f64 / 1e6
        );
    }
    if let Some(line) = pacing(profile) {
        let _ = writeln!(out, "{line}");
    }
    if let Some(line) = not_sampled(profile) {
        let _ = writeln!(out, "{line}");
    }
    // What it came from: the application's metadata, then the system in a few words.
    if !profile.metadata.is_empty() {
        let pairs: Vec<String> = (profile.metadata.iter())
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    super::escape_controls(k),
                    super::escape_controls(v)
                )
            })
            .collect();
        let _ = writeln!(out, "from {}", pairs.join(" "));
    }
    let fact = |k: &str| profile.system_fact(k);
    if let (Some(os), Some(arch)) = (fact("os"), fact("arch")) {
        let version = fact("os_version").map_or(String::new(), |v| format!(" {v}"));
        let cores = fact("cores").map_or(String::new(), |c| format!(", {c} cores"));
        let _ = writeln!(
            out,
            "on {}{} {}{}",
            super::escape_controls(os),
            super::escape_controls(&version),
            super::escape_controls(arch),
            super::escape_controls(&cores)
        );
    }
    if let Some(t) = &c.trigger {
        let thread = profile.threads.iter().find(|x| x.tid == t.tid);
        let who = match thread {
            Some(x) => format!("thread {} ({})", super::escape_controls(&x.name), t.tid),
            None => format!("thread {}", t.tid),
        };
        let _ = write!(
            out,
            "captured by a {} trigger at +{:.3} s for {who}",
            t.kind.name(),
            secs(t.at_ns)
        );
        if t.kind == crate::TriggerKind::Hang {
            let _ = write!(out, ", silent for {:.0} ms", t.late_ns as f64 / 1e6);
        }
        if !t.note.is_empty() {
            let _ = write!(out, ": {}", super::escape_controls(&t.note));
        }
        out.push('\n');
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// The intervals the profile counts as not sampled, with their share and why; `None` when
/// none were lost.
pub fn not_sampled(profile: &crate::Profile) -> Option<String> {
    let lost = profile.lost.total();
    if lost == 0 {
        return None;
    }
    let sampled: u64 = (profile.threads.iter())
        .flat_map(|t| &t.samples)
        .map(|s| s.weight as u64)
        .sum();
    let why: Vec<String> = (profile.lost.by_reason().into_iter())
        .filter(|&(_, n)| n > 0)
        .map(|(reason, n)| format!("{reason} {n} ({})", crate::Lost::meaning(reason)))
        .collect();
    Some(format!(
        "not sampled: {lost} of {} intervals ({:.1}%): {}",
        lost + sampled,
        100.0 * lost as f64 / (lost + sampled) as f64,
        why.join(", ")
    ))
}

/// How an overhead budget paced the sampler ([`crate::Profile::rates`]): the range of
/// intervals and the mean rate over the time they were recorded for.
fn pacing(profile: &crate::Profile) -> Option<String> {
    let first = profile.rates.first()?;
    // (from, interval) spans: the requested interval until the first change.
    let spans = std::iter::once((0, profile.interval_ns))
        .chain(profile.rates.iter().map(|r| (r.at_ns, r.interval_ns)));
    let ends = (profile.rates.iter().map(|r| r.at_ns)).chain(std::iter::once(profile.duration_ns));
    let (mut ticks, mut covered) = (0f64, 0u64);
    let (mut lo, mut hi) = (u64::MAX, 0);
    for ((from, interval), to) in spans.zip(ends) {
        if interval == 0 {
            break;
        }
        let span = to.saturating_sub(from);
        ticks += span as f64 / interval as f64;
        covered += span;
        (lo, hi) = (lo.min(interval), hi.max(interval));
    }
    let mut line = format!(
        "paced by an overhead budget: every {:.3} to {:.3} ms, {} changes from {:.3} s",
        lo as f64 / 1e6,
        hi as f64 / 1e6,
        profile.rates.iter().filter(|r| r.interval_ns != 0).count(),
        first.at_ns as f64 / 1e9
    );
    if covered > 0 {
        line += &format!(", {:.0} Hz on average", ticks / (covered as f64 / 1e9));
    }
    if let Some(r) = profile.rates.iter().find(|r| r.interval_ns == 0) {
        line += &format!(
            " (changes after {:.3} s not recorded; weights count them)",
            r.at_ns as f64 / 1e9
        );
    }
    Some(line)
}
