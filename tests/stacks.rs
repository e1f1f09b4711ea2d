//! The sampler captures correct stacks of every thread.

mod common;

use common::{has_chain, profiler_lock, stack_names, workload};
use vignette::{Clock, EndReason, Profiler};

#[test]
fn known_call_chains_unwind_to_the_thread_entry() {
    let _g = profiler_lock();
    let mut profiler = Profiler::builder()
        .frequency(500)
        .clock(Clock::Cpu)
        .build()
        .unwrap();
    profiler.start().unwrap();
    workload::run_for(2, 600);
    let profile = profiler.stop().unwrap().to_profile();

    for name in ["worker-0", "worker-1"] {
        let t = profile
            .threads
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| {
                panic!(
                    "no thread {name} in {:?}",
                    profile.threads.iter().map(|t| &t.name).collect::<Vec<_>>()
                )
            });
        assert!(
            t.samples.len() >= 150,
            "{name}: only {} samples",
            t.samples.len()
        );
        let mut complete = 0;
        let mut shown = 0;
        for s in &t.samples {
            let names = stack_names(&profile, s.stack);
            let kernel = ["mix_hash", "sort_block", "mat_mul", "crunch"];
            let leaf_ok = kernel.iter().any(|k| names.iter().any(|n| n.contains(k)));
            if leaf_ok
                && has_chain(&names, &["crunch", "worker_loop", "spawn_workers"])
                && names.iter().any(|n| n.contains("thread_start"))
            {
                complete += 1;
            } else if shown < 3 {
                shown += 1;
                eprintln!("{name}: incomplete stack ({:?}): {names:#?}", s.end);
            }
        }
        let share = complete as f64 / t.samples.len() as f64;
        eprintln!("{name}: {complete}/{} stacks complete", t.samples.len());
        assert!(
            share >= 0.9,
            "{name}: only {:.1}% of stacks complete",
            share * 100.0
        );
    }
}

#[test]
fn sample_once_captures_a_chosen_thread_and_all_threads() {
    let _g = profiler_lock();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let stop2 = stop.clone();
    let worker = std::thread::Builder::new()
        .name("once-target".into())
        .spawn(move || {
            tx.send(Profiler::current_thread_id()).unwrap();
            workload::worker_loop(7, &stop2)
        })
        .unwrap();
    let tid = rx.recv().unwrap();
    let mut profiler = Profiler::builder().build().unwrap();
    for _ in 0..20 {
        assert_eq!(
            profiler.sample_once(vignette::Target::Thread(tid)).unwrap(),
            1
        );
    }
    let all = profiler.sample_once(vignette::Target::AllThreads).unwrap();
    assert!(
        all >= 3,
        "the test thread, the worker and the harness: {all}"
    );
    assert!(matches!(
        profiler.sample_once(vignette::Target::Thread(i32::MAX - 3)),
        Err(vignette::Error::NoSuchThread(_))
    ));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    worker.join().unwrap();
    let profile = profiler.stop().unwrap().to_profile();
    let t = profile
        .threads
        .iter()
        .find(|t| t.tid == tid as u32)
        .unwrap();
    assert_eq!(t.name, "once-target");
    assert_eq!(t.samples.len(), 21);
    let with_chain = t
        .samples
        .iter()
        .filter(|s| has_chain(&stack_names(&profile, s.stack), &["crunch", "worker_loop"]))
        .count();
    assert!(
        with_chain >= 18,
        "{with_chain}/21 samples show crunch <- worker_loop"
    );
    // The calling thread sampled itself: its stack holds this test function.
    let me = profile
        .threads
        .iter()
        .find(|t| t.tid == Profiler::current_thread_id() as u32)
        .unwrap();
    assert_eq!(me.samples.len(), 1);
    let names = stack_names(&profile, me.samples[0].stack);
    assert!(
        has_chain(&names, &["sample_once", "sample_once_captures"]),
        "{names:#?}"
    );
    assert!(me.samples.iter().all(|s| s.end != EndReason::NoStackBounds));
}
