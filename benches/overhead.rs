//! Overhead on a real workload: the demo's workload (4 threads, a fixed amount of work each)
//! unprofiled, profiled by vignette on each backend this system allows (`vignette-perf`: perf
//! events; `vignette-timers`: thread CPU timers; `vignette-thread`: the sampler thread), and
//! profiled by pprof-rs (the peer), at 100, 1000 and 4000 Hz requested. Every configuration runs in fresh child processes, twice per run:
//!
//! - **alone**, for the achieved sample rate per worker thread (samples per second of the
//!   thread's own CPU time), the CPU of the output step (vignette: encoding the profile;
//!   pprof-rs: building its report), the peak RSS above an unprofiled child's, and vignette's
//!   sampler-thread CPU;
//! - **beside an unprofiled twin** doing the same work at the same time, for the CPU overhead:
//!   the profiled child's process CPU (profiler threads included) against the twin's. The two
//!   share the machine's moment-to-moment speed, which on a shared VM drifts by several percent
//!   from second to second and would drown a 1% effect measured in turns. An unprofiled pair
//!   shows the noise that is left.
//!
//! Results are medians over the runs. `cargo bench --bench overhead` (about 12 minutes;
//! `OVERHEAD_RUNS=n` sets the runs, 5 by default). Both profilers use their defaults and a
//! per-CPU-time clock (vignette `Clock::Cpu`, pprof-rs `ITIMER_PROF`).
//!
//! `cargo bench --bench overhead -- budget` measures the overhead budget instead
//! ([`vignette::Builder::max_overhead`]): budgets of 0.5%, 1% and 2% at 1000 Hz with 4, 8
//! and 32 busy threads (the same total work), each beside an unprofiled twin, and the rate
//! each achieved.
#![allow(missing_docs)]

#[path = "../examples/common/workload.rs"]
mod workload;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};

const THREADS: usize = 4;
/// Work units per thread (about 2.5 s of wall time alone on the machine in BENCHMARKS.md).
const UNITS: u64 = 30_000;
const RATES: [u32; 3] = [100, 1000, 4000];
const CHILD_ENV: &str = "VIGNETTE_OVERHEAD_CHILD";

/// What one child measured.
#[derive(Debug, Clone, Copy, Default)]
struct Outcome {
    /// Process CPU from profiler start to stop (the whole work when unprofiled), ns.
    cpu_ns: u64,
    /// CPU of the output step, ns.
    output_ns: u64,
    /// Samples of the worker threads.
    samples: u64,
    /// CPU time of the worker threads, ns.
    worker_cpu_ns: u64,
    /// CPU time of vignette's sampler thread, ns (0 for the others).
    sampler_ns: u64,
    /// Peak resident set, KiB.
    max_rss_kib: u64,
    /// Bytes vignette mapped for its buffers (0 for the others).
    buffers: u64,
    /// Under a budget: vignette's own estimate of its cost over the session, in millionths.
    estimate_ppm: u64,
}

impl Outcome {
    const FIELDS: usize = 8;

    fn to_line(self) -> String {
        format!(
            "OUTCOME {} {} {} {} {} {} {} {}",
            self.cpu_ns,
            self.output_ns,
            self.samples,
            self.worker_cpu_ns,
            self.sampler_ns,
            self.max_rss_kib,
            self.buffers,
            self.estimate_ppm
        )
    }

    fn from_line(line: &str) -> Option<Outcome> {
        let v: Vec<u64> = line
            .strip_prefix("OUTCOME ")?
            .split(' ')
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        (v.len() == Self::FIELDS).then(|| Outcome {
            cpu_ns: v[0],
            output_ns: v[1],
            samples: v[2],
            worker_cpu_ns: v[3],
            sampler_ns: v[4],
            max_rss_kib: v[5],
            buffers: v[6],
            estimate_ppm: v[7],
        })
    }
}

fn rusage() -> libc::rusage {
    // SAFETY: ru is a valid rusage to write.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    }
}

fn process_cpu_ns() -> u64 {
    let ru = rusage();
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    ns(ru.ru_utime) + ns(ru.ru_stime)
}

/// Runs the workload on `threads` threads under `who` (`none`: unprofiled;
/// `vignette-budget-P`: a budget of P percent) at `hz`.
fn child(who: &str, hz: u32, threads: usize) -> Outcome {
    let units = UNITS * THREADS as u64 / threads as u64;
    let mut out = Outcome::default();
    let worker_samples = |names: &mut dyn Iterator<Item = (&str, u64)>| -> u64 {
        names
            .filter(|(name, _)| name.starts_with("worker-"))
            .map(|(_, n)| n)
            .sum()
    };
    match who {
        "none" => {
            let t0 = process_cpu_ns();
            out.worker_cpu_ns = workload::run_units(threads, units).iter().sum();
            out.cpu_ns = process_cpu_ns() - t0;
        }
        vignette if vignette.starts_with("vignette") => {
            let builder = vignette::Profiler::builder().frequency(hz);
            let builder = match vignette.strip_prefix("vignette-budget-") {
                Some(p) => builder.max_overhead(p.parse().expect("a budget in percent")),
                None => builder.backend(backend_of(vignette)),
            };
            let mut p = builder.build().expect("profiler");
            out.buffers = p.mapped_bytes() as u64;
            let t0 = process_cpu_ns();
            p.start().expect("start");
            out.worker_cpu_ns = workload::run_units(threads, units).iter().sum();
            out.sampler_ns = workload::named_thread_cpu_ns("vignette");
            out.estimate_ppm = p
                .overhead()
                .map_or(0, |o| (o.session_percent * 10_000.0) as u64);
            let capture = p.stop().expect("stop");
            let t1 = process_cpu_ns();
            let bytes = capture.to_vec();
            out.output_ns = process_cpu_ns() - t1;
            out.cpu_ns = t1 - t0;
            let profile = vignette::Profile::decode(&bytes).expect("decodes");
            out.samples = worker_samples(
                &mut profile
                    .threads
                    .iter()
                    .map(|t| (t.name.as_str(), t.samples.len() as u64)),
            );
        }
        "pprof" => {
            let t0 = process_cpu_ns();
            let guard = pprof::ProfilerGuardBuilder::default()
                .frequency(hz as i32)
                .blocklist(&["libc", "libgcc", "pthread", "vdso"])
                .build()
                .expect("pprof");
            out.worker_cpu_ns = workload::run_units(threads, units).iter().sum();
            let t1 = process_cpu_ns();
            let report = guard.report().build().expect("report");
            out.output_ns = process_cpu_ns() - t1;
            out.cpu_ns = t1 - t0;
            out.samples = worker_samples(
                &mut report
                    .data
                    .iter()
                    .map(|(f, &n)| (f.thread_name.as_str(), n.max(0) as u64)),
            );
            drop(guard);
        }
        _ => panic!("unknown profiler {who}"),
    }
    out.max_rss_kib = rusage().ru_maxrss as u64;
    out
}

/// The backend a `vignette-*` configuration names.
fn backend_of(who: &str) -> vignette::Backend {
    match who {
        "vignette-perf" => vignette::Backend::PerfEvents,
        "vignette-timers" => vignette::Backend::CpuTimers,
        _ => vignette::Backend::SamplerThread,
    }
}

fn spawn_child(who: &str, hz: u32, threads: usize) -> Child {
    Command::new(std::env::current_exe().expect("bench path"))
        .env(CHILD_ENV, format!("{who}:{hz}:{threads}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("child starts")
}

fn finish_child(child: Child, what: &str) -> Outcome {
    let out = child.wait_with_output().expect("child runs");
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(Outcome::from_line)
        .unwrap_or_else(|| panic!("{what} reported nothing"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores, Linux {}", kernel.trim())
}

/// One configuration's runs: alone, and beside an unprofiled twin (`overhead`).
#[derive(Default)]
struct Runs {
    alone: Vec<Outcome>,
    overhead: Vec<f64>,
}

/// Runs each configuration `(who, hz, threads)` `runs` times, alone and beside an
/// unprofiled twin of as many threads.
fn measure<'a>(
    configs: &[(&'a str, u32, usize)],
    runs: usize,
) -> BTreeMap<(&'a str, u32, usize), Runs> {
    let mut results: BTreeMap<(&str, u32, usize), Runs> = BTreeMap::new();
    for run in 0..runs {
        for &(who, hz, threads) in configs {
            let what = format!("{who} at {hz} Hz, {threads} threads");
            let alone = finish_child(spawn_child(who, hz, threads), &what);
            // Alternate which of the pair starts first.
            let (profiled, twin) = if run % 2 == 0 {
                (
                    spawn_child(who, hz, threads),
                    spawn_child("none", 0, threads),
                )
            } else {
                let twin = spawn_child("none", 0, threads);
                (spawn_child(who, hz, threads), twin)
            };
            let profiled = finish_child(profiled, &what);
            let twin = finish_child(twin, "the unprofiled twin");
            let r = results.entry((who, hz, threads)).or_default();
            r.alone.push(alone);
            r.overhead
                .push(profiled.cpu_ns as f64 / twin.cpu_ns as f64 - 1.0);
        }
        eprintln!("run {} of {runs} done", run + 1);
    }
    results
}

/// How two unprofiled twins of `threads` threads differed, run by run.
fn noise(results: &BTreeMap<(&str, u32, usize), Runs>, threads: usize) -> String {
    let base = &results[&("none", 0, threads)];
    let runs: Vec<String> = (base.overhead.iter())
        .map(|o| format!("{:+.2}%", o * 100.0))
        .collect();
    runs.join(", ")
}

/// The budget bench: each budget at 1000 Hz with 4, 8 and 32 threads.
fn budgets(runs: usize) {
    const BUDGETS: [&str; 3] = [
        "vignette-budget-0.5",
        "vignette-budget-1",
        "vignette-budget-2",
    ];
    const THREAD_COUNTS: [usize; 3] = [4, 8, 32];
    let mut configs = Vec::new();
    for threads in THREAD_COUNTS {
        configs.push(("none", 0, threads));
        configs.extend(BUDGETS.iter().map(|&b| (b, 1000, threads)));
    }
    println!("overhead budget: {runs} runs at 1000 Hz; {}", machine());
    let results = measure(&configs, runs);
    for threads in THREAD_COUNTS {
        println!(
            "{threads} threads: unprofiled twins differ by {}",
            noise(&results, threads)
        );
    }
    println!("\n| threads | budget | CPU vs twin (median) | runs | vignette's own estimate | achieved rate per thread | within budget + 0.3 points |");
    println!("|---|---|---|---|---|---|---|");
    for ((who, _, threads), r) in results.iter().filter(|((w, ..), _)| *w != "none") {
        let budget: f64 = who["vignette-budget-".len()..].parse().unwrap_or(0.0);
        let overhead = median(r.overhead.clone()) * 100.0;
        let each: Vec<String> = (r.overhead.iter())
            .map(|o| format!("{:+.2}", o * 100.0))
            .collect();
        let rate = median(
            (r.alone.iter())
                .map(|o| o.samples as f64 / (o.worker_cpu_ns as f64 / 1e9))
                .collect(),
        );
        let estimate = median(
            (r.alone.iter())
                .map(|o| o.estimate_ppm as f64 / 10_000.0)
                .collect(),
        );
        println!(
            "| {threads} | {budget}% | {overhead:+.2}% | {} | {estimate:.2}% | {rate:.0} Hz | {} |",
            each.join(", "),
            if overhead <= budget + 0.3 {
                "yes"
            } else {
                "**no**"
            },
        );
    }
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let mut parts = spec.split(':');
        let who = parts.next().expect("who");
        let hz = parts.next().and_then(|h| h.parse().ok()).expect("hz");
        let threads = parts.next().and_then(|t| t.parse().ok()).expect("threads");
        println!("{}", child(who, hz, threads).to_line());
        return;
    }
    // `cargo test --benches` and `cargo bench -- <filter>` pass arguments: a test run, or a
    // filter that does not name this bench, skips it.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs: usize = std::env::var("OVERHEAD_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    if args.iter().any(|a| a == "--test" || a == "--list") {
        return;
    }
    if args.iter().any(|a| a == "budget") {
        return budgets(runs);
    }
    if args
        .iter()
        .any(|a| !a.starts_with('-') && !"overhead".contains(a.as_str()))
    {
        return;
    }
    let mut configs = vec![("none", 0, THREADS)];
    // Each vignette backend this system allows (CPU clock), and the peer.
    let whos: Vec<&str> = [
        "vignette-perf",
        "vignette-timers",
        "vignette-thread",
        "pprof",
    ]
    .into_iter()
    .filter(|w| {
        *w == "pprof"
            || vignette::Profiler::builder()
                .backend(backend_of(w))
                .build()
                .is_ok()
    })
    .collect();
    for who in whos {
        configs.extend(RATES.iter().map(|&hz| (who, hz, THREADS)));
    }
    println!(
        "overhead: {THREADS} threads x {UNITS} units, {runs} runs; {}",
        machine()
    );
    let results = measure(&configs, runs);
    let base = &results[&("none", 0, THREADS)];
    let base_rss = median(base.alone.iter().map(|o| o.max_rss_kib as f64).collect());
    println!(
        "\nunprofiled: peak RSS {:.1} MiB; two unprofiled twins differ by {}\n",
        base_rss / 1024.0,
        noise(&results, THREADS)
    );
    println!("| profiler | requested | CPU vs twin | achieved rate per thread | sampler thread | output step | peak RSS over unprofiled | buffers mapped |");
    println!("|---|---|---|---|---|---|---|---|");
    for ((who, hz, _), r) in results.iter().filter(|((w, ..), _)| *w != "none") {
        let m = |f: &dyn Fn(&Outcome) -> f64| median(r.alone.iter().map(f).collect());
        let overhead = median(r.overhead.clone()) * 100.0;
        let rate = m(&|o| o.samples as f64 / (o.worker_cpu_ns as f64 / 1e9));
        let sampler = m(&|o| o.sampler_ns as f64 / o.worker_cpu_ns as f64 * 100.0);
        let output_ms = m(&|o| o.output_ns as f64 / 1e6);
        let rss = m(&|o| (o.max_rss_kib as f64 - base_rss) / 1024.0);
        let buffers = m(&|o| o.buffers as f64 / (1 << 20) as f64);
        let dash = |s: String, show: bool| if show { s } else { "-".into() };
        println!(
            "| {who} | {hz} Hz | {overhead:+.2}% | {rate:.0} Hz ({:.1}%) | {} | {output_ms:.1} ms | {rss:+.1} MiB | {} |",
            rate / *hz as f64 * 100.0,
            dash(format!("{sampler:.2}%"), who.starts_with("vignette")),
            dash(format!("{buffers:.1} MiB"), buffers > 0.0),
        );
    }
}
