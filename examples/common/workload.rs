//! A multi-threaded CPU workload with known call chains, shared by the demo, tests and benches.
//!
//! Every worker thread runs `worker_loop -> crunch -> {mix_hash, sort_block, mat_mul}`, with
//! `#[inline(never)]` so each function keeps its own frame.
#![allow(dead_code)]

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Spins through `rounds` of hashing: the innermost frame of the hash chain.
#[inline(never)]
pub fn mix_hash(seed: u64, rounds: u32) -> u64 {
    let mut h = seed ^ 0x9E37_79B9_7F4A_7C15;
    for i in 0..rounds {
        h = black_box(h.rotate_left(13).wrapping_mul(0x5851_F42D_4C95_7F2D) ^ i as u64);
    }
    h
}

/// Sorts a small block again and again.
#[inline(never)]
pub fn sort_block(seed: u64) -> u64 {
    let mut v: [u64; 256] = [0; 256];
    let mut x = seed | 1;
    for slot in v.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *slot = x;
    }
    v.sort_unstable();
    black_box(v[128])
}

/// Multiplies two 24x24 matrices.
#[inline(never)]
pub fn mat_mul(seed: u64) -> u64 {
    const N: usize = 24;
    let a: [[f64; N]; N] =
        std::array::from_fn(|i| std::array::from_fn(|j| (i * N + j) as f64 + seed as f64));
    let mut c = [[0f64; N]; N];
    for i in 0..N {
        for j in 0..N {
            c[i][j] = (0..N).map(|k| a[i][k] * a[k][j]).sum();
        }
    }
    black_box(c[N - 1][N - 1] as u64)
}

/// One unit of work: the three kernels in turn.
#[inline(never)]
pub fn crunch(seed: u64) -> u64 {
    let a = mix_hash(seed, 20_000);
    let b = sort_block(a);
    let c = mat_mul(b & 0xff);
    black_box(a ^ b ^ c)
}

/// A worker: crunches until `stop` is set. Returns the number of units done.
#[inline(never)]
pub fn worker_loop(id: u64, stop: &AtomicBool) -> u64 {
    let mut units = 0;
    let mut acc = id;
    while !stop.load(Ordering::Relaxed) {
        acc = crunch(acc.wrapping_add(units));
        units += 1;
    }
    black_box(acc);
    units
}

/// Starts `n` named workers (`worker-0`, ...).
pub fn spawn_workers(n: usize, stop: &Arc<AtomicBool>) -> Vec<JoinHandle<u64>> {
    (0..n)
        .map(|i| {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || worker_loop(i as u64, &stop))
                .expect("spawn worker")
        })
        .collect()
}

/// Runs `n` workers for `millis` milliseconds; returns the units each completed.
pub fn run_for(n: usize, millis: u64) -> Vec<u64> {
    let stop = Arc::new(AtomicBool::new(false));
    let workers = spawn_workers(n, &stop);
    std::thread::sleep(std::time::Duration::from_millis(millis));
    stop.store(true, Ordering::Relaxed);
    workers
        .into_iter()
        .map(|w| w.join().expect("worker panicked"))
        .collect()
}

/// Runs `n` workers (`worker-0`, ...) for exactly `units` units each; returns, when all are
/// done, the CPU time in nanoseconds each worker used.
pub fn run_units(n: usize, units: u64) -> Vec<u64> {
    let workers: Vec<_> = (0..n)
        .map(|i| {
            std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || {
                    let mut acc = i as u64;
                    for u in 0..units {
                        acc = crunch(acc.wrapping_add(u));
                    }
                    black_box(acc);
                    thread_cpu_ns()
                })
                .expect("spawn worker")
        })
        .collect();
    workers
        .into_iter()
        .map(|w| w.join().expect("worker panicked"))
        .collect()
}

/// The calling thread's CPU time in nanoseconds.
#[cfg(unix)]
pub fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// The process's CPU time (all its threads) in nanoseconds.
#[cfg(unix)]
pub fn process_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// `clock`'s reading in nanoseconds.
#[cfg(unix)]
fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The calling thread's CPU time in nanoseconds (user and kernel, in the system's clock ticks).
#[cfg(windows)]
pub fn thread_cpu_ns() -> u64 {
    #[link(name = "kernel32")]
    extern "system" {
        fn GetCurrentThread() -> *mut std::ffi::c_void;
        fn GetThreadTimes(
            h: *mut std::ffi::c_void,
            creation: *mut u64,
            exit: *mut u64,
            kernel: *mut u64,
            user: *mut u64,
        ) -> i32;
    }
    let (mut c, mut e, mut k, mut u) = (0, 0, 0, 0);
    // SAFETY: four writable u64s (FILETIMEs) and the current thread's pseudo-handle.
    unsafe { GetThreadTimes(GetCurrentThread(), &mut c, &mut e, &mut k, &mut u) };
    (k + u) * 100
}

/// The kernel id of this process's first thread named `name` (read from `/proc/self/task`),
/// if any: for a bench that then reads that one thread's CPU ([`tid_cpu_ns`]) without
/// listing every thread again.
pub fn named_thread_tid(name: &str) -> Option<u32> {
    std::fs::read_dir("/proc/self/task")
        .ok()?
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .find_map(|t| t.file_name().to_str()?.parse().ok())
}

/// CPU time of this process's thread `tid` (its `schedstat`), in ns; 0 if it is gone.
pub fn tid_cpu_ns(tid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .ok()
        .and_then(|s| s.split(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU time of this process's thread named `name`, from its schedstat (ns on CPU).
pub fn named_thread_cpu_ns(name: &str) -> u64 {
    named_thread_tid(name).map_or(0, tid_cpu_ns)
}
