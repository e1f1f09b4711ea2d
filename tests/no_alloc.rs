//! The core never allocates after threads exist: not in `build`, not in the signal handler,
//! not on the sampler thread, not while rotating or taking a flight recorder's window, not
//! while encoding. A counting global allocator proves it.
//!
//! This file holds a single test so that no other test allocates concurrently.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use vignette::{Clock, Profiler, Target};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Waits (without allocating) until every counter in `cpu` has grown by `ns`, or a minute.
fn wait_for_cpu(cpu: &[AtomicU64], ns: u64) {
    let mut start = [0u64; 8];
    for (s, c) in start.iter_mut().zip(cpu) {
        *s = c.load(Ordering::Relaxed);
    }
    for _ in 0..6000 {
        if cpu
            .iter()
            .zip(start)
            .all(|(c, s)| c.load(Ordering::Relaxed) - s >= ns)
        {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn profiling_a_non_allocating_workload_allocates_nothing() {
    // Threads and buffers the test itself needs are made before the window opens. Each worker
    // publishes its own CPU time, so the sessions last a fixed amount of work, not wall time.
    let stop = Arc::new(AtomicBool::new(false));
    let cpu: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let workers: Vec<_> = (0..2)
        .map(|i| {
            let (stop, cpu) = (stop.clone(), cpu.clone());
            std::thread::spawn(move || {
                let mut acc = i as u64;
                while !stop.load(Ordering::Relaxed) {
                    acc = common::workload::crunch(acc);
                    cpu[i].store(common::workload::thread_cpu_ns(), Ordering::Relaxed);
                }
                acc
            })
        })
        .collect();
    let mut out = vec![0u8; 4 << 20];
    let mut chunk_out = vec![0u8; 4 << 20];
    std::thread::sleep(std::time::Duration::from_millis(50));

    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let mut profiler = Profiler::builder()
        .frequency(2000)
        .clock(Clock::Cpu)
        .build()
        .unwrap();
    for _ in 0..5 {
        profiler.sample_once(Target::AllThreads).unwrap();
    }
    profiler.start().unwrap();
    wait_for_cpu(&cpu[..], 250_000_000);
    let capture = profiler.stop().unwrap();
    let samples = capture.sample_count();
    let used = capture.encode_into(&mut out).unwrap();
    profiler.start().unwrap();
    wait_for_cpu(&cpu[..], 60_000_000);
    let again = profiler.stop().unwrap().sample_count();
    // Rotation: chunks handed over while sampling, encoded as they come.
    profiler.start().unwrap();
    let mut rotated = 0;
    for _ in 0..10 {
        wait_for_cpu(&cpu[..], 5_000_000);
        let chunk = profiler.rotate().unwrap();
        rotated += chunk.sample_count();
        chunk.encode_into(&mut chunk_out).unwrap();
    }
    profiler.stop().unwrap();
    drop(profiler);
    // A flight recorder, its windows merged from its segments.
    let mut recorder = Profiler::builder()
        .frequency(2000)
        .flight_recorder(std::time::Duration::from_millis(20))
        .build()
        .unwrap();
    recorder.start().unwrap();
    let mut windowed = 0;
    for _ in 0..5 {
        wait_for_cpu(&cpu[..], 10_000_000);
        let window = recorder.window().unwrap();
        windowed += window.sample_count();
        window.encode_into(&mut chunk_out).unwrap();
    }
    recorder.stop().unwrap();
    drop(recorder);
    let after = ALLOCATIONS.load(Ordering::SeqCst);

    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    // 2 workers x 250 ms of CPU at 2000 Hz: about 1000 samples; then about 240. A backend timed
    // at the kernel's tick (CPU timers, under qemu) takes one sample a tick, each weighing
    // several intervals: an eighth of these at 250 Hz.
    assert!(samples > 100, "sampling ran: {samples} samples");
    assert!(again > 20, "a second session ran: {again} samples");
    assert!(used > 100);
    assert!(rotated > 10, "chunks had samples: {rotated}");
    assert!(windowed > 5, "windows had samples: {windowed}");
    assert_eq!(
        after - before,
        0,
        "the profiler allocated {} times",
        after - before
    );
    // The encoded bytes are a valid profile.
    let profile = vignette::Profile::decode(&out[..used]).unwrap();
    assert_eq!(profile.sample_count(), samples);
}
