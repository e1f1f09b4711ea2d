//! What rotation and the flight recorder cost: how long the sampler thread pauses to hand a
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

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
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
