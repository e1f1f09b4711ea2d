//! Fleet views. `vignette merge`: chunks of a session merge back into the session, profiles of
//! different processes share their common modules, and profiles whose weights mean different
//! things are refused. `vignette diff`: a workload against a copy with one function made twice
//! as slow names that function first.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use vignette::tools::merge::{merge, MergeOptions};
use vignette::{Clock, Profile, Sample, Thread};

fn demo() -> Profile {
    let bytes = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/demo.vignette"))
        .unwrap();
    Profile::decode(&bytes).unwrap()
}

/// A stack as its frames' identities: (module name, debug ID, module-relative address).
fn stack_key(p: &Profile, node: u32) -> Vec<(String, String, u64)> {
    p.stack_frames(node)
        .map(|f| match f.module {
            0 => (String::new(), String::new(), f.address),
            m => {
                let m = &p.modules[m as usize - 1];
                (m.name.clone(), m.debug_id_string(), f.address)
            }
        })
        .collect()
}

/// Weight per (thread name, stack).
type Weights = BTreeMap<(String, Vec<(String, String, u64)>), u64>;
/// Each thread's sample times.
type Times = BTreeMap<String, Vec<u64>>;

/// Weight per (thread name, stack), and each thread's sample times (µs since `base_ns`).
fn contents(p: &Profile, base_ns: u64) -> (Weights, Times) {
    let mut weights = BTreeMap::new();
    let mut times: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for t in &p.threads {
        let mut at = (p.start_unix_ns - base_ns) / 1000;
        for s in &t.samples {
            at += s.dt_us;
            *weights
                .entry((t.name.clone(), stack_key(p, s.stack)))
                .or_insert(0) += s.weight as u64;
            times.entry(t.name.clone()).or_default().push(at);
        }
    }
    for v in times.values_mut() {
        v.sort();
    }
    (weights, times)
}

/// `p` cut into `k` chunks of its session by sample time (chunk boundaries on whole
/// microseconds), each a profile of its own with the same tables.
fn chunks(p: &Profile, k: u64) -> Vec<Profile> {
    let len_us = (p.duration_ns / 1000).div_ceil(k).max(1);
    (0..k)
        .map(|c| {
            let (from, to) = (c * len_us, (c + 1) * len_us);
            let threads = p
                .threads
                .iter()
                .map(|t| {
                    let mut at = 0;
                    let mut last = from;
                    let samples = t
                        .samples
                        .iter()
                        .filter_map(|s| {
                            at += s.dt_us;
                            ((from..to).contains(&at) || (c == k - 1 && at >= to)).then(|| {
                                let dt_us = at - last;
                                last = at;
                                Sample { dt_us, ..*s }
                            })
                        })
                        .collect();
                    Thread {
                        tid: t.tid,
                        name: t.name.clone(),
                        samples,
                    }
                })
                .filter(|t| !t.samples.is_empty())
                .collect();
            Profile {
                start_unix_ns: p.start_unix_ns + from * 1000,
                duration_ns: (to - from) * 1000,
                threads,
                lost: vignette::Lost::default(),
                chunk: Default::default(),
                labels: Default::default(),
                ..p.clone()
            }
        })
        .collect()
}

#[test]
fn chunks_of_a_session_merge_back_into_it() {
    let p = demo();
    assert!(p.sample_count() > 1000);
    let parts = chunks(&p, 7);
    assert_eq!(
        parts.iter().map(|c| c.sample_count()).sum::<usize>(),
        p.sample_count()
    );
    let folded = merge(&parts, MergeOptions { fold_threads: true }).unwrap();
    assert_eq!(folded.start_unix_ns, p.start_unix_ns);
    assert_eq!(
        contents(&folded, p.start_unix_ns),
        contents(&p, p.start_unix_ns)
    );
    assert_eq!(folded.threads.len(), p.threads.len());
    // Re-interned, not duplicated: no more frames or stack nodes than the original.
    assert!(folded.frames.len() <= p.frames.len());
    assert!(folded.stacks.len() <= p.stacks.len());
    assert_eq!(folded.modules.len(), p.modules.len());
    // The merged profile is a valid profile.
    Profile::decode(&folded.encode()).unwrap();
    // Kept apart, each chunk's threads are threads of their own, with the same weights.
    let apart = merge(&parts, MergeOptions::default()).unwrap();
    assert_eq!(
        apart.threads.len(),
        parts.iter().map(|c| c.threads.len()).sum::<usize>()
    );
    assert_eq!(
        contents(&apart, p.start_unix_ns).0,
        contents(&p, p.start_unix_ns).0
    );
}

#[test]
fn profiles_of_two_processes_share_their_common_modules() {
    let a = demo();
    let b = Profile::decode(&std::fs::read(common::fixture("demo-v3.vignette")).unwrap()).unwrap();
    let m = merge(&[a.clone(), b.clone()], MergeOptions::default()).unwrap();
    let ids = |p: &Profile| -> std::collections::BTreeSet<(String, String)> {
        p.modules
            .iter()
            .map(|m| (m.name.clone(), m.debug_id_string()))
            .collect()
    };
    let union: std::collections::BTreeSet<_> = ids(&a).union(&ids(&b)).cloned().collect();
    assert_eq!(ids(&m), union);
    assert!(
        m.modules.len() < a.modules.len() + b.modules.len(),
        "libc is listed once"
    );
    assert_eq!(m.sample_count(), a.sample_count() + b.sample_count());
    let start = a.start_unix_ns.min(b.start_unix_ns);
    let (wa, wb, wm) = (
        contents(&a, start).0,
        contents(&b, start).0,
        contents(&m, start).0,
    );
    let mut want = wa;
    for (k, w) in wb {
        *want.entry(k).or_insert(0) += w;
    }
    assert_eq!(wm, want);
}

#[test]
fn profiles_with_other_clocks_or_intervals_are_refused() {
    let a = demo();
    let mut b = a.clone();
    b.clock = match a.clock {
        Clock::Cpu => Clock::Wall,
        Clock::Wall => Clock::Cpu,
    };
    let e = merge(&[a.clone(), b], MergeOptions::default()).unwrap_err();
    assert!(
        e.to_string().contains("profile 2 samples with clock"),
        "{e}"
    );
    let mut c = a.clone();
    c.interval_ns *= 2;
    assert!(merge(&[a.clone(), c], MergeOptions::default()).is_err());
    assert!(merge(&[], MergeOptions::default()).is_err());
    // A profile made in code that points at a stack that does not exist: an error, no panic.
    let mut d = a.clone();
    d.threads[0].samples[0].stack = u32::MAX;
    assert!(merge(&[d], MergeOptions::default()).is_err());
}

#[test]
fn the_cli_merges_files() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("merge-cli");
    std::fs::create_dir_all(&dir).unwrap();
    let parts = chunks(&demo(), 3);
    let mut args = vec!["merge".to_string()];
    for (i, c) in parts.iter().enumerate() {
        let path = dir.join(format!("chunk-{i}.vignette"));
        std::fs::write(&path, c.encode()).unwrap();
        args.push(path.to_str().unwrap().into());
    }
    let out = dir.join("merged.vignette");
    args.extend([
        "--fold-threads".into(),
        "-o".into(),
        out.to_str().unwrap().into(),
    ]);
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_vignette"))
        .args(&args)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let merged = Profile::decode(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(merged.sample_count(), demo().sample_count());
}

#[inline(never)]
fn part_a(units: u32) -> u64 {
    common::workload::mix_hash(1, units * 2000)
}

#[inline(never)]
fn part_b(units: u32) -> u64 {
    common::workload::mix_hash(2, units * 2000)
}

#[inline(never)]
fn part_c(units: u32) -> u64 {
    common::workload::mix_hash(3, units * 2000)
}

/// Profiles a thread running a, b (`b_units` of work) and c in turn until it has used 1.5 s
/// of CPU (a generous deadline: the machine may be busy).
fn profile_parts(b_units: u32) -> Profile {
    let _g = common::profiler_lock();
    let mut profiler = vignette::Profiler::builder()
        .frequency(1000)
        .build()
        .unwrap();
    profiler.start().unwrap();
    std::thread::Builder::new()
        .name("parts".into())
        .spawn(move || {
            let (t0, deadline) = (
                common::workload::thread_cpu_ns(),
                std::time::Instant::now() + std::time::Duration::from_secs(60),
            );
            let mut x = 0;
            while common::workload::thread_cpu_ns() - t0 < 1_500_000_000
                && std::time::Instant::now() < deadline
            {
                x ^= part_a(1) ^ part_b(b_units) ^ part_c(1);
            }
            std::hint::black_box(x);
        })
        .unwrap()
        .join()
        .unwrap();
    let mut p = profiler.stop().unwrap().to_profile();
    // Other tests run threads in this process meanwhile: keep only the one measured.
    p.threads.retain(|t| t.name == "parts");
    p
}

#[test]
fn diff_names_the_function_that_got_slower_first() {
    use vignette::tools::{diff, SymbolStore};
    let (base, new) = (profile_parts(1), profile_parts(2));
    let cmp = diff::combine(&base, &new).unwrap();
    let exe = std::env::current_exe().unwrap();
    let res = vignette::tools::resolve(&cmp.profile, &mut SymbolStore::new(&[exe])).unwrap();
    let rows = cmp.rows(&res);
    let top = &rows[0];
    // a, b, c at a third each, then b at half: b's total share grows by about 17 points (its
    // self share too in an optimized build; in a debug build the time is in what it calls).
    assert!(top.function.ends_with("part_b"), "{rows:#?}");
    assert!(
        top.total_change() > 0.08,
        "{top:?} ({} and {} samples)",
        base.sample_count(),
        new.sample_count()
    );
    let a = rows
        .iter()
        .find(|r| r.function.ends_with("part_a"))
        .unwrap();
    assert!(a.total_change() < 0.0, "{a:?}");
    let report = cmp.report(&res, 5);
    assert!(
        report.lines().nth(1).unwrap().ends_with("part_b"),
        "{report}"
    );
    // The differential flame graph colours each stack's innermost frame by how its share
    // changed (as flamegraph.pl does): those under b are red (grew), those under a and c blue.
    let svg = String::from_utf8(cmp.to_svg(&res, "parts").unwrap()).unwrap();
    let fills: Vec<(u8, u8, u8)> = svg
        .split("fill=\"rgb(")
        .skip(1)
        .filter_map(|f| {
            let n: Vec<u8> = f[..f.find(')')?]
                .split(',')
                .filter_map(|x| x.trim().parse().ok())
                .collect();
            (n.len() == 3).then(|| (n[0], n[1], n[2]))
        })
        .collect();
    let red = fills
        .iter()
        .filter(|&&(r, g, b)| r == 255 && g < 200 && b < 200)
        .count();
    let blue = fills
        .iter()
        .filter(|&&(r, g, b)| b == 255 && r < 230 && g < 230)
        .count();
    assert!(
        red > 0 && blue > 0,
        "red {red}, blue {blue} of {} frames",
        fills.len()
    );
}
