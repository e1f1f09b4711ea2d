//! What the sampler thread itself costs as the process's thread count grows: the process
//! idles (its threads sleep) while vignette samples at 1000 Hz on the CPU clock for two
//! seconds, and the sampler thread's own CPU time is read from its `schedstat`. With the CPU
//! clock the sampler reads every thread's CPU clock each tick (one system call each), so this
//! is the price of sampling a process with many mostly idle threads.
//!
//! `cargo bench --bench sampler_threads` (about 30 seconds).
#![allow(missing_docs)]

#[path = "../examples/common/workload.rs"]
mod workload;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const HZ: u32 = 1000;
const SECONDS: u64 = 2;
const RUNS: usize = 3;

/// Sampler CPU per second with `idle` sleeping threads in the process.
fn sampler_cost(idle: usize) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let sleepers: Vec<_> = (0..idle)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        })
        .collect();
    let mut p = vignette::Profiler::builder()
        .frequency(HZ)
        .build()
        .expect("profiler");
    p.start().expect("start");
    std::thread::sleep(Duration::from_secs(SECONDS));
    let ns = workload::named_thread_cpu_ns("vignette");
    p.stop().expect("stop");
    stop.store(true, Ordering::Relaxed);
    sleepers
        .into_iter()
        .for_each(|t| t.join().expect("sleeper"));
    ns as f64 / SECONDS as f64
}

fn main() {
    // `cargo test --benches` passes --test: nothing to check here.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    println!("sampler thread CPU at {HZ} Hz (Clock::Cpu), idle process, median of {RUNS} runs");
    println!("| sleeping threads | sampler CPU | per tick |");
    println!("|---|---|---|");
    for idle in [0, 10, 100, 500] {
        let mut v: Vec<f64> = (0..RUNS).map(|_| sampler_cost(idle)).collect();
        v.sort_by(f64::total_cmp);
        let ns_per_s = v[RUNS / 2];
        println!(
            "| {idle} | {:.1} ms/s ({:.2}% of a core) | {:.1} µs |",
            ns_per_s / 1e6,
            ns_per_s / 1e7,
            ns_per_s / HZ as f64 / 1000.0
        );
    }
}
