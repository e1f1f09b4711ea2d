//! The sampler survives what real processes do: allocation storms, threads that come and go,
//! threads that block the signal, corrupted frame pointers, foreign signals.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{has_chain, profiler_lock, stack_names, watchdog, workload};
use vignette::{Clock, EndReason, Error, Profiler, Unwinder};

#[inline(never)]
fn churn_allocations(stop: &AtomicBool) -> u64 {
    let mut total = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut v: Vec<Box<[u8]>> = Vec::new();
        for i in 0..64 {
            v.push(vec![i as u8; 16 + i * 24].into_boxed_slice());
        }
        let s: String = v.iter().map(|b| format!("{}", b.len())).collect();
        let mut m = std::collections::HashMap::new();
        for (i, b) in v.into_iter().enumerate() {
            m.insert(i, b);
        }
        total += s.len() as u64 + m.len() as u64;
    }
    total
}

#[test]
fn soak_allocation_heavy_threads_at_a_high_rate() {
    let _g = profiler_lock();
    let done = watchdog(60);
    let stop = Arc::new(AtomicBool::new(false));
    let alloc_threads: Vec<_> = (0..3)
        .map(|i| {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name(format!("alloc-{i}"))
                .spawn(move || churn_allocations(&stop))
                .unwrap()
        })
        .collect();
    let mut profiler = Profiler::builder()
        .frequency(4000)
        .clock(Clock::Wall)
        .build()
        .unwrap();
    let mut sessions = Vec::new();
    for _ in 0..3 {
        profiler.start().unwrap();
        // Until each allocating thread has run 200 ms of CPU (not a wall-clock window).
        common::wait_for_cpu(&["alloc-0", "alloc-1", "alloc-2"], 200_000_000);
        sessions.push(profiler.stop().unwrap().to_profile());
    }
    stop.store(true, Ordering::Relaxed);
    for t in alloc_threads {
        assert!(t.join().unwrap() > 0);
    }
    done.store(true, Ordering::Relaxed);
    let mut in_malloc = 0;
    for p in &sessions {
        for i in 0..3 {
            let name = format!("alloc-{i}");
            let t = p
                .threads
                .iter()
                .find(|t| t.name == name)
                .expect("allocating thread sampled");
            // On a busy machine the sampler runs late and a sample stands for several
            // intervals: count intervals.
            let intervals: u64 = t.samples.iter().map(|s| s.weight as u64).sum();
            assert!(
                intervals > 200,
                "{name}: {} samples, {intervals} intervals",
                t.samples.len()
            );
            in_malloc += t
                .samples
                .iter()
                .filter(|s| {
                    let names = stack_names(p, s.stack);
                    names.first().is_some_and(|n| {
                        n.contains("malloc") || n.contains("free") || n.contains("alloc")
                    })
                })
                .count();
        }
    }
    // The point of the soak: many samples landed inside the allocator itself.
    assert!(
        in_malloc > 50,
        "only {in_malloc} samples inside the allocator"
    );
}

#[test]
fn threads_exiting_and_starting_during_sampling() {
    let _g = profiler_lock();
    let done = watchdog(60);
    let mut profiler = Profiler::builder()
        .frequency(2000)
        .clock(Clock::Wall)
        .build()
        .unwrap();
    profiler.start().unwrap();
    let spawned = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for i in 0..150 {
                    std::thread::Builder::new()
                        .name(format!("short-{i}"))
                        .spawn(move || workload::mix_hash(i, 50_000 + (i as u32 % 7) * 20_000))
                        .unwrap()
                        .join()
                        .unwrap();
                    spawned.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let long = std::thread::Builder::new()
        .name("late-born".into())
        .spawn(|| {
            let stop = AtomicBool::new(false);
            let t0 = workload::thread_cpu_ns();
            let mut n = 0;
            while workload::thread_cpu_ns() - t0 < 300_000_000 {
                n = workload::crunch(n).wrapping_add(n);
            }
            stop.store(true, Ordering::Relaxed);
            n
        })
        .unwrap();
    long.join().unwrap();
    let profile = profiler.stop().unwrap().to_profile();
    done.store(true, Ordering::Relaxed);
    assert_eq!(spawned.load(Ordering::Relaxed), 300);
    let short_lived = profile
        .threads
        .iter()
        .filter(|t| t.name.starts_with("short-"))
        .count();
    assert!(
        short_lived > 10,
        "short-lived threads were sampled: {short_lived}"
    );
    let late = profile
        .threads
        .iter()
        .find(|t| t.name == "late-born")
        .expect("a thread born after start is sampled");
    assert!(
        late.samples.len() > 100,
        "late-born: {}",
        late.samples.len()
    );
}

#[test]
fn a_thread_blocking_the_signal_does_not_stall_sampling() {
    let _g = profiler_lock();
    let done = watchdog(30);
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let blocked = std::thread::Builder::new()
        .name("blocks-sigprof".into())
        .spawn(move || {
            // SAFETY: plain signal mask manipulation for this thread.
            unsafe {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGURG);
                libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            }
            workload::worker_loop(1, &s2)
        })
        .unwrap();
    let workers = workload::spawn_workers(1, &stop);
    std::thread::sleep(Duration::from_millis(20));
    let mut profiler = Profiler::builder()
        .frequency(1000)
        .clock(Clock::Wall)
        .build()
        .unwrap();
    profiler.start().unwrap();
    common::wait_for_cpu(&["worker-0"], 300_000_000);
    let t0 = std::time::Instant::now();
    let profile = profiler.stop().unwrap().to_profile();
    let stop_took = t0.elapsed();
    drop(profiler);
    stop.store(true, Ordering::Relaxed);
    // The signal still pending on the blocked thread is discarded when it exits.
    blocked.join().unwrap();
    workers.into_iter().for_each(|w| {
        w.join().unwrap();
    });
    done.store(true, Ordering::Relaxed);
    assert!(
        stop_took < Duration::from_secs(2),
        "stop took {stop_took:?}"
    );
    assert!(profile
        .threads
        .iter()
        .find(|t| t.name == "blocks-sigprof")
        .is_none_or(|t| t.samples.is_empty()));
    let w = profile
        .threads
        .iter()
        .find(|t| t.name == "worker-0")
        .unwrap();
    let intervals: u64 = w.samples.iter().map(|s| s.weight as u64).sum();
    // 300 ms of its CPU took at least 300 wall-clock intervals; a busy machine may leave some
    // unanswered.
    assert!(
        intervals > 150,
        "the other thread is still sampled: {} samples, {intervals} intervals",
        w.samples.len()
    );
    assert!(
        profile.lost.signal_blocked > 100,
        "the blocked thread's intervals are counted as blocked: {:?}",
        profile.lost
    );
}

/// Spins with `rbp` set to `bad` (no calls inside), `iterations` times.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
fn spin_with_frame_pointer(bad: u64, iterations: u64) {
    // SAFETY: rbp is saved on the stack and restored before the block ends; nothing in the
    // block uses it. The stack pointer is restored too.
    unsafe {
        std::arch::asm!(
            "push rbp",
            "mov rbp, {bad}",
            "2:",
            "dec {n}",
            "jnz 2b",
            "pop rbp",
            bad = in(reg) bad,
            n = inout(reg) iterations => _,
        );
    }
}

/// The aarch64 twin, with `x29`.
#[cfg(target_arch = "aarch64")]
#[inline(never)]
fn spin_with_frame_pointer(bad: u64, iterations: u64) {
    // SAFETY: x29 is kept in x20 and restored before the block ends; nothing in the block
    // uses it.
    unsafe {
        std::arch::asm!(
            "mov x20, x29",
            "mov x29, {bad}",
            "2:",
            "subs {n}, {n}, #1",
            "b.ne 2b",
            "mov x29, x20",
            bad = in(reg) bad,
            n = inout(reg) iterations => _,
            out("x20") _,
        );
    }
}

#[test]
fn corrupted_frame_pointers_end_the_stack_not_the_process() {
    let _g = profiler_lock();
    let done = watchdog(60);
    let local = 0u64;
    let sp = &local as *const u64 as u64;
    let bad_values = [
        0xdead_beef,                   // misaligned
        8,                             // below the stack
        sp.wrapping_add(1 << 40) & !7, // aligned, above the stack, unmapped
        !7,                            // the top of the address space
        0x1000,                        // the zero page
    ];
    // The frame-pointer walker follows rbp; the CFI walker has its own stack tests.
    let mut profiler = Profiler::builder()
        .frequency(2000)
        .clock(Clock::Cpu)
        .unwinder(Unwinder::FramePointers)
        .build()
        .unwrap();
    profiler.start().unwrap();
    std::thread::scope(|s| {
        for (i, &bad) in bad_values.iter().enumerate() {
            std::thread::Builder::new()
                .name(format!("bad-rbp-{i}"))
                .spawn_scoped(s, move || {
                    for _ in 0..20 {
                        spin_with_frame_pointer(bad, 20_000_000);
                    }
                })
                .unwrap();
        }
    });
    let profile = profiler.stop().unwrap().to_profile();
    done.store(true, Ordering::Relaxed);
    let mut ends = std::collections::HashMap::new();
    for t in profile
        .threads
        .iter()
        .filter(|t| t.name.starts_with("bad-rbp-"))
    {
        for s in &t.samples {
            *ends.entry(s.end).or_insert(0) += 1;
        }
    }
    let bad = ends.get(&EndReason::BadFramePointer).copied().unwrap_or(0)
        + ends.get(&EndReason::OutOfBounds).copied().unwrap_or(0);
    assert!(bad > 100, "corrupt chains were detected: {ends:?}");
}

#[test]
fn foreign_signals_are_ignored_and_config_errors_are_clear() {
    let _g = profiler_lock();
    assert!(matches!(
        Profiler::builder().frequency(0).build(),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        Profiler::builder().max_frames(0).build(),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        Profiler::builder().signal(libc::SIGKILL).build(),
        Err(Error::InvalidConfig(_))
    ));

    // Another handler owns SIGUSR2: vignette refuses it rather than replace it.
    extern "C" fn foreign(_: i32) {}
    // SAFETY: installs a trivial handler for SIGUSR2.
    unsafe { libc::signal(libc::SIGUSR2, foreign as *const () as libc::sighandler_t) };
    let err = Profiler::builder()
        .signal(libc::SIGUSR2)
        .build()
        .err()
        .unwrap();
    assert_eq!(err, Error::SignalInUse(libc::SIGUSR2));
    assert!(err.to_string().contains("Builder::signal"));

    let mut profiler = Profiler::builder().build().unwrap();
    assert!(matches!(
        Profiler::builder().build(),
        Err(Error::AlreadyExists)
    ));
    assert!(matches!(profiler.stop(), Err(Error::NotRunning)));
    profiler.start().unwrap();
    assert!(matches!(profiler.start(), Err(Error::Running)));
    assert!(matches!(
        profiler.sample_once(vignette::Target::AllThreads),
        Err(Error::Running)
    ));
    // A SIGURG that is not vignette's (kill, a timer) is ignored, not fatal.
    // SAFETY: sends a signal to this process.
    unsafe { libc::kill(libc::getpid(), libc::SIGURG) };
    std::thread::sleep(Duration::from_millis(20));
    profiler.stop().unwrap();
    drop(profiler);
    // After the profiler is gone the handler stays and still ignores strays.
    // SAFETY: sends a signal to this process.
    unsafe { libc::kill(libc::getpid(), libc::SIGURG) };
    std::thread::sleep(Duration::from_millis(20));
    // And a new profiler can be built again.
    let mut again = Profiler::builder().build().unwrap();
    assert_eq!(
        again
            .sample_once(vignette::Target::Thread(Profiler::current_thread_id()))
            .unwrap(),
        1
    );
    let p = again.stop().unwrap().to_profile();
    let me = p
        .threads
        .iter()
        .find(|t| t.tid == Profiler::current_thread_id() as u32)
        .unwrap();
    let names = stack_names(&p, me.samples[0].stack);
    assert!(
        has_chain(&names, &["foreign_signals_are_ignored"]),
        "{names:#?}"
    );
}

/// What a child process does with a profiler it inherited, running, across `fork()`; returns
/// its exit code: 0, or the step that went wrong. Only calls that neither allocate nor lock
/// (vignette's, see tests/no_alloc.rs) are safe in the child of a multi-threaded process.
fn child_after_fork(mut inherited: Profiler) -> i32 {
    if inherited.stop().err() != Some(Error::Forked) {
        return 10;
    }
    if inherited.sample_once(vignette::Target::AllThreads).err() != Some(Error::Forked) {
        return 11;
    }
    // Must neither wait for the parent's sampler thread nor keep the signal claimed.
    drop(inherited);
    let Ok(mut fresh) = Profiler::builder().build() else {
        return 12;
    };
    if fresh.sample_once(vignette::Target::Thread(Profiler::current_thread_id())) != Ok(1) {
        return 13;
    }
    match fresh.stop() {
        Ok(capture) if capture.sample_count() == 1 => 0,
        _ => 14,
    }
}

#[test]
fn a_child_process_drops_the_inherited_profiler_and_profiles_itself() {
    let _g = profiler_lock();
    let done = watchdog(60);
    let stop = Arc::new(AtomicBool::new(false));
    let workers = workload::spawn_workers(2, &stop);
    let mut profiler = Profiler::builder().build().unwrap();
    profiler.start().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    // SAFETY: the child runs only child_after_fork (no allocation, no locks) and _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: alarm and _exit are async-signal-safe; a hang in the child ends it by
        // SIGALRM, which the parent reports.
        unsafe {
            libc::alarm(20);
            libc::_exit(child_after_fork(profiler));
        }
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child failed: status {status:#x} (exit code = the failed step in \
         child_after_fork; signal 14 = it hung)"
    );
    // The parent's session went on undisturbed.
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    workers.into_iter().for_each(|w| {
        w.join().unwrap();
    });
    let capture = profiler.stop().unwrap();
    assert!(
        capture.sample_count() > 20,
        "{} samples",
        capture.sample_count()
    );
    done.store(true, Ordering::Relaxed);
}

#[test]
fn a_capture_taken_before_fork_reads_the_same_in_the_child() {
    // The sampling engine's tables are not inherited (a child finds them zeroed): what a
    // capture reads must be.
    let _g = profiler_lock();
    let done = watchdog(60);
    let stop = Arc::new(AtomicBool::new(false));
    let mut profiler = Profiler::builder().build().unwrap();
    profiler.start().unwrap();
    let workers = workload::spawn_workers(2, &stop);
    let until = workload::process_cpu_ns() + 200_000_000;
    while workload::process_cpu_ns() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    workers.into_iter().for_each(|w| {
        w.join().unwrap();
    });
    let capture = profiler.stop().unwrap();
    assert!(capture.sample_count() > 0);
    let bytes = capture.to_vec();
    let mut again = vec![0u8; bytes.len() + 64];
    // SAFETY: the child only encodes into memory allocated before the fork and compares
    // (no allocation, no locks), then calls _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let same = capture.encode_into(&mut again).ok() == Some(bytes.len())
            && again[..bytes.len()] == bytes[..];
        // SAFETY: ends the child at once.
        unsafe { libc::_exit(if same { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child encoded another profile: status {status:#x}"
    );
    done.store(true, Ordering::Relaxed);
}

/// Refuses `process_vm_readv` to the calling thread (a seccomp filter of its own, as sandboxes
/// install): it fails with `EPERM`.
fn refuse_process_vm_readv() {
    use libc::{sock_filter, sock_fprog, BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W};
    let stmt = |code: u32, k: u32| sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let filter = [
        // The system call number (seccomp_data.nr, at offset 0).
        stmt(BPF_LD | BPF_W | BPF_ABS, 0),
        sock_filter {
            code: (BPF_JMP | BPF_JEQ | BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: libc::SYS_process_vm_readv as u32,
        },
        stmt(
            BPF_RET | BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        ),
        stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut sock_filter,
    };
    // SAFETY: prctl with valid arguments; `prog` outlives the call (the kernel copies it).
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog),
            0
        );
    }
}

/// The handler saves and restores `errno`. A thread that blocks `SIGSEGV` (so its stack is
/// read with `process_vm_readv`, not fault-recovering loads) and is refused that call by a
/// seccomp filter makes the handler meet `EPERM` on every sample; the thread keeps a value in
/// `errno` while it is sampled hundreds of times in the middle of arithmetic, and finds it
/// unchanged every time it looks. Its samples say why they stopped at the first frame.
#[test]
fn the_handler_leaves_errno_as_it_found_it() {
    let _g = profiler_lock();
    let done = watchdog(120);
    let stop = Arc::new(AtomicBool::new(false));
    let changed = Arc::new(AtomicU64::new(0));
    let checks = Arc::new(AtomicU64::new(0));
    let spinner = {
        let (stop, changed, checks) = (stop.clone(), changed.clone(), checks.clone());
        std::thread::Builder::new()
            .name("errno-keeper".into())
            .spawn(move || {
                // SAFETY: a valid signal set, changed for this thread only.
                unsafe {
                    let mut set: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut set);
                    libc::sigaddset(&mut set, libc::SIGSEGV);
                    libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                }
                refuse_process_vm_readv();
                // SAFETY: __errno_location returns this thread's errno slot.
                let errno = unsafe { libc::__errno_location() };
                let mut x = 1u64;
                while !stop.load(Ordering::Relaxed) {
                    // SAFETY: as above.
                    unsafe { *errno = 4242 };
                    for i in 0..20_000u64 {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(i),
                        );
                    }
                    // SAFETY: as above.
                    if unsafe { *errno } != 4242 {
                        changed.fetch_add(1, Ordering::Relaxed);
                    }
                    checks.fetch_add(1, Ordering::Relaxed);
                }
                x
            })
            .unwrap()
    };
    let mut profiler = Profiler::builder()
        .frequency(4000)
        .clock(Clock::Cpu)
        .build()
        .unwrap();
    profiler.start().unwrap();
    common::wait_for_cpu(&["errno-keeper"], 300_000_000);
    let p = profiler.stop().unwrap().to_profile();
    stop.store(true, Ordering::Relaxed);
    spinner.join().unwrap();
    done.store(true, Ordering::Relaxed);
    let t = p.threads.iter().find(|t| t.name == "errno-keeper").unwrap();
    assert!(
        t.samples.len() > 100,
        "the thread was sampled: {} samples",
        t.samples.len()
    );
    let refused = t
        .samples
        .iter()
        .filter(|s| s.end == EndReason::NoSafeRead)
        .count();
    assert!(
        refused * 10 >= t.samples.len() * 9,
        "the handler met the refused read: {refused} of {} samples",
        t.samples.len()
    );
    assert!(checks.load(Ordering::Relaxed) > 100);
    assert_eq!(
        changed.load(Ordering::Relaxed),
        0,
        "errno changed under {} samples",
        t.samples.len()
    );
}
