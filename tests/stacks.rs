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
        // Enough samples to judge the share (fewer on a busy machine: this is the CPU clock).
        assert!(
            t.samples.len() >= 50,
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
        let rooted = t
            .samples
            .iter()
            .filter(|s| s.end == EndReason::Root)
            .count();
        assert!(
            rooted * 100 >= t.samples.len() * 98,
            "{name}: {rooted}/{} walks reached the root",
            t.samples.len()
        );
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

/// Counts down `n` in code that lives in no module: an anonymous executable page, as a JIT
/// would make. Returns the page's address range.
fn run_jitted_loop(n: u64) -> (u64, u64) {
    // dec rdi; jnz -5; ret
    const CODE: [u8; 6] = [0x48, 0xff, 0xcf, 0x75, 0xfb, 0xc3];
    // SAFETY: maps a fresh page, writes the code, makes it executable, calls it with the
    // System V convention (rdi = n), and unmaps it.
    unsafe {
        let page = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(page, libc::MAP_FAILED);
        std::ptr::copy_nonoverlapping(CODE.as_ptr(), page.cast(), CODE.len());
        assert_eq!(
            libc::mprotect(page, 4096, libc::PROT_READ | libc::PROT_EXEC),
            0
        );
        let f: extern "C" fn(u64) = std::mem::transmute(page);
        f(n);
        let range = (page as u64, page as u64 + 4096);
        libc::munmap(page, 4096);
        range
    }
}

#[test]
fn frames_in_the_vdso_a_late_library_and_anonymous_code() {
    let _g = profiler_lock();
    let mut profiler = Profiler::builder()
        .frequency(1000)
        .clock(Clock::Cpu)
        .build()
        .unwrap();
    profiler.start().unwrap();
    // Nanoseconds of each thread's own CPU time (not wall time: the machine may be busy).
    let run = 400_000_000;
    let jit = std::thread::scope(|s| {
        s.spawn(|| {
            let t0 = workload::thread_cpu_ns();
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            while workload::thread_cpu_ns() - t0 < run {
                for _ in 0..1000 {
                    // SAFETY: ts is a valid timespec.
                    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
                }
            }
        });
        s.spawn(|| {
            // A library the test binary does not link, loaded after sampling started.
            // SAFETY: dlopen/dlsym of zlib's adler32, called with a valid buffer.
            unsafe {
                let lib = libc::dlopen(c"libz.so.1".as_ptr(), libc::RTLD_NOW);
                assert!(!lib.is_null(), "libz.so.1 is installed");
                let sym = libc::dlsym(lib, c"adler32".as_ptr());
                let adler32: extern "C" fn(u64, *const u8, u32) -> u64 = std::mem::transmute(sym);
                let buf = vec![7u8; 1 << 16];
                let t0 = workload::thread_cpu_ns();
                let mut a = 1;
                while workload::thread_cpu_ns() - t0 < run {
                    a = adler32(a, buf.as_ptr(), buf.len() as u32);
                }
                std::hint::black_box(a);
            }
        });
        s.spawn(|| {
            let mut range = (0, 0);
            for _ in 0..4 {
                range = run_jitted_loop(150_000_000);
            }
            range
        })
        .join()
        .unwrap()
    });
    let profile = profiler.stop().unwrap().to_profile();
    let module_of_leaf = |m: &str| {
        profile
            .threads
            .iter()
            .flat_map(|t| &t.samples)
            .filter(|s| {
                let leaf = profile.stack_frames(s.stack).next().unwrap();
                leaf.module > 0 && profile.modules[leaf.module as usize - 1].name == m
            })
            .count()
    };
    assert!(
        module_of_leaf("linux-vdso.so.1") > 10,
        "samples inside the vDSO"
    );
    // From inside the vDSO, the walk still reaches the thread's entry.
    let vdso_stacks: Vec<Vec<String>> = profile
        .threads
        .iter()
        .flat_map(|t| &t.samples)
        .filter(|s| {
            let leaf = profile.stack_frames(s.stack).next().unwrap();
            leaf.module > 0 && profile.modules[leaf.module as usize - 1].name == "linux-vdso.so.1"
        })
        .map(|s| stack_names(&profile, s.stack))
        .collect();
    let complete = vdso_stacks
        .iter()
        .filter(|n| has_chain(n, &["clock_gettime", "thread_start"]))
        .count();
    assert!(
        complete * 10 >= vdso_stacks.len() * 9,
        "{complete}/{} vDSO stacks complete",
        vdso_stacks.len()
    );
    assert!(
        module_of_leaf("libz.so.1") > 10,
        "samples inside a library loaded after start"
    );
    let libz = profile
        .modules
        .iter()
        .find(|m| m.name == "libz.so.1")
        .unwrap();
    assert!(!libz.code_id.is_empty());
    let anonymous = profile
        .threads
        .iter()
        .flat_map(|t| &t.samples)
        .filter(|s| {
            let leaf = profile.stack_frames(s.stack).next().unwrap();
            leaf.module == 0 && (jit.0..jit.1).contains(&leaf.address)
        })
        .count();
    assert!(
        anonymous > 10,
        "samples in code outside every module are kept: {anonymous}"
    );
}

/// A signal handler that computes for a while: samples land inside it.
extern "C" fn busy_handler(_: i32) {
    let t0 = workload::thread_cpu_ns();
    let mut h = 0;
    // The CPU clock is a system call: look at it rarely, so samples land in the work.
    while workload::thread_cpu_ns() - t0 < 300_000_000 {
        for _ in 0..50 {
            h = workload::mix_hash(h, 10_000);
        }
    }
    std::hint::black_box(h);
}

/// Sends `sig` to the calling thread; its handler runs before this returns.
#[inline(never)]
fn raise_here(sig: i32) {
    // SAFETY: signals this thread; the handler was installed by the test.
    unsafe { libc::pthread_kill(libc::pthread_self(), sig) };
}

#[test]
fn threads_interrupted_inside_their_own_signal_handlers() {
    let _g = profiler_lock();
    // SIGUSR1 runs on the thread's alternate signal stack (Rust installs one per thread),
    // SIGUSR2 on the thread's own stack.
    for (sig, flags) in [(libc::SIGUSR1, libc::SA_ONSTACK), (libc::SIGUSR2, 0)] {
        // SAFETY: installs a handler with a valid function pointer.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = busy_handler as *const () as usize;
            sa.sa_flags = flags;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    let mut profiler = Profiler::builder()
        .frequency(1000)
        .clock(Clock::Cpu)
        .build()
        .unwrap();
    profiler.start().unwrap();
    std::thread::scope(|s| {
        for (name, sig) in [
            ("on-altstack", libc::SIGUSR1),
            ("on-own-stack", libc::SIGUSR2),
        ] {
            std::thread::Builder::new()
                .name(name.into())
                .spawn_scoped(s, move || raise_here(sig))
                .unwrap();
        }
    });
    let profile = profiler.stop().unwrap().to_profile();
    for name in ["on-altstack", "on-own-stack"] {
        let t = profile.threads.iter().find(|t| t.name == name).unwrap();
        assert!(t.samples.len() > 100, "{name}: {} samples", t.samples.len());
        let through = t
            .samples
            .iter()
            .filter(|s| {
                let names = stack_names(&profile, s.stack);
                has_chain(&names, &["busy_handler", "raise_here", "thread_start"])
            })
            .count();
        eprintln!("{name}: {through}/{} stacks run from the handler through the signal frame to the thread entry", t.samples.len());
        let mut ends = std::collections::BTreeMap::new();
        for s in &t.samples {
            *ends.entry(format!("{:?}", s.end)).or_insert(0) += 1;
        }
        // A stack that does not go through, if any (else one that does).
        let example = t
            .samples
            .iter()
            .map(|s| stack_names(&profile, s.stack))
            .find(|names| !has_chain(names, &["busy_handler", "raise_here", "thread_start"]))
            .unwrap_or_else(|| stack_names(&profile, t.samples[0].stack));
        assert!(
            through * 100 >= t.samples.len() * 95,
            "{name}: {through}/{}; walks ended {ends:?}; e.g. {example:#?}",
            t.samples.len()
        );
    }
}
