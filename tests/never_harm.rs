//! vignette never harms the process it samples, whatever the application does with its memory
//! meanwhile: stacks unmapped under a walk, libraries unloaded and replaced, module text
//! protected. Each test fails (the process dies) without the fault-free design described in
//! `src/sys/linux/fault_guard.rs` and `src/code_map.rs`.
//!
//! Sample counts are reached through CPU time the sampled threads spend, never within a fixed
//! wall-clock window, and a watchdog aborts a test that hangs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::Arc;
use std::time::Duration;

use common::{profiler_lock, watchdog};
use vignette::{Clock, EndReason, Profiler, Unwinder};

/// Spins `iterations` times with the stack pointer at `sp` and the frame pointer at `bp`,
/// restoring both after: the state of a fiber running on a stack of its own.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
fn spin_on_stack(sp: u64, bp: u64, iterations: u64) {
    // SAFETY: rsp and rbp are restored before the block ends; while switched, nothing but the
    // kernel (delivering a signal) uses the stack at `sp`, which the caller mapped writable.
    unsafe {
        std::arch::asm!(
            "mov r12, rsp",
            "mov r13, rbp",
            "mov rsp, {sp}",
            "mov rbp, {bp}",
            "2:",
            "dec {n}",
            "jnz 2b",
            "mov rsp, r12",
            "mov rbp, r13",
            sp = in(reg) sp,
            bp = in(reg) bp,
            n = inout(reg) iterations => _,
            out("r12") _,
            out("r13") _,
        );
    }
}

/// The aarch64 twin: `sp` and `x29`.
#[cfg(target_arch = "aarch64")]
#[inline(never)]
fn spin_on_stack(sp: u64, bp: u64, iterations: u64) {
    // SAFETY: sp and x29 are restored before the block ends; while switched, nothing but the
    // kernel (delivering a signal) uses the stack at `sp`, which the caller mapped writable.
    unsafe {
        std::arch::asm!(
            "mov x20, sp",
            "mov x21, x29",
            "mov sp, {sp}",
            "mov x29, {bp}",
            "2:",
            "subs {n}, {n}, #1",
            "b.ne 2b",
            "mov sp, x20",
            "mov x29, x21",
            sp = in(reg) sp,
            bp = in(reg) bp,
            n = inout(reg) iterations => _,
            out("x20") _,
            out("x21") _,
        );
    }
}

/// A thread spins on a 2 MiB stack of its own, in the lower half, with its frame pointer (and
/// every word of the stack) pointing into the upper half; once sampling runs, the upper half
/// is unmapped. Every read of it must fail cleanly.
fn stack_shrinks_under_the_walk(unwinder: Unwinder) {
    const SIZE: usize = 2 << 20;
    let _g = profiler_lock();
    let done = watchdog(120);
    // SAFETY: a fresh private anonymous mapping.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    } as u64;
    assert_ne!(base, libc::MAP_FAILED as u64);
    let upper = base + (SIZE as u64 * 3 / 4);
    // SAFETY: the lower half lies in the mapping just made.
    let lower = unsafe { std::slice::from_raw_parts_mut(base as *mut u64, SIZE / 16) };
    lower.fill(upper);
    let sp = base + SIZE as u64 / 4;

    let mut profiler = Profiler::builder()
        .frequency(1000)
        .clock(Clock::Cpu)
        .unwinder(unwinder)
        .build()
        .unwrap();
    profiler.start().unwrap();
    let spinning = Arc::new(AtomicBool::new(false));
    let unmapped = Arc::new(AtomicBool::new(false));
    let fiber = {
        let (spinning, unmapped) = (spinning.clone(), unmapped.clone());
        std::thread::Builder::new()
            .name("fiber".into())
            .spawn(move || {
                let cpu = || cpu_time_of_this_thread();
                // Until the upper half is gone, then 300 ms of CPU with it gone.
                while !unmapped.load(Acquire) {
                    spinning.store(true, Release);
                    spin_on_stack(sp, upper, 1_000_000);
                }
                let t0 = cpu();
                while cpu() - t0 < Duration::from_millis(300) {
                    spin_on_stack(sp, upper, 1_000_000);
                }
            })
            .unwrap()
    };
    while !spinning.load(Acquire) {
        std::thread::yield_now();
    }
    std::thread::sleep(Duration::from_millis(20));
    // SAFETY: unmaps the upper half of our own mapping; nothing dereferences it (the fiber only
    // holds its address in rbp and on its stack).
    let rc = unsafe { libc::munmap((base + SIZE as u64 / 2) as *mut _, SIZE / 2) };
    assert_eq!(rc, 0);
    unmapped.store(true, Release);
    fiber.join().unwrap();
    let profile = profiler.stop().unwrap().to_profile();
    drop(profiler);
    // SAFETY: unmaps the rest of our own mapping, no longer used.
    unsafe { libc::munmap(base as *mut _, SIZE / 2) };
    let t = profile
        .threads
        .iter()
        .find(|t| t.name == "fiber")
        .expect("the fiber thread was sampled");
    let ends = end_counts(t);
    eprintln!("{unwinder:?}: {} samples, ended {ends:?}", t.samples.len());
    // 300 ms of CPU at 1000 Hz; a tick-timed backend (CPU timers, under qemu) takes one
    // sample per kernel tick instead, each weighing several intervals.
    assert!(t.samples.len() >= 40, "{} samples", t.samples.len());
    assert!(
        ends.get(&EndReason::OutOfBounds).copied().unwrap_or(0) > 0,
        "walks into the unmapped half end as unreadable: {ends:?}"
    );
    done.store(true, Relaxed);
}

fn end_counts(t: &vignette::Thread) -> std::collections::BTreeMap<EndReason, usize> {
    let mut ends = std::collections::BTreeMap::new();
    for s in &t.samples {
        *ends.entry(s.end).or_insert(0) += 1;
    }
    ends
}

fn cpu_time_of_this_thread() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes the timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[test]
fn a_stack_unmapped_under_the_walk_ends_the_stack_not_the_process_cfi() {
    stack_shrinks_under_the_walk(Unwinder::Cfi);
}

#[test]
fn a_stack_unmapped_under_the_walk_ends_the_stack_not_the_process_fp() {
    stack_shrinks_under_the_walk(Unwinder::FramePointers);
}

// ---------------------------------------------------------------------------------------------
// Libraries that come and go.

/// Builds `lib{name}.so` from C source into this test's temporary folder (once per process).
fn build_library(name: &str, source: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("never_harm");
    std::fs::create_dir_all(&dir).unwrap();
    let c = dir.join(format!("{name}.c"));
    let so = dir.join(format!("lib{name}.so"));
    std::fs::write(&c, source).unwrap();
    let status = Command::new(common::cc())
        .args(["-O1", "-shared", "-fPIC", "-Wl,--build-id", "-o"])
        .arg(&so)
        .arg(&c)
        .status()
        .expect("gcc runs");
    assert!(status.success(), "gcc built {name}");
    so
}

/// A plugin whose `spin` burns CPU for `ms` milliseconds of this thread's CPU time, with
/// `bss_mib` of zeroed data so that plugins of different sizes land on each other's addresses.
fn plugin_source(tag: &str, bss_mib: usize) -> String {
    format!(
        r#"
#include <time.h>
static char pad[{bss_mib} << 20];
static double cpu_ms(void) {{
    struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}}
__attribute__((noinline)) long {tag}_inner(long i) {{ return i * 31 + pad[i & 4095]; }}
long spin(double ms) {{
    volatile long x = 0;
    double end = cpu_ms() + ms;
    while (cpu_ms() < end)
        for (long i = 0; i < 200000; i++) x += {tag}_inner(i);
    return x;
}}
"#
    )
}

/// A profiler sampling at `hz` on the CPU clock, started.
fn started_on_the_cpu_clock(hz: u32) -> Profiler {
    let mut profiler = Profiler::builder()
        .frequency(hz)
        .clock(Clock::Cpu)
        .build()
        .unwrap();
    profiler.start().unwrap();
    profiler
}

struct Library(*mut libc::c_void);
// SAFETY: a dlopen handle may be used from any thread.
unsafe impl Sync for Library {}

impl Library {
    fn open(path: &Path) -> Library {
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a valid path string; the library has no constructors.
        let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        assert!(!h.is_null(), "dlopen {path:?}");
        Library(h)
    }

    fn spin(&self, ms: f64) {
        // SAFETY: `spin` is defined by every plugin with this signature.
        unsafe {
            let f = libc::dlsym(self.0, c"spin".as_ptr());
            assert!(!f.is_null());
            let f: extern "C" fn(f64) -> i64 = std::mem::transmute(f);
            std::hint::black_box(f(ms));
        }
    }

    fn address_of(&self, symbol: &std::ffi::CStr) -> u64 {
        // SAFETY: looks a symbol up in a loaded library.
        unsafe { libc::dlsym(self.0, symbol.as_ptr()) as u64 }
    }
}

impl Drop for Library {
    fn drop(&mut self) {
        // SAFETY: the handle came from dlopen and no code of the library runs any more.
        unsafe { libc::dlclose(self.0) };
    }
}

#[test]
fn libraries_unloaded_and_replaced_while_threads_run_in_them() {
    let _g = profiler_lock();
    let done = watchdog(240);
    let big = build_library("big", &plugin_source("big", 8));
    let small = build_library("small", &plugin_source("small", 1));
    let mut profiler = started_on_the_cpu_clock(1000);
    // Several threads, each loading and unloading the libraries on its own (the loader counts
    // references, so a library is unmapped when the last thread closes it), spinning in them.
    let cycles = Arc::new(AtomicU64::new(0));
    std::thread::scope(|s| {
        for i in 0..3 {
            let (big, small, cycles) = (&big, &small, cycles.clone());
            std::thread::Builder::new()
                .name(format!("plugins-{i}"))
                .spawn_scoped(s, move || {
                    for _ in 0..40 {
                        Library::open(big).spin(15.0);
                        Library::open(small).spin(5.0);
                        cycles.fetch_add(1, Relaxed);
                    }
                })
                .unwrap();
        }
    });
    let profile = profiler.stop().unwrap().to_profile();
    assert_eq!(cycles.load(Relaxed), 120);
    let samples: usize = profile
        .threads
        .iter()
        .filter(|t| t.name.starts_with("plugins-"))
        .map(|t| t.samples.len())
        .sum();
    eprintln!("{samples} samples over 120 load/unload cycles");
    assert!(samples >= 500, "{samples}");
    done.store(true, Relaxed);
}

#[test]
fn text_protected_while_a_thread_has_frames_in_it() {
    let _g = profiler_lock();
    let done = watchdog(120);
    // The plugin calls back into this executable, which spins: the stack holds the plugin's
    // frame while its pages (text, unwind tables) are PROT_NONE.
    let so = build_library(
        "protected",
        r#"
typedef void (*callback)(void);
__attribute__((noinline)) void call_back(callback f) { f(); __asm__ volatile(""); }
"#,
    );
    static PROTECTED: AtomicBool = AtomicBool::new(false);
    static SPUN_NS: AtomicU64 = AtomicU64::new(0);
    extern "C" fn spin_while_protected() {
        let t0 = cpu_time_of_this_thread();
        while !PROTECTED.load(Acquire) {
            std::hint::spin_loop();
        }
        while cpu_time_of_this_thread() - t0 < Duration::from_millis(300) {
            std::hint::black_box(common::workload::mix_hash(1, 1000));
        }
        SPUN_NS.store((cpu_time_of_this_thread() - t0).as_nanos() as u64, Release);
        while PROTECTED.load(Acquire) {
            std::hint::spin_loop();
        }
    }
    let lib = Library::open(&so);
    let call_back = lib.address_of(c"call_back");
    let maps = mappings_of(&so);
    let mut profiler = started_on_the_cpu_clock(1000);
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("protected".into())
            .spawn_scoped(s, || {
                // SAFETY: call_back has this signature.
                let f: extern "C" fn(extern "C" fn()) = unsafe { std::mem::transmute(call_back) };
                f(spin_while_protected);
            })
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        for &(lo, hi, _) in &maps {
            // SAFETY: protects the library's own pages; no code runs in them until restored.
            let rc = unsafe { libc::mprotect(lo as *mut _, (hi - lo) as usize, libc::PROT_NONE) };
            assert_eq!(rc, 0);
        }
        PROTECTED.store(true, Release);
        while SPUN_NS.load(Acquire) == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        for &(lo, hi, prot) in &maps {
            // SAFETY: restores the protection the loader gave.
            unsafe { libc::mprotect(lo as *mut _, (hi - lo) as usize, prot) };
        }
        PROTECTED.store(false, Release);
    });
    let profile = profiler.stop().unwrap().to_profile();
    let t = profile
        .threads
        .iter()
        .find(|t| t.name == "protected")
        .unwrap();
    eprintln!("{} samples, ended {:?}", t.samples.len(), end_counts(t));
    // (At least a quarter of a per-interval rate: see the fiber test.)
    assert!(t.samples.len() >= 40, "{} samples", t.samples.len());
    // Walks went through the protected library's frame (its unwind tables were copied when it
    // was loaded) up to the thread's entry.
    let through = t
        .samples
        .iter()
        .filter(|s| {
            s.end == EndReason::Root
                && profile.stack_frames(s.stack).any(|f| {
                    f.module != 0
                        && profile.modules[f.module as usize - 1].name == "libprotected.so"
                })
        })
        .count();
    assert!(
        through * 10 >= t.samples.len() * 9,
        "{through} of {} walks crossed the protected library",
        t.samples.len()
    );
    drop(lib);
    done.store(true, Relaxed);
}

/// The mappings of file `path` in this process: `[start, end)` and protection.
fn mappings_of(path: &Path) -> Vec<(u64, u64, i32)> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let name = path.to_str().unwrap();
    let ranges: Vec<_> = maps
        .lines()
        .filter(|l| l.ends_with(name))
        .map(|l| {
            let mut f = l.split_whitespace();
            let (a, b) = f.next().unwrap().split_once('-').unwrap();
            let perms = f.next().unwrap().as_bytes();
            let prot = [
                (b'r', libc::PROT_READ),
                (b'w', libc::PROT_WRITE),
                (b'x', libc::PROT_EXEC),
            ]
            .iter()
            .enumerate()
            .filter(|(i, (c, _))| perms[*i] == *c)
            .fold(0, |p, (_, (_, bit))| p | bit);
            (
                u64::from_str_radix(a, 16).unwrap(),
                u64::from_str_radix(b, 16).unwrap(),
                prot,
            )
        })
        .collect();
    assert!(!ranges.is_empty(), "{name} is mapped");
    ranges
}

// ---------------------------------------------------------------------------------------------
// Attribution: a frame belongs to the module mapped at its address when the sample was taken.

/// Runs `f` on a new thread called `name` and waits for it.
fn on_thread(name: &str, f: impl FnOnce() + Send) {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name(name.into())
            .spawn_scoped(s, f)
            .unwrap()
            .join()
            .unwrap();
    });
}

/// The leaf frames of thread `name` that lie in `[lo, hi)`, as the names of the modules they
/// were attributed to ("" for none).
fn leaf_modules_in(p: &vignette::Profile, name: &str, (lo, hi): (u64, u64)) -> Vec<String> {
    let t = p.threads.iter().find(|t| t.name == name).unwrap();
    t.samples
        .iter()
        .filter_map(|s| {
            let leaf = p.stack_frames(s.stack).next()?;
            let avma = common::frame_avma(p, leaf);
            (lo <= avma && avma < hi).then(|| match leaf.module {
                0 => String::new(),
                m => p.modules[m as usize - 1].name.clone(),
            })
        })
        .collect()
}

fn extent(maps: &[(u64, u64, i32)]) -> (u64, u64) {
    (
        maps.iter().map(|m| m.0).min().unwrap(),
        maps.iter().map(|m| m.1).max().unwrap(),
    )
}

#[test]
fn a_library_loaded_after_start_owns_its_samples() {
    let _g = profiler_lock();
    let done = watchdog(120);
    let so = build_library("late", &plugin_source("late", 1));
    let mut profiler = started_on_the_cpu_clock(1000);
    let mut range = (0, 0);
    on_thread("late", || {
        let lib = Library::open(&so);
        range = extent(&mappings_of(&so));
        lib.spin(500.0);
    });
    let profile = profiler.stop().unwrap().to_profile();
    let leaves = leaf_modules_in(&profile, "late", range);
    let wrong: Vec<_> = leaves.iter().filter(|m| *m != "liblate.so").collect();
    eprintln!(
        "{} leaf samples in the library, {} not attributed to it",
        leaves.len(),
        wrong.len()
    );
    // 500 ms of CPU: at least a quarter of a per-interval rate (see the fiber test).
    assert!(
        leaves.len() >= 100,
        "{} samples in the library",
        leaves.len()
    );
    assert!(wrong.is_empty(), "attributed elsewhere: {wrong:?}");
    done.store(true, Relaxed);
}

#[test]
fn a_library_loaded_where_another_was_is_its_own_module() {
    let _g = profiler_lock();
    let done = watchdog(180);
    let alpha = build_library("alpha", &plugin_source("alpha", 1));
    let beta = build_library("beta", &plugin_source("beta", 1));
    let mut profiler = started_on_the_cpu_clock(1000);
    // The loader reuses the hole the first library leaves, unless something else was mapped
    // there in between (the sampler's own copies of unwind sections, made on its next tick):
    // load the second one right after closing the first, and try again if it landed elsewhere.
    let mut attempt = None;
    let mut range = (0, 0);
    for n in 0..50 {
        let a = Library::open(&alpha);
        range = extent(&mappings_of(&alpha));
        on_thread(&format!("a-{n}"), || a.spin(100.0));
        drop(a);
        let b = Library::open(&beta);
        if extent(&mappings_of(&beta)) == range {
            on_thread(&format!("b-{n}"), || b.spin(100.0));
            attempt = Some(n);
            break;
        }
    }
    let profile = profiler.stop().unwrap().to_profile();
    let n = attempt.expect("the second library was loaded where the first was");
    let module = |name: &str| profile.modules.iter().find(|m| m.name == name).unwrap();
    assert_ne!(module("libalpha.so").code_id, module("libbeta.so").code_id);
    // A sample taken in the moment between one library's unload and the sampler's next look
    // at the loader cannot be told apart: it is recorded without a module, never as the other.
    for (thread, want, other) in [
        (format!("a-{n}"), "libalpha.so", "libbeta.so"),
        (format!("b-{n}"), "libbeta.so", "libalpha.so"),
    ] {
        let leaves = leaf_modules_in(&profile, &thread, range);
        let wrong = leaves.iter().filter(|m| *m == other).count();
        let unknown = leaves.iter().filter(|m| m.is_empty()).count();
        eprintln!(
            "attempt {n}, {thread}: {} leaf samples, {unknown} without a module, {wrong} in {other}",
            leaves.len(),
        );
        assert!(leaves.len() >= 30, "{thread}: {} samples", leaves.len());
        assert_eq!(
            wrong, 0,
            "{thread}: samples of {want} attributed to {other}"
        );
        // Samples in a library loaded since the sampler thread last looked at the loader (every
        // 10 ms with the kernel-timed backends) have no module yet: up to a fifth here.
        assert!(unknown * 5 <= leaves.len(), "{thread}: {unknown} unknown");
    }
    done.store(true, Relaxed);
}

// ---------------------------------------------------------------------------------------------
// Threads: any number live up to `max_threads`, any number over a session's life.

#[test]
fn more_than_a_thousand_live_threads_are_all_sampled() {
    const THREADS: usize = 1500;
    let _g = profiler_lock();
    let done = watchdog(180);
    let mut profiler = Profiler::builder()
        .max_threads(4096)
        .ring_capacity(4096)
        .build()
        .unwrap();
    let release = Arc::new(std::sync::Barrier::new(THREADS + 1));
    let started = Arc::new(std::sync::Barrier::new(THREADS + 1));
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let (release, started) = (release.clone(), started.clone());
            std::thread::Builder::new()
                .name(format!("many-{i}"))
                .stack_size(64 * 1024)
                .spawn(move || {
                    started.wait();
                    release.wait();
                })
                .unwrap()
        })
        .collect();
    started.wait();
    // Samples on demand: every live thread is signalled and answered (no time window).
    for _ in 0..3 {
        profiler.sample_once(vignette::Target::AllThreads).unwrap();
    }
    let profile = profiler.stop().unwrap().to_profile();
    release.wait();
    for h in handles {
        h.join().unwrap();
    }
    let sampled = profile
        .threads
        .iter()
        .filter(|t| t.name.starts_with("many-") && !t.samples.is_empty())
        .count();
    eprintln!(
        "{sampled} of {THREADS} threads sampled, lost {:?}",
        profile.lost
    );
    assert_eq!(sampled, THREADS, "lost {:?}", profile.lost);
    assert_eq!(profile.lost.threads_over_capacity, 0);
    done.store(true, Relaxed);
}

#[test]
fn threads_that_come_and_go_reuse_slots_and_stay_in_the_profile() {
    const THREADS: usize = 400;
    let _g = profiler_lock();
    let done = watchdog(300);
    let mut profiler = Profiler::builder()
        .frequency(1000)
        .clock(Clock::Cpu)
        .max_threads(32)
        .build()
        .unwrap();
    profiler.start().unwrap();
    // Eight at a time, each spinning for 20 ms of its own CPU time, then exiting.
    for batch in 0..THREADS / 8 {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                std::thread::Builder::new()
                    .name(format!("churn-{}", batch * 8 + i))
                    .spawn(|| {
                        let t0 = cpu_time_of_this_thread();
                        while cpu_time_of_this_thread() - t0 < Duration::from_millis(20) {
                            std::hint::black_box(common::workload::mix_hash(1, 1000));
                        }
                    })
                    .unwrap()
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }
    let profile = profiler.stop().unwrap().to_profile();
    let sampled: std::collections::BTreeSet<_> = profile
        .threads
        .iter()
        .filter(|t| t.name.starts_with("churn-") && !t.samples.is_empty())
        .map(|t| t.name.clone())
        .collect();
    eprintln!(
        "{} of {THREADS} short-lived threads sampled with 32 slots, lost {:?}",
        sampled.len(),
        profile.lost
    );
    assert!(
        sampled.len() * 10 >= THREADS * 9,
        "{} of {THREADS} sampled",
        sampled.len()
    );
    // Each listed thread keeps its own id and name.
    let tids: std::collections::BTreeSet<_> = profile
        .threads
        .iter()
        .filter(|t| t.name.starts_with("churn-"))
        .map(|t| t.tid)
        .collect();
    assert_eq!(tids.len(), sampled.len());
    done.store(true, Relaxed);
}

/// A page of machine code counting its argument down to zero, then returning.
#[cfg(target_arch = "x86_64")]
const COUNTDOWN: &[u8] = &[0x48, 0xff, 0xcf, 0x75, 0xfb, 0xc3]; // dec rdi; jnz -5; ret
#[cfg(target_arch = "aarch64")]
const COUNTDOWN: &[u8] = &[
    0x00, 0x04, 0x00, 0xf1, // subs x0, x0, #1
    0xe1, 0xff, 0xff, 0x54, // b.ne -4
    0xc0, 0x03, 0x5f, 0xd6, // ret
];

extern "C" {
    /// libgcc's instruction cache maintenance (needed on aarch64 after writing code).
    fn __clear_cache(start: *mut libc::c_char, end: *mut libc::c_char);
}

/// Maps [`COUNTDOWN`] at exactly `at` (a page just freed), runs it for `cpu_ns` of this
/// thread's CPU time, and unmaps it; `false` if something else took the address first.
fn run_code_at(at: u64, cpu_ns: u64) -> bool {
    // SAFETY: maps a fresh page at a free address (MAP_FIXED_NOREPLACE fails rather than
    // replace anything), writes a complete function into it and calls it with its ABI.
    unsafe {
        let page = libc::mmap(
            at as *mut libc::c_void,
            4096,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        );
        if page == libc::MAP_FAILED || page as u64 != at {
            if page != libc::MAP_FAILED {
                libc::munmap(page, 4096);
            }
            return false;
        }
        std::ptr::copy_nonoverlapping(COUNTDOWN.as_ptr(), page as *mut u8, COUNTDOWN.len());
        __clear_cache(
            page.cast(),
            page.cast::<libc::c_char>().add(COUNTDOWN.len()),
        );
        let f: extern "C" fn(u64) = std::mem::transmute(page);
        let start = common::workload::thread_cpu_ns();
        while common::workload::thread_cpu_ns() - start < cpu_ns {
            f(1_000_000);
        }
        libc::munmap(page, 4096);
    }
    true
}

#[test]
fn code_run_where_a_library_was_is_never_the_librarys() {
    let _g = profiler_lock();
    let done = watchdog(180);
    let gone = build_library("gone", &plugin_source("gone", 1));
    let mut profiler = started_on_the_cpu_clock(4000);
    // Right after `dlclose` returns, a page of new code at the library's old base, as a JIT
    // maps one; the sampler has not looked at the loader yet.
    let mut runs = vec![];
    for n in 0..20 {
        let lib = Library::open(&gone);
        let range = extent(&mappings_of(&gone));
        lib.spin(2.0);
        drop(lib);
        let name = format!("jit-{n}");
        let mut ran = false;
        on_thread(&name, || ran = run_code_at(range.0, 30_000_000));
        if ran {
            runs.push((name, range));
        }
    }
    let profile = profiler.stop().unwrap().to_profile();
    assert!(runs.len() >= 10, "the page was mapped {} times", runs.len());
    let (mut leaves, mut wrong) = (0, 0);
    for (name, range) in &runs {
        let l = leaf_modules_in(&profile, name, *range);
        leaves += l.len();
        wrong += l.iter().filter(|m| *m == "libgone.so").count();
    }
    eprintln!(
        "{} runs of new code at the library's old base: {leaves} leaf samples, {wrong} attributed \
         to the unloaded library",
        runs.len()
    );
    assert!(leaves >= 200, "{leaves} samples in the new code");
    assert_eq!(
        wrong, 0,
        "samples of new code attributed to the unloaded library"
    );
    done.store(true, Relaxed);
}

#[test]
fn libraries_loaded_and_unloaded_200_times_a_second_keep_their_samples() {
    let _g = profiler_lock();
    let done = watchdog(240);
    let churn = build_library("churn", &plugin_source("churn", 1));
    let mut profiler = started_on_the_cpu_clock(4000);
    // Two threads, each loading the library, spinning 5 ms in it and unloading it, 100 times.
    std::thread::scope(|s| {
        for i in 0..2 {
            let churn = &churn;
            std::thread::Builder::new()
                .name(format!("churn-{i}"))
                .spawn_scoped(s, move || {
                    for _ in 0..100 {
                        Library::open(churn).spin(5.0);
                    }
                })
                .unwrap();
        }
    });
    let p = profiler.stop().unwrap().to_profile();
    let (mut samples, mut unknown, mut in_churn) = (0, 0, 0);
    for t in p.threads.iter().filter(|t| t.name.starts_with("churn-")) {
        for s in &t.samples {
            let leaf = p.stack_frames(s.stack).next().unwrap();
            samples += 1;
            match leaf.module {
                0 => unknown += 1,
                m => in_churn += (p.modules[m as usize - 1].name == "libchurn.so") as usize,
            }
        }
    }
    eprintln!("{samples} samples, {in_churn} in the library, {unknown} without a module");
    assert!(samples >= 1000, "{samples} samples");
    assert!(
        in_churn * 2 >= samples,
        "most samples are in the library: {in_churn}"
    );
    // Usually 0 of about 4200 here. A cycle that runs while the sampler thread waits for a
    // CPU (both cores spin) is never listed, and its ~20 samples have no module: 20 and 62
    // in 2 of 9 runs on an idle machine, 29 once beside a whole CI run. (Before: 1.3-1.8%.)
    assert!(
        unknown * 20 <= samples,
        "{unknown} of {samples} samples without a module"
    );
    done.store(true, Relaxed);
}
