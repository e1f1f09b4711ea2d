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
fn chunks_paced_by_a_budget_merge_into_one_rate_record() {
    let p = demo();
    let mut parts = chunks(&p, 3);
    let i = p.interval_ns;
    let rate = |at_ns, interval_ns| vignette::RateChange { at_ns, interval_ns };
    // Slowed down in the first chunk, carried into the second (as the sampler writes it),
    // back to the requested rate there; the third at the requested rate throughout.
    parts[0].rates = vec![rate(parts[0].duration_ns / 2, 4 * i)];
    parts[1].rates = vec![rate(0, 4 * i), rate(parts[1].duration_ns / 2, i)];
    let offset = |c: &Profile| c.start_unix_ns - p.start_unix_ns;
    let merged = merge(&parts, MergeOptions::default()).unwrap();
    assert_eq!(
        merged.rates,
        vec![
            rate(offset(&parts[0]) + parts[0].duration_ns / 2, 4 * i),
            rate(offset(&parts[1]) + parts[1].duration_ns / 2, i),
        ]
    );
    // Profiles of two processes: their weights say their rates; no joint record.
    let mut other = parts[2].clone();
    other.pid += 1;
    other.rates = vec![rate(0, 2 * i)];
    let mixed = merge(&[parts[0].clone(), other], MergeOptions::default()).unwrap();
    assert!(mixed.rates.is_empty());
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

/// A small deterministic generator (xorshift64*), normal draws by Box-Muller.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let (u, v) = (self.next().max(1e-300), self.next());
        mean + sd * (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// A profile of one machine: 10 000 samples spread over 42 functions of one module (each a
/// root frame), function 0 taking `hot` of them, 1 to 40 about 1.5% each, 41 the rest.
fn machine(rng: &mut Rng, hot: f64) -> Profile {
    let mut p = demo();
    p.modules.truncate(1);
    p.frames = (0..42)
        .map(|k| vignette::Frame {
            module: 1,
            address: 0x1000 + 0x100 * k,
        })
        .collect();
    p.stacks = (0..42)
        .map(|k| vignette::StackNode {
            parent: 0,
            frame: k,
        })
        .collect();
    let mut shares = vec![rng.normal(hot, 0.01).max(0.0)];
    shares.extend((1..41).map(|_| rng.normal(0.015, 0.002).max(0.0)));
    shares.push((1.0 - shares.iter().sum::<f64>()).max(0.0));
    let samples = (shares.iter().enumerate())
        .map(|(k, s)| Sample {
            dt_us: 1000,
            stack: k as u32,
            weight: (s * 10_000.0).round() as u32,
            end: vignette::EndReason::Root,
            labels: 0,
        })
        .collect();
    p.threads = vec![Thread {
        tid: 1,
        name: "main".into(),
        samples,
    }];
    p.labels = Default::default();
    p
}

/// Two releases of 20 machines each, one function's share 3 points higher in the new one
/// (profiles vary by 1 point): the comparison of the two sets ranks it first with q < 0.01,
/// and a change within a point of the truth, and no other function changes (but the one that
/// takes the rest). Twenty random A/A splits of 40 machines of one release: about one reports
/// any function at q < 0.05 (the false discovery rate asked), at most three.
#[test]
fn a_regression_across_sets_is_significant_and_noise_is_not() {
    use vignette::tools::{significance::combine_sets, SymbolStore};
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let base: Vec<Profile> = (0..20).map(|_| machine(&mut rng, 0.20)).collect();
    let new: Vec<Profile> = (0..20).map(|_| machine(&mut rng, 0.23)).collect();
    let sets = combine_sets(&base, &new).unwrap();
    let res = vignette::tools::resolve(&sets.pair.profile, &mut SymbolStore::new(&[])).unwrap();
    let changes = sets.changes(&res);
    let top = &changes[0];
    assert_eq!(top.function, format!("{}+0x1000", base[0].modules[0].name));
    assert!(top.q() < 0.01, "{top:?}");
    let (low, high) = top.self_share.interval;
    let change = top.self_share.change();
    assert!((change - 0.03).abs() < 0.01 && low < change && change < high && high - low < 0.02);
    // Function 41 takes what the others leave, so it shrinks as function 0 grows. The 40
    // others did not change: the false discovery rate lets one among the few discoveries be
    // noise now and then (two of eight seeds tried had one, at q 0.007 and 0.019), not more.
    let rest = format!("{}+0x3900", base[0].modules[0].name);
    assert_eq!(changes.len(), 42);
    let false_ones = (changes[1..].iter())
        .filter(|c| c.function != rest && c.q() < 0.05)
        .count();
    assert!(false_ones <= 1, "{false_ones} unchanged functions reported");
    assert!(sets
        .report(&res, 5)
        .contains("20 base profiles against 20 new ones"));

    let same: Vec<Profile> = (0..40).map(|_| machine(&mut rng, 0.20)).collect();
    let mut noisy_splits = 0;
    for _ in 0..20 {
        let mut order: Vec<usize> = (0..40).collect();
        for i in (1..40).rev() {
            order.swap(i, (rng.next() * (i + 1) as f64) as usize);
        }
        let half = |r: &[usize]| r.iter().map(|&i| same[i].clone()).collect::<Vec<_>>();
        let sets = combine_sets(&half(&order[..20]), &half(&order[20..])).unwrap();
        let res = vignette::tools::resolve(&sets.pair.profile, &mut SymbolStore::new(&[])).unwrap();
        if sets.changes(&res).iter().any(|c| c.q() < 0.05) {
            noisy_splits += 1;
        }
    }
    // A false discovery rate of 5% with no true change reports something in about one split
    // of twenty: two or three happen to a quarter of seeds, four to under 2%.
    eprintln!("{noisy_splits} of 20 A/A splits report a change");
    assert!(
        noisy_splits <= 3,
        "{noisy_splits} of 20 A/A splits report a change"
    );
    // One profile a side is not a set.
    assert!(combine_sets(&base[..1], &new).is_err());

    // The CLI compares two folders; a damaged file in one costs that profile, with a warning.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("diff-sets");
    let _ = std::fs::remove_dir_all(&dir);
    for (side, set) in [("a", &base), ("b", &new)] {
        std::fs::create_dir_all(dir.join(side)).unwrap();
        for (i, p) in set.iter().enumerate() {
            let path = dir.join(side).join(format!("m{i:02}.vignette"));
            std::fs::write(path, p.encode()).unwrap();
        }
    }
    std::fs::write(dir.join("b/damaged.vignette"), b"VIGNETTE\x08").unwrap();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_vignette"))
        .args(["diff", "--limit", "1"])
        .args([dir.join("a"), dir.join("b")])
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    assert!(run.status.success(), "{err}");
    assert!(
        out.contains("20 base profiles against 20 new ones"),
        "{out}"
    );
    assert!(out.lines().nth(2).unwrap().ends_with("+0x1000"), "{out}");
    assert!(
        err.contains("skipping") && err.contains("damaged.vignette"),
        "{err}"
    );
}

/// A table of an exported dataset, as rows.
fn table(dir: &Path, name: &str) -> Vec<parquet::record::Row> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let file = std::fs::File::open(dir.join(format!("{name}.parquet"))).unwrap();
    let reader = SerializedFileReader::new(file).unwrap();
    reader
        .get_row_iter(None)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// `vignette export` of a folder: every profile's weight per (thread, stack) comes back from
/// the tables (stacks by depth, frames by module and offset), with its metadata, labels and a
/// name for every frame; a damaged file costs itself, with a warning.
#[test]
fn an_export_keeps_every_stack_weight_and_label() {
    use parquet::record::RowAccessor;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("export");
    let _ = std::fs::remove_dir_all(&dir);
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    let labelled = Profile::decode(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/labelled-v5.vignette"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut tagged = demo();
    tagged.metadata = vec![
        ("app".into(), "demo".into()),
        ("version".into(), "2.0".into()),
    ];
    let inputs = [("demo", demo()), ("labelled", labelled), ("tagged", tagged)];
    for (name, p) in &inputs {
        std::fs::write(input.join(format!("{name}.vignette")), p.encode()).unwrap();
    }
    std::fs::write(input.join("damaged.vignette"), b"VIGNETTE\x09").unwrap();
    let out = dir.join("dataset");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_vignette"))
        .arg("export")
        .arg(&input)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    assert!(run.status.success(), "{stderr}");
    assert!(stdout.contains(": 3 profiles (1 skipped),"), "{stdout}");
    assert!(
        stderr.contains("skipping") && stderr.contains("damaged.vignette"),
        "{stderr}"
    );

    // Profiles by id, named by their file.
    let profiles = table(&out, "profiles");
    let name_of: BTreeMap<i64, String> = (profiles.iter())
        .map(|r| {
            let file = Path::new(r.get_string(1).unwrap()).file_stem().unwrap();
            (r.get_long(0).unwrap(), file.to_string_lossy().into_owned())
        })
        .collect();
    assert_eq!(
        name_of.values().collect::<Vec<_>>(),
        ["demo", "labelled", "tagged"]
    );
    let version = |r: &parquet::record::Row| r.get_string(3).ok().cloned();
    assert_eq!(version(&profiles[2]), Some("2.0".to_string()));
    assert_eq!(version(&profiles[0]), None);

    let modules: BTreeMap<i64, (String, String)> = (table(&out, "modules").iter())
        .map(|r| {
            let (name, id) = (r.get_string(1).unwrap(), r.get_string(3).unwrap());
            (r.get_long(0).unwrap(), (name.clone(), id.clone()))
        })
        .collect();
    let frames: BTreeMap<i64, (String, String, u64)> = (table(&out, "frames").iter())
        .map(|r| {
            let (name, id) = r
                .get_long(1)
                .map_or_else(|_| Default::default(), |m| modules[&m].clone());
            (
                r.get_long(0).unwrap(),
                (name, id, r.get_long(2).unwrap() as u64),
            )
        })
        .collect();
    // Each stack's frames by depth, the root first.
    let mut stacks: BTreeMap<i64, BTreeMap<i32, i64>> = BTreeMap::new();
    for r in table(&out, "stacks") {
        (stacks.entry(r.get_long(0).unwrap()).or_default())
            .insert(r.get_int(1).unwrap(), r.get_long(2).unwrap());
    }
    let mut weights: BTreeMap<String, Weights> = BTreeMap::new();
    let mut label_sets = std::collections::BTreeSet::new();
    for r in table(&out, "samples") {
        let profile = &name_of[&r.get_long(0).unwrap()];
        let key: Vec<_> = (stacks[&r.get_long(3).unwrap()].values().rev())
            .map(|f| frames[f].clone())
            .collect();
        let thread = r.get_string(2).unwrap().clone();
        *(weights.entry(profile.clone()).or_default())
            .entry((thread, key))
            .or_default() += r.get_long(5).unwrap() as u64;
        if r.get_long(4).unwrap() != 0 {
            label_sets.insert((r.get_long(0).unwrap(), r.get_long(4).unwrap()));
        }
    }
    for (name, p) in &inputs {
        assert_eq!(weights[*name], contents(p, p.start_unix_ns).0, "{name}");
    }
    // Every labelled sample's set is in `labels`, and only those.
    let labels: std::collections::BTreeSet<_> = (table(&out, "labels").iter())
        .map(|r| (r.get_long(0).unwrap(), r.get_long(1).unwrap()))
        .collect();
    assert!(!labels.is_empty());
    assert_eq!(labels, label_sets);
    // The dataset's modules and frames read back as they went in: what `vignette resolve
    // DATASET` looks symbols up for, when they arrive after the export.
    let back = vignette::tools::export::dataset_frames(&out).unwrap();
    assert_eq!(back.frames.len(), frames.len());
    for m in &back.modules {
        let input = (inputs.iter().flat_map(|(_, p)| &p.modules))
            .find(|i| i.name == m.name && i.debug_id == m.debug_id)
            .unwrap_or_else(|| panic!("{} is no input's module", m.name));
        assert_eq!(
            (m.age, &m.code_id, &m.debug_file, m.format),
            (input.age, &input.code_id, &input.debug_file, input.format)
        );
    }
    let store = dir.join("no-symbols");
    std::fs::create_dir_all(&store).unwrap();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_vignette"))
        .arg("resolve")
        .arg(&out)
        .arg("--symbols")
        .arg(&store)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("symbols.parquet"), "{stdout}");
    // Without symbols every frame has one name, `module+0xoffset`.
    let symbols = table(&out, "symbols");
    assert_eq!(symbols.len(), frames.len());
    for r in &symbols {
        let (module, _, offset) = &frames[&r.get_long(0).unwrap()];
        let want = match module.as_str() {
            "" => format!("{offset:#x}"),
            m => format!("{m}+{offset:#x}"),
        };
        assert_eq!(r.get_string(2).unwrap(), &want);
    }
}
