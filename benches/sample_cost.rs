//! Per-sample cost on the sampled thread, against the physical floor measured in the same run.
//!
//! The bench thread recurses to a given depth and there sends itself signals one after another
//! (a signal a thread sends itself is handled before the send returns), timing its own CPU
//! clock: once to an *empty* handler (the floor: the send, the kernel's signal delivery and
//! `sigreturn`), once to vignette's handler with each unwinder (the same, plus the sample).
//! The difference is what vignette adds per sample on the thread it samples. The rule cache is
//! warm, as it is in a steady session.
//!
//! `cargo bench --bench sample_cost`; with `RUSTFLAGS="-C force-frame-pointers=yes"` the
//! frame-pointer walker unwinds as deep as CFI does (without, it stops after a frame or two,
//! and the table shows it).
#![allow(missing_docs)] // criterion_group! generates undocumented items

#[path = "../examples/common/workload.rs"]
mod workload;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use vignette::{Profiler, Target, Unwinder};

/// Signals per timed batch: well within the ring (512 slots), so none is dropped.
const BATCH: u64 = 64;
/// Recursion depths below the bench's own frames.
const DEPTHS: [usize; 3] = [0, 20, 80];
/// The floor's signal: not the profiler's (SIGURG).
const FLOOR_SIGNAL: i32 = libc::SIGUSR2;

/// Runs `f` `depth` calls further down the stack.
#[inline(never)]
fn at_depth<R>(depth: usize, f: &mut dyn FnMut() -> R) -> R {
    if depth == 0 {
        return f();
    }
    black_box(at_depth(black_box(depth - 1), f))
}

extern "C" fn empty_handler(_: i32, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// Installs the empty handler with the flags vignette uses.
fn install_empty_handler() {
    // SAFETY: a zeroed sigaction with a valid SA_SIGINFO handler and an empty mask.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = empty_handler as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_ONSTACK;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(FLOOR_SIGNAL, &sa, std::ptr::null_mut()), 0);
    }
}

/// Sends the calling thread `count` floor signals the way vignette sends its own (one
/// `rt_tgsigqueueinfo` with a queued siginfo) and returns the thread CPU time taken.
fn floor_batch(count: u64) -> u64 {
    // SAFETY: a zeroed siginfo with its signal, code and sender fields set, as the kernel
    // requires of rt_tgsigqueueinfo from user space (si_code SI_QUEUE, negative).
    let (pid, tid, mut info) = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        info.si_signo = FLOOR_SIGNAL;
        info.si_code = libc::SI_QUEUE;
        (libc::getpid(), libc::gettid(), info)
    };
    let t0 = workload::thread_cpu_ns();
    for _ in 0..count {
        // SAFETY: info is a complete siginfo; the kernel copies it and runs the empty handler.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_rt_tgsigqueueinfo,
                pid,
                tid,
                FLOOR_SIGNAL,
                &mut info as *mut libc::siginfo_t,
            )
        };
        assert_eq!(rc, 0);
    }
    workload::thread_cpu_ns() - t0
}

/// How many frames vignette records for a sample taken at `depth`.
fn frames_at(unwinder: Unwinder, depth: usize) -> usize {
    let mut p = Profiler::builder().unwinder(unwinder).build().unwrap();
    let me = Profiler::current_thread_id();
    at_depth(depth, &mut || p.sample_once(Target::Thread(me)).unwrap());
    let profile = p.stop().unwrap().to_profile();
    let t = profile.threads.iter().find(|t| t.tid == me as u32).unwrap();
    profile.stack_frames(t.samples[0].stack).count()
}

/// Nanoseconds per signal of every criterion sample, by case, for the summary.
type Record = RefCell<BTreeMap<(usize, &'static str), Vec<f64>>>;

/// Times `iters` signals in batches of [`BATCH`] with `batch`, recording ns per signal.
fn timed(
    iters: u64,
    record: &Record,
    key: (usize, &'static str),
    mut batch: impl FnMut(u64) -> u64,
) -> Duration {
    let (mut left, mut ns) = (iters, 0u64);
    while left > 0 {
        let n = left.min(BATCH);
        ns += batch(n);
        left -= n;
    }
    record
        .borrow_mut()
        .entry(key)
        .or_default()
        .push(ns as f64 / iters as f64);
    Duration::from_nanos(ns)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    install_empty_handler();
    let record = Record::default();
    let unwinders = [("cfi", Unwinder::Cfi), ("fp", Unwinder::FramePointers)];
    let mut frames = BTreeMap::new();
    for &depth in &DEPTHS {
        for &(name, unwinder) in &unwinders {
            frames.insert((depth, name), frames_at(unwinder, depth));
        }
    }
    let mut group = c.benchmark_group("per_sample");
    for &depth in &DEPTHS {
        group.bench_function(BenchmarkId::new("empty_handler", depth), |b| {
            b.iter_custom(|iters| {
                timed(iters, &record, (depth, "empty"), |n| {
                    at_depth(depth, &mut || floor_batch(n))
                })
            })
        });
        for &(name, unwinder) in &unwinders {
            let mut p = Profiler::builder().unwinder(unwinder).build().unwrap();
            // Warm the rule cache and the thread table before timing.
            at_depth(depth, &mut || p.sample_self_timed(BATCH as usize).unwrap());
            group.bench_function(BenchmarkId::new(name, depth), |b| {
                b.iter_custom(|iters| {
                    timed(iters, &record, (depth, name), |n| {
                        at_depth(depth, &mut || p.sample_self_timed(n as usize).unwrap())
                    })
                })
            });
            let capture = p.stop().unwrap();
            assert_eq!(capture.lost().ring_full, 0, "no sample was dropped");
        }
    }
    group.finish();
    c.final_summary();

    let record = record.borrow();
    println!("\nper-sample CPU on the sampled thread (medians of criterion's samples)");
    println!("| unwinder | frames | empty handler | vignette | vignette adds | ratio |");
    println!("|---|---|---|---|---|---|");
    for &depth in &DEPTHS {
        let Some(floor) = record.get(&(depth, "empty")).map(|v| median(v)) else {
            continue;
        };
        for &(name, _) in &unwinders {
            let Some(cost) = record.get(&(depth, name)).map(|v| median(v)) else {
                continue;
            };
            println!(
                "| {name} | {} | {floor:.0} ns | {cost:.0} ns | {:.0} ns | {:.2}x |",
                frames[&(depth, name)],
                cost - floor,
                cost / floor
            );
        }
    }
}
