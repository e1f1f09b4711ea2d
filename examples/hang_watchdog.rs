//! A hang watchdog: a flight recorder keeps the last two seconds; an event loop beats a
//! heartbeat each turn, and when a turn takes longer than 200 ms the window is written, naming
//! the hung thread, so the profile shows what it was doing.
//!
//! `cargo run --release --example hang_watchdog -- [OUT_DIR]` (default `target/demo`), then
//! `vignette report OUT_DIR/hang-0.vignette --symbols target/release/examples/hang_watchdog`.

#[path = "common/workload.rs"]
mod workload;

use std::error::Error;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vignette::{Clock, Profiler, TriggerKind};

/// One turn of the event loop: normally quick.
#[inline(never)]
fn handle_event(n: u64) -> u64 {
    workload::crunch(n)
}

/// The turn that hangs: 600 ms of work where a few ms were expected.
#[inline(never)]
fn slow_handler(n: u64) -> u64 {
    let until = Instant::now() + Duration::from_millis(600);
    let mut acc = n;
    while Instant::now() < until {
        acc = workload::crunch(acc);
    }
    acc
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/demo".into());
    std::fs::create_dir_all(&dir)?;
    let mut profiler = Profiler::builder()
        .frequency(1000)
        // A hung thread may be blocked rather than busy: sample it all the same.
        .clock(Clock::Wall)
        .flight_recorder(Duration::from_secs(2))
        .build()?;
    profiler.start()?;
    let written = Arc::new(AtomicBool::new(false));
    let done = written.clone();
    let out = dir.clone();
    let triggers = profiler.deliver(None, move |window| {
        let Some((TriggerKind::Hang, tid)) = window.trigger() else {
            return;
        };
        let path = format!("{out}/hang-{}.vignette", window.sequence());
        match std::fs::write(&path, window.to_vec()) {
            Ok(()) => println!(
                "thread {tid} hung: wrote {path} ({} samples)",
                window.sample_count()
            ),
            Err(e) => eprintln!("{path}: {e}"),
        }
        done.store(true, Ordering::Release);
    })?;
    triggers.catch_panics();

    let event_loop = std::thread::Builder::new()
        .name("event-loop".into())
        .spawn(move || {
            let beat = triggers.heartbeat("event loop", Duration::from_millis(200));
            let mut acc = 0;
            for n in 0..400 {
                beat.beat();
                acc = if n == 200 {
                    slow_handler(acc)
                } else {
                    handle_event(acc)
                };
            }
            acc
        })?;
    event_loop.join().map_err(|_| "the event loop panicked")?;
    // The watchdog notices within its 10 ms poll; give it a moment on a busy machine.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !written.load(Ordering::Acquire) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    profiler.stop()?;
    if !written.load(Ordering::Acquire) {
        return Err("no hang was captured".into());
    }
    Ok(())
}
