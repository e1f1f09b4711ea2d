//! What labels cost (setting and clearing one; bytes per sample in the profile), and what
//! rotation and the flight recorder cost: how long the sampler thread pauses to hand a
//! chunk or a window over (it samples nothing meanwhile; the next samples' weights cover the
//! intervals it missed), at different chunk and window sizes, with 4 busy threads at 1000 Hz.
//!
//! `cargo bench --bench rotation` prints a table: the samples per chunk or window, the sampler
//! thread's CPU time per handover, and the pause in wall time (which on a machine with more
//! busy threads than cores includes time the scheduler ran others).

#[path = "../examples/common/workload.rs"]
mod workload;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use vignette::{Clock, Profiler};

/// Takes `count` chunks (or windows), one per `every`, and prints the pauses.
fn measure(label: &str, window: Option<Duration>, every: Duration, count: usize) {
    let mut builder = Profiler::builder().frequency(1000).clock(Clock::Cpu);
    if let Some(w) = window {
        builder = builder.flight_recorder(w);
    }
    let mut profiler = builder.build().expect("a profiler");
    let stop = Arc::new(AtomicBool::new(false));
    let workers = workload::spawn_workers(4, &stop);
    profiler.start().expect("started");
    if let Some(w) = window {
        // A full window before the first measurement.
        std::thread::sleep(w);
    }
    let mut pauses = Vec::with_capacity(count);
    let mut cpu = Vec::with_capacity(count);
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        std::thread::sleep(every);
        let c = match window {
            Some(_) => profiler.window(),
            None => profiler.rotate(),
        }
        .expect("a chunk");
        samples.push(c.sample_count());
        let (wall, spent) = profiler.last_handover_ns();
        pauses.push(wall);
        cpu.push(spent);
    }
    profiler.stop().expect("stopped");
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    pauses.sort_unstable();
    cpu.sort_unstable();
    samples.sort_unstable();
    let at = |v: &[u64], q: f64| v[((v.len() - 1) as f64 * q) as usize];
    let us = |ns: u64| ns as f64 / 1000.0;
    println!(
        "| {label} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
        count,
        samples[samples.len() / 2],
        us(at(&cpu, 0.5)),
        us(at(&cpu, 0.9)),
        us(at(&pauses, 0.5)),
        us(at(&pauses, 0.9)),
        us(*pauses.last().unwrap_or(&0)),
    );
}

/// Nanoseconds to set a label and drop its guard, over many pairs.
fn label_cost() {
    use vignette::labels::{self, LabelKey, LabelStr};
    let (key, value) = (LabelKey::new("endpoint"), LabelStr::new("/search"));
    let n = 20_000_000u64;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t0 = std::time::Instant::now();
        for i in 0..n {
            let g = labels::set(key, std::hint::black_box(value));
            std::hint::black_box(&g);
            drop(g);
            std::hint::black_box(i);
        }
        best = best.min(t0.elapsed().as_nanos() as f64 / n as f64);
    }
    let t0 = std::time::Instant::now();
    for i in 0..n {
        std::hint::black_box(i);
    }
    let empty = t0.elapsed().as_nanos() as f64 / n as f64;
    println!(
        "label set + clear: {best:.2} ns (best of 5 runs of {n}; the empty loop {empty:.2} ns)"
    );
}

/// Bytes per sample of 4 busy threads for 1 s: without labels, under one steady label set, and
/// with a request label that changes every unit of work.
fn label_bytes() {
    use vignette::labels::{self, LabelKey, LabelStr};
    println!("| labels | samples | bytes | bytes per sample |");
    println!("|---|---:|---:|---:|");
    for mode in ["none", "steady", "per request"] {
        let mut profiler = Profiler::builder()
            .frequency(1000)
            .build()
            .expect("a profiler");
        profiler.start().expect("started");
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..4)
            .map(|i| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let (endpoint, request) = (LabelKey::new("endpoint"), LabelKey::new("request"));
                    let _e =
                        (mode != "none").then(|| labels::set(endpoint, LabelStr::new("/search")));
                    let mut acc = i as u64;
                    let mut unit = 0i64;
                    while !stop.load(Ordering::Relaxed) {
                        let _r = (mode == "per request").then(|| labels::set(request, unit));
                        acc = workload::crunch(acc);
                        unit += 1;
                    }
                    acc
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            let _ = w.join();
        }
        let c = profiler.stop().expect("stopped");
        let (n, bytes) = (c.sample_count(), c.encoded_len());
        println!(
            "| {mode} | {n} | {bytes} | {:.2} |",
            bytes as f64 / n.max(1) as f64
        );
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    label_cost();
    label_bytes();
    println!(
        "| what | taken | samples each (median) | CPU median µs | CPU p90 µs | pause median µs | \
         pause p90 µs | pause max µs |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    measure("rotate every 10 ms", None, Duration::from_millis(10), 200);
    measure("rotate every 100 ms", None, Duration::from_millis(100), 50);
    measure("rotate every 1 s", None, Duration::from_secs(1), 10);
    measure(
        "window of 1 s, every 250 ms",
        Some(Duration::from_secs(1)),
        Duration::from_millis(250),
        20,
    );
    measure(
        "window of 5 s, every 1 s",
        Some(Duration::from_secs(5)),
        Duration::from_secs(1),
        10,
    );
}
