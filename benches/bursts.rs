//! Attribution on a bursty workload, per backend: threads that sleep 8 ms, then compute for
//! about 2 ms (pure arithmetic in this executable, no library calls), again and again. Nearly
//! all their CPU is spent in the bursts, so nearly every sample's innermost frame should be in
//! this executable; a sample whose innermost frame is elsewhere (libc's `clock_nanosleep`,
//! the vDSO) was taken after the burst it stands for had ended. The sampler-thread backend
//! learns that a thread used an interval only at its next tick and signals it then, when a
//! short burst may be over; the kernel-timed backends signal the thread while it runs.
//!
//! `cargo bench --bench bursts` (about half a minute).
#![allow(missing_docs)]

#[path = "../examples/common/workload.rs"]
mod workload;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use vignette::{Backend, Profiler};

const THREADS: usize = 2;
const SECONDS: u64 = 3;
const RUNS: usize = 3;

/// About `ns` of arithmetic, without calling out of this executable (the clock is read
/// every 65 536 rounds, about every 0.2 ms: a small share of the time).
#[inline(never)]
fn burst(ns: u64) -> u64 {
    let end = workload::thread_cpu_ns() + ns;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    loop {
        for _ in 0..65_536 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        if workload::thread_cpu_ns() >= end {
            return x;
        }
    }
}

/// (weight with the innermost frame in this executable, all weight) over the bursty threads.
fn attribution(backend: Backend) -> (u64, u64) {
    let mut p = Profiler::builder()
        .frequency(1000)
        .backend(backend)
        .build()
        .expect("profiler");
    p.start().expect("start");
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for i in 0..THREADS {
            let stop = &stop;
            std::thread::Builder::new()
                .name(format!("bursty-{i}"))
                .spawn_scoped(s, move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(8));
                        std::hint::black_box(burst(2_000_000));
                    }
                })
                .expect("thread");
        }
        std::thread::sleep(Duration::from_secs(SECONDS));
        stop.store(true, Ordering::Relaxed);
    });
    let profile = p.stop().expect("stop").to_profile();
    let exe = std::env::current_exe().expect("path");
    let exe = exe.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let (mut inside, mut all) = (0u64, 0u64);
    for t in profile
        .threads
        .iter()
        .filter(|t| t.name.starts_with("bursty"))
    {
        for s in &t.samples {
            let leaf = profile.stack_frames(s.stack).next();
            let in_exe = leaf.is_some_and(|f| {
                f.module != 0 && profile.modules[f.module as usize - 1].name == exe
            });
            all += s.weight as u64;
            inside += if in_exe { s.weight as u64 } else { 0 };
        }
    }
    (inside, all)
}

fn main() {
    // `cargo test --benches` passes --test: nothing to check here.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    println!(
        "{THREADS} threads: sleep 8 ms, compute 2 ms, for {SECONDS} s at 1000 Hz; \
         median of {RUNS} runs"
    );
    println!("| backend | weight in the bursts | weight elsewhere (misattributed) |");
    println!("|---|---|---|");
    for b in [
        Backend::PerfEvents,
        Backend::CpuTimers,
        Backend::SamplerThread,
    ] {
        if Profiler::builder().backend(b).build().is_err() {
            println!("| {} | not available here | |", b.name());
            continue;
        }
        let mut runs: Vec<(u64, u64)> = (0..RUNS).map(|_| attribution(b)).collect();
        runs.sort_by_key(|&(i, a)| (a - i) * 1000 / a.max(1));
        let (inside, all) = runs[RUNS / 2];
        println!(
            "| {} | {inside} of {all} | {:.1}% |",
            b.name(),
            (all - inside) as f64 * 100.0 / all.max(1) as f64
        );
    }
}
