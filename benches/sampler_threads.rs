//! What sampling costs a process with many idle threads, per backend: the process idles (its
//! threads sleep, waking every 100 ms) while vignette samples at 1000 Hz on the CPU clock for
//! two seconds after a first half second (when it finds and arms every thread, measured
//! apart). Measured: the sampler thread's own CPU (from its `schedstat`), and the whole
//! process's CPU against the same process unprofiled just before (which also counts what the
//! kernel's per-thread timers cost the sleeping threads at each of their wake-ups).
//!
//! The sampler-thread backend reads every thread's CPU clock each tick (one system call each);
//! the kernel-timed backends (perf events, CPU timers) read nothing per tick.
//!
//! `cargo bench --bench sampler_threads` (about three minutes; `-- over` for the
//! over-capacity rows only; `-- parked` for threads that never wake: 0, 2 000 and 10 000
//! parked since before `start()`, with the default `max_threads` and with it raised, the
//! process's CPU against the same process unprofiled).
#![allow(missing_docs)]

#[path = "../examples/common/workload.rs"]
mod workload;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use vignette::Backend;

const HZ: u32 = 1000;
const SECONDS: u64 = 2;
const RUNS: usize = 3;

/// With `idle` sleeping threads, sampled by `backend` (`None`: unprofiled): the sampler
/// thread's CPU in its first half second (finding and arming every thread) in ns, then, in
/// ns per second over the next two seconds, the sampler thread's CPU and the process's.
fn cost(idle: usize, backend: Option<Backend>, max_threads: usize) -> (f64, f64, f64) {
    cost_with(idle, backend, max_threads, false)
}

/// [`cost`], the idle threads parked (never woken until the end) when `parked`.
fn cost_with(
    idle: usize,
    backend: Option<Backend>,
    max_threads: usize,
    parked: bool,
) -> (f64, f64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let sleepers: Vec<_> = (0..idle)
        .map(|_| {
            let stop = stop.clone();
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        match parked {
                            true => std::thread::park(),
                            false => std::thread::sleep(Duration::from_millis(100)),
                        }
                    }
                })
                .expect("sleeper")
        })
        .collect();
    // Let them all reach their first sleep.
    std::thread::sleep(Duration::from_millis(200));
    let mut p = backend.map(|b| {
        vignette::Profiler::builder()
            .frequency(HZ)
            .max_threads(max_threads)
            .backend(b)
            .build()
            .expect("profiler")
    });
    if let Some(p) = &mut p {
        p.start().expect("start");
    }
    // Found once: listing 10 000 threads' names at each reading would itself be work beside
    // the sampler's own listings of the same directory.
    // (The sampler thread names itself once it runs: looked for until then, up to a second.)
    let sampler = backend.and_then(|_| {
        (0..1000).find_map(|_| {
            let tid = workload::named_thread_tid("vignette");
            if tid.is_none() {
                std::thread::sleep(Duration::from_millis(1));
            }
            tid
        })
    });
    let sampler_ns = || sampler.map_or(0, workload::tid_cpu_ns);
    std::thread::sleep(Duration::from_millis(500));
    let start_up = sampler_ns();
    let before = workload::process_cpu_ns();
    std::thread::sleep(Duration::from_secs(SECONDS));
    let process = workload::process_cpu_ns() - before;
    let sampler = sampler_ns() - start_up;
    if let Some(p) = &mut p {
        p.stop().expect("stop");
    }
    stop.store(true, Ordering::Relaxed);
    sleepers.iter().for_each(|t| t.thread().unpark());
    sleepers
        .into_iter()
        .for_each(|t| t.join().expect("sleeper"));
    (
        start_up as f64,
        sampler as f64 / SECONDS as f64,
        process as f64 / SECONDS as f64,
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo test --benches` passes --test: nothing to check here.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let backends: Vec<Backend> = [
        Backend::PerfEvents,
        Backend::CpuTimers,
        Backend::SamplerThread,
    ]
    .into_iter()
    .filter(|&b| {
        let ok = vignette::Profiler::builder().backend(b).build().is_ok();
        if !ok {
            println!("{b:?}: not available here");
        }
        ok
    })
    .collect();
    println!(
        "CPU at {HZ} Hz (Clock::Cpu), idle process, median of {RUNS} runs; \
         extra process CPU is against the same process unprofiled"
    );
    println!(
        "| sleeping threads | backend | sampler thread, steady | extra process CPU, steady | \
         sampler thread, first 0.5 s |"
    );
    println!("|---|---|---|---|---|");
    if std::env::args().any(|a| a == "parked") {
        parked(&backends);
        return;
    }
    // `cargo bench --bench sampler_threads -- over`: only the over-capacity table.
    let idles: &[usize] = match std::env::args().any(|a| a == "over") {
        true => &[],
        false => &[0, 10, 100, 500, 2000],
    };
    for &idle in idles {
        let mut rows = vec![(Vec::new(), Vec::new(), Vec::new()); backends.len()];
        for _ in 0..RUNS {
            for (i, &b) in backends.iter().enumerate() {
                let (_, _, base) = cost(idle, None, 4096);
                let (start_up, sampler, process) = cost(idle, Some(b), 4096);
                rows[i].0.push(sampler);
                rows[i].1.push(process - base);
                rows[i].2.push(start_up);
            }
        }
        for (b, (sampler, extra, start_up)) in backends.iter().zip(rows) {
            let (sampler, extra, start_up) = (median(sampler), median(extra), median(start_up));
            println!(
                "| {idle} | {} | {:.2} ms/s ({:.3}% of a core) | {:+.2} ms/s | {:.1} ms |",
                b.name(),
                sampler / 1e6,
                sampler / 1e7,
                extra / 1e6,
                start_up / 1e6,
            );
        }
    }
    // More live threads than slots (the default `max_threads`, 1024): the sampler must not
    // list them all at every look because some have no slot.
    println!("\nOver capacity: 2000 sleeping threads, max_threads 1024 (the default)");
    println!("| backend | sampler thread, steady |");
    println!("|---|---|");
    for &b in backends.iter().filter(|&&b| b != Backend::SamplerThread) {
        let sampler: Vec<f64> = (0..RUNS).map(|_| cost(2000, Some(b), 1024).1).collect();
        println!("| {} | {:.2} ms/s |", b.name(), median(sampler) / 1e6);
    }
}

/// Threads parked since before `start()` and never woken: what the process pays for them,
/// profiled against unprofiled, by thread count and `max_threads`.
fn parked(backends: &[Backend]) {
    println!("\nParked threads (never woken), {HZ} Hz, median of {RUNS} runs");
    println!(
        "| parked threads | max_threads | backend | extra process CPU, steady | \
         sampler thread, steady | sampler thread, first 0.5 s |"
    );
    println!("|---|---|---|---|---|---|");
    for idle in [0, 2000, 10_000] {
        for max_threads in [1024, 16_384] {
            for &b in backends.iter().filter(|&&b| b != Backend::SamplerThread) {
                let mut rows = (Vec::new(), Vec::new(), Vec::new());
                for _ in 0..RUNS {
                    let (_, _, base) = cost_with(idle, None, max_threads, true);
                    let (start_up, sampler, process) = cost_with(idle, Some(b), max_threads, true);
                    rows.0.push(process - base);
                    rows.1.push(sampler);
                    rows.2.push(start_up);
                }
                println!(
                    "| {idle} | {max_threads} | {} | {:+.2} ms/s | {:.2} ms/s | {:.1} ms |",
                    b.name(),
                    median(rows.0) / 1e6,
                    median(rows.1) / 1e6,
                    median(rows.2) / 1e6,
                );
            }
        }
    }
}
