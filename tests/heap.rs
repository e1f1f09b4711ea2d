//! The heap sampler on a workload whose truth is known: three sites allocating bytes in the
//! ratio 1:2:7, one freeing half of what it allocated, one leaking all of it, one freeing all.
//! The profile's estimates per site must be within 10% of the truth, and the leak must rank
//! first by bytes in use. (Linux: elsewhere heap samples keep no stack yet.)
#![cfg(target_os = "linux")]

mod common;

use std::alloc::System;
use std::hint::black_box;

use vignette::alloc::Sampled;
use vignette::Profile;

#[global_allocator]
static ALLOC: Sampled<System> = Sampled::new(System);

/// Sizes from 16 bytes to 32 KiB, from a fixed sequence.
struct Sizes(u64);

impl Sizes {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        16 + (self.0 % (32 * 1024)) as usize
    }
}

#[inline(never)]
fn alloc_half_freed(size: usize, keep: &mut Vec<Vec<u8>>, n: usize) {
    let v = black_box(vec![1u8; size]);
    if n.is_multiple_of(2) {
        keep.push(v);
    }
}

#[inline(never)]
fn alloc_leaked(size: usize, keep: &mut Vec<Vec<u8>>) {
    keep.push(black_box(vec![2u8; size]));
}

#[inline(never)]
fn alloc_freed(size: usize) {
    drop(black_box(vec![3u8; size]));
}

/// Bytes (allocated, still live) at each site, estimated.
fn site_bytes(p: &Profile, site: &str) -> (u64, u64) {
    let heap = p.heap.as_ref().expect("the profile has the heap");
    let mut sum = (0, 0);
    for s in &heap.sites {
        if common::stack_names(p, s.stack)
            .iter()
            .any(|n| n.contains(site))
        {
            sum.0 += s.alloc_bytes;
            sum.1 += s.inuse_bytes;
        }
    }
    sum
}

fn within(estimate: u64, truth: u64, what: &str) {
    let err = (estimate as f64 - truth as f64) / truth as f64;
    eprintln!(
        "{what}: estimated {estimate}, truth {truth} ({:+.2}%)",
        err * 100.0
    );
    assert!(
        err.abs() <= 0.10,
        "{what}: estimated {estimate}, truth {truth} ({:+.1}%)",
        err * 100.0
    );
}

#[test]
fn estimates_per_site_are_within_ten_percent_and_the_leak_ranks_first() {
    let _lock = common::profiler_lock();
    vignette::alloc::set_seed(0x5eed);
    let mut profiler = vignette::Profiler::builder()
        .sample_allocations(64 * 1024)
        .build()
        .unwrap();
    // The sampler thread keeps the modules and stack mappings the walks use.
    profiler.start().unwrap();
    let mut sizes = Sizes(0x1234_5678_9abc_def1);
    let (mut half, mut leak) = (Vec::new(), Vec::new());
    // Truth: bytes allocated at each site, and still live.
    let (mut t_half, mut t_leak, mut t_freed) = (0u64, 0u64, 0u64);
    let mut kept_half = 0u64;
    let total = 320u64 << 20;
    let mut n = 0usize;
    while t_half + t_leak + t_freed < total {
        // One unit to the half-freed site, two to the leak, seven to the freed one.
        let size = sizes.next();
        match n % 10 {
            0 => {
                if n.is_multiple_of(20) {
                    kept_half += size as u64;
                }
                alloc_half_freed(size, &mut half, n / 10);
                t_half += size as u64;
            }
            1 | 2 => {
                alloc_leaked(size, &mut leak);
                t_leak += size as u64;
            }
            _ => {
                alloc_freed(size);
                t_freed += size as u64;
            }
        }
        n += 1;
    }
    let p = profiler.stop().unwrap().to_profile();
    let heap = p.heap.as_ref().unwrap();
    assert_eq!(heap.mean_bytes, 64 * 1024);
    assert!(heap.samples > 4000, "{heap:?}");
    let (a_half, i_half) = site_bytes(&p, "alloc_half_freed");
    let (a_leak, i_leak) = site_bytes(&p, "alloc_leaked");
    let (a_freed, i_freed) = site_bytes(&p, "alloc_freed");
    within(a_half, t_half, "allocated, half-freed site");
    within(a_leak, t_leak, "allocated, leaking site");
    within(a_freed, t_freed, "allocated, freeing site");
    within(i_half, kept_half, "in use, half-freed site");
    within(i_leak, t_leak, "in use, leaking site");
    assert!(
        i_freed < t_freed / 100,
        "in use at the freeing site: {i_freed}"
    );
    // The leak ranks first by bytes in use.
    let top = heap.sites.iter().max_by_key(|s| s.inuse_bytes).unwrap();
    let names = common::stack_names(&p, top.stack);
    eprintln!(
        "{heap:?}\n{names:#?}",
        heap = (heap.samples, heap.sites.len(), heap.lost)
    );
    assert!(
        names.iter().any(|n| n.contains("alloc_leaked")),
        "{names:#?}"
    );
    // The allocator's own frames are left out: the innermost frame is the program's.
    assert!(
        !names[0].contains("vignette::alloc"),
        "innermost frame: {}",
        names[0]
    );
    #[cfg(all(feature = "tools", target_arch = "x86_64"))]
    the_tools_name_the_leak(&p);
    black_box((&half, &leak));
    drop((half, leak));
}

/// The CLI's report and Go's own pprof reader name the leak first by bytes in use.
#[cfg(all(feature = "tools", target_arch = "x86_64"))]
fn the_tools_name_the_leak(p: &Profile) {
    use std::process::Command;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("heap");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("heap.vignette");
    std::fs::write(&path, p.encode()).unwrap();
    let exe = std::env::current_exe().unwrap();
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_vignette"))
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(out.status.success(), "{args:?}: {err}");
        text
    };
    let (file, symbols) = (path.to_str().unwrap(), exe.to_str().unwrap());
    let report = cli(&["report", file, "--symbols", symbols]);
    let in_use = report
        .split("heap, bytes still live")
        .nth(1)
        .expect("a table of the heap in use");
    let first = in_use
        .lines()
        .skip(2)
        .find(|l| l.contains("heap::alloc_"))
        .unwrap_or_default();
    assert!(first.contains("heap::alloc_leaked"), "{report}");
    assert!(report.contains("heap: "), "{report}");
    // Go's reader: the leak tops `-sample_index=inuse_space -top` among the test's sites.
    let pb = dir.join("heap.pb.gz");
    let pb = pb.to_str().unwrap();
    cli(&[
        "convert",
        file,
        "--to",
        "pprof",
        "--heap",
        "inuse",
        "-o",
        pb,
        "--symbols",
        symbols,
    ]);
    let out = Command::new("go")
        .args([
            "tool",
            "pprof",
            "-sample_index=inuse_space",
            "-top",
            "-cum",
            pb,
        ])
        .env("HOME", &dir)
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .output()
        .expect("go (Debian package golang-go; .ci/run installs it) reads pprof files");
    let top = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{top}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = top
        .lines()
        .find(|l| l.contains("heap::alloc_"))
        .unwrap_or_default();
    assert!(first.contains("alloc_leaked"), "{top}");
    assert!(top.contains("inuse_space"), "{top}");
    // Heap views: collapsed in bytes, and speedscope's heap profiles beside the threads.
    let collapsed = cli(&[
        "convert",
        file,
        "--to",
        "collapsed",
        "--heap",
        "alloc",
        "-o",
        "-",
        "--symbols",
        symbols,
    ]);
    assert!(
        collapsed.lines().any(|l| l.contains("heap::alloc_freed")),
        "{collapsed}"
    );
}

/// Threads that allocate, hand what they allocated to another thread to free, start and end
/// all the while, and a child forked mid-way that allocates on its own: nothing deadlocks or
/// crashes, and once everything is freed the soak's sites hold nothing live.
#[test]
fn a_soak_across_threads_forks_and_thread_churn_ends_with_nothing_live() {
    use std::sync::mpsc;
    let _lock = common::profiler_lock();
    let _watchdog = common::watchdog(600);
    let mut profiler = vignette::Profiler::builder()
        .sample_allocations(16 * 1024)
        .build()
        .unwrap();
    profiler.start().unwrap();
    // SOAK_ROUNDS=200 runs it for minutes.
    let rounds: usize = std::env::var("SOAK_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(6);
    for round in 0..rounds {
        let (tx, rx) = mpsc::channel::<Vec<Vec<u8>>>();
        let freer = std::thread::spawn(move || {
            for batch in rx {
                soak_free(batch);
            }
        });
        let makers: Vec<_> = (0..4)
            .map(|t| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let mut sizes = Sizes(0x9e37_79b9 + t);
                    for _ in 0..200 {
                        tx.send(soak_alloc(&mut sizes)).unwrap();
                    }
                })
            })
            .collect();
        if round == rounds / 2 {
            // SAFETY: the child only allocates, frees and exits without unwinding.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                let mut sizes = Sizes(7);
                for _ in 0..100 {
                    soak_free(soak_alloc(&mut sizes));
                }
                // SAFETY: ends the child at once.
                unsafe { libc::_exit(0) };
            }
            let mut status = 0;
            // SAFETY: waits for our own child.
            assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "the forked child: status {status:#x}"
            );
        }
        for m in makers {
            m.join().unwrap();
        }
        drop(tx);
        freer.join().unwrap();
    }
    let p = profiler.stop().unwrap().to_profile();
    let heap = p.heap.as_ref().unwrap();
    let soak: Vec<_> = (heap.sites.iter())
        .filter(|s| {
            common::stack_names(&p, s.stack)
                .iter()
                .any(|n| n.contains("soak_alloc"))
        })
        .collect();
    let allocated: u64 = soak.iter().map(|s| s.alloc_bytes).sum();
    let live: u64 = soak.iter().map(|s| s.inuse_bytes).sum();
    eprintln!(
        "soak: {allocated} bytes allocated, {live} live, {} samples, {:?}",
        heap.samples, heap.lost
    );
    assert!(allocated > (rounds as u64) << 20, "{heap:?}");
    assert_eq!(live, 0, "everything was freed: {:?}", heap.lost);
}

/// A batch of allocations of up to 32 KiB each.
#[inline(never)]
fn soak_alloc(sizes: &mut Sizes) -> Vec<Vec<u8>> {
    (0..16)
        .map(|_| black_box(vec![0u8; sizes.next()]))
        .collect()
}

#[inline(never)]
fn soak_free(batch: Vec<Vec<u8>>) {
    drop(black_box(batch));
}

/// Rotated chunks and a flight recorder's windows carry the heap as it was when each was
/// taken: allocated since sampling began, live at that moment.
#[test]
fn chunks_and_windows_carry_the_heap() {
    let _lock = common::profiler_lock();
    for window in [None, Some(std::time::Duration::from_secs(5))] {
        let mut builder = vignette::Profiler::builder().sample_allocations(16 * 1024);
        if let Some(w) = window {
            builder = builder.flight_recorder(w);
        }
        let mut profiler = builder.build().unwrap();
        profiler.start().unwrap();
        let mut sizes = Sizes(11);
        let kept = soak_alloc(&mut sizes);
        let first = match window {
            None => profiler.rotate(),
            Some(_) => profiler.window(),
        }
        .unwrap()
        .to_profile();
        let live = |p: &Profile| {
            let sites = p.heap.as_ref().map(|h| h.sites.clone()).unwrap_or_default();
            (sites.iter())
                .filter(|s| {
                    common::stack_names(p, s.stack)
                        .iter()
                        .any(|n| n.contains("soak_alloc"))
                })
                .map(|s| s.inuse_bytes)
                .sum::<u64>()
        };
        let held = live(&first);
        assert!(held > 0, "{window:?}: {:?}", first.heap);
        soak_free(kept);
        let second = profiler.stop().unwrap().to_profile();
        assert_eq!(live(&second), 0, "{window:?}: freed since");
        assert!(second.heap.as_ref().unwrap().samples >= first.heap.as_ref().unwrap().samples);
        #[cfg(feature = "tools")]
        if window.is_none() {
            // Merged, the chunks of one process count its heap once: as the last one has it.
            use vignette::tools::merge::{merge, MergeOptions};
            let both = [first.clone(), second.clone()];
            let merged = merge(&both, MergeOptions::default()).unwrap();
            let sum = |p: &Profile| {
                let h = p.heap.as_ref().unwrap();
                let a: u64 = h.sites.iter().map(|s| s.alloc_bytes).sum();
                (a, h.samples)
            };
            assert_eq!(sum(&merged), sum(&second));
            assert_eq!(live(&merged), 0);
            // Two processes add up.
            let mut other = first.clone();
            other.pid += 1;
            let merged = merge(&[other, second.clone()], MergeOptions::default()).unwrap();
            assert_eq!(live(&merged), held);
            assert_eq!(sum(&merged).1, sum(&first).1 + sum(&second).1);
        }
    }
}

/// A heap trigger: a flight recorder's window is delivered once the heap in use grows past the
/// threshold, marked as a heap trigger, and holds the allocations that crossed it.
#[test]
fn the_heap_growing_past_a_threshold_delivers_a_window() {
    use std::sync::mpsc;
    let _lock = common::profiler_lock();
    let mut profiler = vignette::Profiler::builder()
        .sample_allocations(16 * 1024)
        .flight_recorder(std::time::Duration::from_secs(5))
        .build()
        .unwrap();
    profiler.start().unwrap();
    let (tx, rx) = mpsc::channel();
    let triggers = profiler
        .deliver(None, move |c| {
            let _ = tx.send((c.trigger().map(|(k, _)| k), c.to_profile()));
        })
        .unwrap();
    let threshold = 64u64 << 20;
    triggers.heap_over(threshold);
    let mut sizes = Sizes(5);
    let mut held = Vec::new();
    // 128 MiB held, in batches, until the trigger's window arrives (or a generous deadline).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let (kind, p) = loop {
        if held.len() < 512 {
            held.push(soak_alloc(&mut sizes));
        }
        if let Ok(got) = rx.recv_timeout(std::time::Duration::from_millis(5)) {
            break got;
        }
        assert!(std::time::Instant::now() < deadline, "no heap trigger");
    };
    assert_eq!(kind, Some(vignette::TriggerKind::Heap));
    let t = p.chunk.trigger.as_ref().unwrap();
    assert!(t.note.starts_with("heap in use"), "{}", t.note);
    let live: u64 = p
        .heap
        .as_ref()
        .unwrap()
        .sites
        .iter()
        .map(|s| s.inuse_bytes)
        .sum();
    assert!(live > threshold * 9 / 10, "{live}");
    drop(profiler);
    drop(held);
}
