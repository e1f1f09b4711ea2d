//! What vignette adds to a short process and to `fork()` (Linux).
//!
//! - **start-up**: a child process that runs for 1 ms of CPU, bare or with `build()`,
//!   `start()`, `stop()`, writing the profile and dropping the profiler around that work; the
//!   child's CPU time (from `wait4`) and wall time (spawn to reaped), medians of many runs,
//!   alternating.
//! - **fork**: a profiled (or unprofiled) process forks children that exit at once; the
//!   parent's CPU and wall time per fork and the children's CPU, medians of batches.
//!
//! `cargo bench --bench lifecycle [-- startup|fork]` (this binary runs itself as the children).

use std::process::Command;
use std::time::Instant;

const RUNS: usize = 60;
const FORKS: usize = 200;
const FORK_BATCHES: usize = 9;

fn cpu_ns(ru: &libc::rusage) -> u64 {
    let t = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000_000 + tv.tv_usec as u64 * 1000;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn usage(who: i32) -> u64 {
    // SAFETY: a zeroed rusage is valid, and getrusage writes only into it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(who, &mut ru) };
    cpu_ns(&ru)
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Spins for `ns` of this thread's CPU time.
fn spin(ns: u64) {
    let end = thread_cpu_ns() + ns;
    let mut x = 0u64;
    while thread_cpu_ns() < end {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

fn profiler() -> vignette::Profiler {
    vignette::Profiler::builder().build().expect("build")
}

/// The child of the start-up measurement.
fn child(profiled: bool) {
    if !profiled {
        spin(1_000_000);
        return;
    }
    let mut p = profiler();
    p.start().expect("start");
    spin(1_000_000);
    let capture = p.stop().expect("stop");
    capture.write_to(std::io::sink()).expect("write");
}

/// Runs this binary as a child; its (CPU, wall) nanoseconds.
#[allow(clippy::zombie_processes)] // reaped by wait4, which also gives its CPU time
fn run_child(profiled: bool) -> (u64, u64) {
    let exe = std::env::current_exe().unwrap();
    let t0 = Instant::now();
    let c = Command::new(exe)
        .env(
            "LIFECYCLE_CHILD",
            if profiled { "profiled" } else { "bare" },
        )
        .spawn()
        .unwrap();
    let pid = c.id() as i32;
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid; wait4 reaps our own child and writes into it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = t0.elapsed().as_nanos() as u64;
    assert_eq!(r, pid);
    assert_eq!(status, 0, "child failed");
    (cpu_ns(&ru), wall)
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn startup() {
    let (mut bare, mut prof) = ((vec![], vec![]), (vec![], vec![]));
    for _ in 0..RUNS {
        for (profiled, into) in [(false, &mut bare), (true, &mut prof)] {
            let (cpu, wall) = run_child(profiled);
            into.0.push(cpu);
            into.1.push(wall);
        }
    }
    let (bc, bw, pc, pw) = (
        median(bare.0),
        median(bare.1),
        median(prof.0),
        median(prof.1),
    );
    println!(
        "start-up, a child running 1 ms of CPU, medians of {RUNS}:\n  \
         bare:     {:.2} ms CPU, {:.2} ms wall\n  \
         profiled: {:.2} ms CPU, {:.2} ms wall (build, start, stop, write, drop)\n  \
         added:    {:+.2} ms CPU, {:+.2} ms wall",
        bc as f64 / 1e6,
        bw as f64 / 1e6,
        pc as f64 / 1e6,
        pw as f64 / 1e6,
        (pc as f64 - bc as f64) / 1e6,
        (pw as f64 - bw as f64) / 1e6,
    );
}

/// Forks `FORKS` children that exit at once; per fork: (parent CPU, parent wall, children CPU)
/// in nanoseconds.
fn fork_batch() -> (u64, u64, u64) {
    let (cpu0, kids0, t0) = (
        usage(libc::RUSAGE_SELF),
        usage(libc::RUSAGE_CHILDREN),
        Instant::now(),
    );
    for _ in 0..FORKS {
        // SAFETY: the child only calls `_exit`, which is async-signal-safe.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: ends the child at once, running no handlers of the parent's.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: reaps our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }
    let n = FORKS as u64;
    (
        (usage(libc::RUSAGE_SELF) - cpu0) / n,
        t0.elapsed().as_nanos() as u64 / n,
        (usage(libc::RUSAGE_CHILDREN) - kids0) / n,
    )
}

fn fork_cost() {
    let mut p = profiler();
    let (mut bare, mut prof) = (vec![], vec![]);
    for _ in 0..FORK_BATCHES {
        bare.push(fork_batch());
        p.start().expect("start");
        // Let the sampler thread settle (its first scan and copies) and touch its buffers.
        spin(20_000_000);
        prof.push(fork_batch());
        p.stop().expect("stop");
    }
    let m =
        |v: &[(u64, u64, u64)], f: fn(&(u64, u64, u64)) -> u64| median(v.iter().map(f).collect());
    let row = |name: &str, v: &[(u64, u64, u64)]| {
        println!(
            "  {name}: parent {:.1} µs CPU, {:.1} µs wall; child {:.1} µs CPU",
            m(v, |x| x.0) as f64 / 1e3,
            m(v, |x| x.1) as f64 / 1e3,
            m(v, |x| x.2) as f64 / 1e3,
        )
    };
    println!("fork, per fork of a child that exits at once, medians of {FORK_BATCHES} batches of {FORKS}:");
    row("unprofiled", &bare);
    row("profiled  ", &prof);
}

fn main() {
    match std::env::var("LIFECYCLE_CHILD").as_deref() {
        Ok("profiled") => return child(true),
        Ok(_) => return child(false),
        Err(_) => {}
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // `-- startup` or `-- fork` runs one part only.
    let only = |part: &str| {
        let parts: Vec<String> = std::env::args()
            .skip(1)
            .filter(|a| !a.starts_with('-'))
            .collect();
        parts.is_empty() || parts.iter().any(|p| p == part)
    };
    if only("startup") {
        startup();
    }
    if only("fork") {
        fork_cost();
    }
}
