//! Capture for telemetry: rotation without gaps, the flight recorder's window, triggers.
//!
//! Counts are checked against each thread's own CPU time (clock `Cpu`) or the profile's own
//! time range (clock `Wall`), never against a stopwatch, so a busy machine does not make
//! these tests flaky.
#![cfg(target_os = "linux")]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{profiler_lock, workload};
use vignette::{Clock, Profile, Profiler, TriggerKind};

/// Raises the flag when dropped: the threads of a scope end even if the test panics.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// 4 busy threads at 1000 Hz cut into 200 chunks (and the rest, at `stop`): per thread, the
/// chunks' weights add up to its CPU time in intervals, as one long session's do
/// (tests/rate.rs); sequence numbers have no gaps and time ranges abut.
#[test]
fn rotated_chunks_add_up_to_one_session() {
    let _g = profiler_lock();
    let mut profiler = Profiler::builder()
        .frequency(1000)
        .clock(Clock::Cpu)
        .build()
        .unwrap();
    assert!(matches!(
        profiler.rotate(),
        Err(vignette::Error::NotRunning)
    ));
    assert!(profiler.window().is_err(), "no flight recorder configured");
    profiler.start().unwrap();
    let stop = AtomicBool::new(false);
    let mut chunks: Vec<(u64, std::ops::Range<u64>, Profile)> = Vec::new();
    let names: Vec<String> = (0..4).map(|i| format!("rot-{i}")).collect();
    let cpu: Vec<(String, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let stop = &stop;
                std::thread::Builder::new()
                    .name(name.clone())
                    .spawn_scoped(s, move || {
                        workload::worker_loop(i as u64, stop);
                        (name.clone(), workload::thread_cpu_ns())
                    })
                    .unwrap()
            })
            .collect();
        let _stop = StopOnDrop(&stop);
        for _ in 0..200 {
            std::thread::sleep(Duration::from_millis(5));
            let c = profiler.rotate().unwrap();
            chunks.push((c.sequence(), c.time_range_ns(), c.to_profile()));
        }
        // And at least 150 ms of CPU each, however long that takes on a busy machine.
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        common::wait_for_cpu(&refs, 150_000_000);
        drop(_stop);
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let last = profiler.stop().unwrap();
    chunks.push((last.sequence(), last.time_range_ns(), last.to_profile()));

    for (i, w) in chunks.windows(2).enumerate() {
        assert_eq!(
            w[0].0 + 1,
            w[1].0,
            "sequence numbers follow on at chunk {i}"
        );
        assert_eq!(w[0].1.end, w[1].1.start, "chunk {i} and the next abut");
        assert_eq!(w[0].2.chunk.sequence, w[0].0);
        assert_eq!(
            w[0].2.start_unix_ns + w[0].2.duration_ns,
            w[1].2.start_unix_ns,
            "wall-clock ranges abut too"
        );
    }
    assert_eq!(chunks[0].0, 0);
    assert_eq!(chunks.len(), 201);
    let interval = chunks[0].2.interval_ns;
    let lost: u64 = chunks.iter().map(|c| c.2.lost.total()).sum();
    for (name, cpu_ns) in cpu {
        let expected = cpu_ns / interval;
        let (mut weights, mut with_samples) = (0u64, 0);
        for (_, _, p) in &chunks {
            let w: u64 = (p.threads.iter())
                .filter(|t| t.name == name)
                .flat_map(|t| &t.samples)
                .map(|s| s.weight as u64)
                .sum();
            weights += w;
            with_samples += (w > 0) as usize;
        }
        eprintln!(
            "{name}: weight {weights} in {with_samples} chunks, {expected} intervals of CPU, \
             {lost} lost in all"
        );
        assert!(expected >= 150, "{name} ran: {cpu_ns} ns");
        assert!(
            weights <= expected && weights + lost + expected / 20 + 2 >= expected,
            "weights {weights} vs {expected} intervals"
        );
        assert!(with_samples > 100, "{name} is in most chunks");
    }
}

/// Sleeping threads under the wall clock are sampled every interval: a flight recorder run
/// for 10 windows keeps exactly the last window, whole.
#[test]
fn the_flight_recorder_keeps_exactly_its_window() {
    let _g = profiler_lock();
    let window = Duration::from_millis(300);
    let mut profiler = Profiler::builder()
        .frequency(1000)
        .clock(Clock::Wall)
        .flight_recorder(window)
        .build()
        .unwrap();
    assert!(profiler.rotate().is_err(), "a flight recorder has windows");
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // The sleepers end even if an assertion below fails (the scope waits for them).
        let _stop = StopOnDrop(&stop);
        for i in 0..2 {
            let stop = &stop;
            std::thread::Builder::new()
                .name(format!("fr-sleeper-{i}"))
                .spawn_scoped(s, move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                })
                .unwrap();
        }
        profiler.start().unwrap();
        let started = std::time::Instant::now();
        let mut sequence = 0;
        // Ten windows' time, with a window taken every half window.
        while started.elapsed() < window * 10 {
            std::thread::sleep(window / 2);
            let w = profiler.window().unwrap();
            assert_eq!(w.sequence(), sequence);
            sequence += 1;
            check_window(&w.to_profile(), window, started.elapsed() > window * 3 / 2);
        }
        let p = profiler.trigger("before the end").unwrap().to_profile();
        check_window(&p, window, true);
        let t = p.chunk.trigger.as_ref().expect("a trigger");
        assert_eq!(t.kind, TriggerKind::Manual);
        assert_eq!(t.tid, Profiler::current_thread_id() as u32);
        assert_eq!(t.note, "before the end");
        assert!(t.at_ns <= p.duration_ns);
    });
    // Stopping gives the last window too.
    let last = profiler.stop().unwrap().to_profile();
    check_window(&last, window, true);
    assert!(last.chunk.evicted > 0);
}

/// A window of `window`: every sample inside it, and (once the recorder is older than the
/// window, `full`) each sleeper's weights covering it: one per millisecond.
fn check_window(p: &Profile, window: Duration, full: bool) {
    let window_ns = window.as_nanos() as u64;
    assert_eq!(p.chunk.window_ns, window_ns);
    assert!(p.duration_ns <= window_ns);
    for t in &p.threads {
        let mut at_us = 0;
        for s in &t.samples {
            at_us += s.dt_us;
        }
        assert!(
            at_us * 1000 <= p.duration_ns,
            "{}: a sample after the end",
            t.name
        );
    }
    if !full {
        return;
    }
    assert_eq!(p.duration_ns, window_ns, "a full window");
    let expected = window_ns / p.interval_ns;
    let sleepers: Vec<_> = p
        .threads
        .iter()
        .filter(|t| t.name.starts_with("fr-sleeper"))
        .collect();
    assert_eq!(sleepers.len(), 2, "both sleepers are in the window");
    for t in sleepers {
        let weights: u64 = t.samples.iter().map(|s| s.weight as u64).sum();
        let lost = p.lost.total();
        assert!(
            weights <= expected + 2 && weights + lost + expected / 20 + 2 >= expected,
            "{}: weights {weights} in a window of {expected} intervals ({lost} lost)",
            t.name
        );
    }
}
