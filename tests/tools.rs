//! The tools: symbol files like Mozilla's dump_syms writes, resolution with inline frames,
//! converters, and the CLI's output and errors.
#![cfg(feature = "tools")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use vignette::tools::{self, SymbolFile, SymbolStore};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn tmp(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The `FUNC` and `PUBLIC` records of a `.sym` text as (kind, address, size, name), sorted; a
/// PUBLIC's size is 1 (its own address).
fn symbol_records(text: &str) -> Vec<(String, u64, u64, String)> {
    let hex = |w: &str| u64::from_str_radix(w, 16).unwrap();
    let mut records: Vec<_> = text
        .lines()
        .filter_map(|l| {
            let (kind, rest) = l.split_once(' ')?;
            let rest = rest.strip_prefix("m ").unwrap_or(rest);
            Some(match kind {
                "FUNC" => {
                    let w: Vec<&str> = rest.splitn(4, ' ').collect();
                    (kind.to_string(), hex(w[0]), hex(w[1]), w[3].to_string())
                }
                "PUBLIC" => {
                    let w: Vec<&str> = rest.splitn(3, ' ').collect();
                    (kind.to_string(), hex(w[0]), 1, w[2].to_string())
                }
                _ => return None,
            })
        })
        .collect();
    records.sort();
    records
}

/// Makes vignette's symbol file for the fixture `binary` and checks it against dump_syms'
/// file for it: the same identity, every FUNC and PUBLIC record at the same address with the
/// same size and name, and every address of every record resolving to the same frames.
/// Returns vignette's file, dump_syms' text, and how many addresses had inline frames.
fn assert_like_dump_syms(binary: &str, debug_id: &str) -> (SymbolFile, String, usize) {
    let store = tmp(&format!("store-{binary}"));
    let path = tools::store::add_to_store(&Path::new(FIXTURES).join(binary), &store, &[]).unwrap();
    assert!(
        path.ends_with(format!("{binary}/{debug_id}/{binary}.sym")),
        "{path:?}"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let ours = SymbolFile::parse(&text, "ours").unwrap();
    let reference = format!("{}.dump_syms.sym", binary.trim_end_matches(".so"));
    let their_text = std::fs::read_to_string(Path::new(FIXTURES).join(reference)).unwrap();
    let theirs = SymbolFile::parse(&their_text, "dump_syms").unwrap();
    assert_eq!(ours.id, theirs.id, "same module name, debug ID and code ID");
    let (a, b) = (symbol_records(&text), symbol_records(&their_text));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y, "{binary}: ours, then dump_syms'");
    }
    assert_eq!(
        a.len(),
        b.len(),
        "{binary}: as many FUNC and PUBLIC records"
    );
    let mut checked = 0;
    let mut inlined = 0;
    for (_, start, size, _) in &b {
        for addr in *start..start + size {
            let (x, y) = (ours.lookup(addr), theirs.lookup(addr));
            assert_eq!(x, y, "{binary}: address {addr:#x}");
            inlined += (x.len() > 1) as usize;
            checked += 1;
        }
    }
    assert!(checked > 50, "{binary}: {checked} addresses");
    (ours, their_text, inlined)
}

#[test]
fn our_symbol_files_resolve_like_dump_syms() {
    let (ours, text, inlined) =
        assert_like_dump_syms("libcallback-debug.so", "F2EFFE97E5E8C8E700F192E1F2CB255F0");
    assert!(inlined > 5, "{inlined} addresses with inline frames");
    let mix = u64::from_str_radix(
        text.lines()
            .find(|l| l.ends_with(" c_mix"))
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap(),
        16,
    )
    .unwrap();
    let frames = (mix..mix + 0x40)
        .map(|a| ours.lookup(a))
        .find(|f| f.len() == 2)
        .unwrap();
    assert_eq!(frames[0].function, "twice_plus");
    assert_eq!(frames[1].function, "c_mix");
    assert!(frames[0].file.as_deref().unwrap().ends_with("callback.c"));
}

#[test]
fn c_clones_cold_parts_and_plt_are_named_like_dump_syms() {
    let (ours, text, _) = assert_like_dump_syms("clones", "4EE12C7D823CE7FABDEE1D920FB92BA40");
    // GCC made scale.constprop.0, first.isra.0 and main.cold (tests/fixtures/README.md):
    // each part, hot or cold, is named after its function.
    for name in ["scale", "first", "main", "checked_div"] {
        let parts = text
            .lines()
            .filter(|l| l.starts_with("FUNC ") && l.ends_with(&format!(" {name}")));
        assert_eq!(parts.count(), 2, "{name}: a hot and a cold part");
    }
    assert!(!text.contains(".cold") && !text.contains(".constprop") && !text.contains(".isra"));
    let plt = text
        .lines()
        .find(|l| l.ends_with(" <.plt ELF section in clones>"))
        .unwrap();
    let plt = u64::from_str_radix(plt.split(' ').nth(1).unwrap(), 16).unwrap();
    assert_eq!(
        ours.lookup(plt + 0x10)[0].function,
        "<.plt ELF section in clones>"
    );
}

#[test]
fn cpp_clones_and_templates_are_named_like_dump_syms() {
    let (_, text, _) = assert_like_dump_syms("clones-cpp", "098150100276A4ACD30CBAA115EEC3C20");
    assert!(!text.contains("[clone"), "no clone suffixes");
    for name in [
        "shapes::first(shapes::Big const*, long)",
        "shapes::scale(std::vector<long, std::allocator<long> > const&, int)",
    ] {
        let parts = text
            .lines()
            .filter(|l| l.starts_with("FUNC ") && l.ends_with(name));
        assert_eq!(parts.count(), 2, "{name}: a hot and a cold part");
    }
    assert!(text.contains(" shapes::Accumulator<long>::add(long)\n"));
}

#[test]
fn aarch64_binaries_get_dump_syms_identity_and_names() {
    let (_, text, _) = assert_like_dump_syms("clones-arm64", "AECA1C938E9CCE4D83017074B9E11DDA0");
    assert!(text.starts_with("MODULE Linux arm64 "), "{}", &text[..60]);
}

#[test]
fn binaries_without_a_build_id_get_dump_syms_debug_ids() {
    let store = tmp("store-nobuild");
    let path = tools::store::add_to_store(&Path::new(FIXTURES).join("libnobuild.so"), &store, &[])
        .unwrap();
    // tests/fixtures/README.md: what dump_syms 2.3.9 prints for this file.
    assert!(
        path.ends_with("libnobuild.so/A2A1D9C262E26D442CC6E08ABC5F9EBC0/libnobuild.so.sym"),
        "{}",
        path.display()
    );
    let sym = SymbolFile::parse(&std::fs::read_to_string(&path).unwrap(), "nobuild").unwrap();
    assert_eq!(sym.id.code_id, None, "no build ID, no INFO CODE_ID");
}

#[test]
fn a_symbol_file_for_another_debug_id_is_refused() {
    let store = tmp("store-mismatch");
    let dir = store
        .join("libx.so")
        .join("00000000000000000000000000000000A");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        Path::new(FIXTURES).join("libcallback-debug.dump_syms.sym"),
        dir.join("libx.so.sym"),
    )
    .unwrap();
    let mut symbols = SymbolStore::new(&[store]);
    assert!(symbols
        .find("libx.so", "00000000000000000000000000000000A")
        .is_none());
    let err = symbols.warnings.join("\n");
    assert!(
        err.contains("another") || err.contains("symbol file for debug ID"),
        "{err}"
    );
}

/// A profile of this process with a worker thread in known functions.
fn profile_this_process() -> vignette::Profile {
    let _g = common::profiler_lock();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers = common::workload::spawn_workers(1, &stop);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mut profiler = vignette::Profiler::builder().build().unwrap();
    for _ in 0..40 {
        profiler.sample_once(vignette::Target::AllThreads).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    workers.into_iter().for_each(|w| {
        w.join().unwrap();
    });
    profiler.stop().unwrap().to_profile()
}

#[test]
fn resolve_and_convert_a_real_profile() {
    let p = profile_this_process();
    // Symbols straight from this test binary (it has debug info); libc has none here.
    let exe = std::env::current_exe().unwrap();
    let res = tools::resolve(&p, &mut SymbolStore::new(&[exe])).unwrap();
    assert_eq!(res.frames.len(), p.frames.len());
    assert!(res
        .missing
        .iter()
        .any(|(name, _)| name.starts_with("libc.so")));
    let w = p.threads.iter().find(|t| t.name == "worker-0").unwrap();
    let names: Vec<String> = res
        .stack(&p, w.samples[0].stack)
        .iter()
        .map(|l| l.function.clone())
        .collect();
    let inner_first: Vec<String> = names.iter().rev().cloned().collect();
    assert!(
        common::has_chain(&inner_first, &["crunch", "worker_loop"]),
        "{names:#?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("libc.so.6+0x")),
        "unresolved frames keep module+offset: {names:#?}"
    );
    let located = res
        .stack(&p, w.samples[0].stack)
        .into_iter()
        .find(|l| l.function.ends_with("worker_loop"))
        .unwrap();
    assert!(located.file.as_deref().unwrap().ends_with("workload.rs") && located.line > 0);

    let doc = tools::speedscope::to_speedscope(&p, &res, "test");
    let profiles = doc["profiles"].as_array().unwrap();
    assert_eq!(
        profiles.len(),
        p.threads.iter().filter(|t| !t.samples.is_empty()).count()
    );
    let wp = profiles
        .iter()
        .find(|x| x["name"].as_str().unwrap().starts_with("worker-0 ("))
        .unwrap();
    assert_eq!(wp["samples"].as_array().unwrap().len(), w.samples.len());
    let total: f64 = wp["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .sum();
    assert_eq!(total, wp["endValue"].as_f64().unwrap());
    let frames = doc["shared"]["frames"].as_array().unwrap();
    for s in wp["samples"].as_array().unwrap() {
        for i in s.as_array().unwrap() {
            assert!((i.as_u64().unwrap() as usize) < frames.len());
        }
    }

    // pprof: gzip around a protobuf that names the functions (resolved) or only the
    // mappings' build IDs (unresolved).
    let gunzip = |b: Vec<u8>| {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&b[..]), &mut out).unwrap();
        String::from_utf8_lossy(&out).into_owned()
    };
    let resolved = gunzip(tools::pprof::to_pprof(&p, Some(&res)));
    assert!(
        resolved.contains("worker_loop")
            && resolved.contains("workload.rs")
            && resolved.contains("worker-0")
    );
    let unresolved = gunzip(tools::pprof::to_pprof(&p, None));
    assert!(!unresolved.contains("worker_loop"));
    let exe = common::this_executable(&p);
    assert!(
        unresolved.contains(&exe.code_id_string()),
        "the mapping carries the build ID"
    );
    assert!(
        unresolved.contains(&exe.name),
        "and a file name, the profile having no path"
    );

    let svg = String::from_utf8(tools::svg::to_svg(&p, &res, "test").unwrap()).unwrap();
    assert!(svg.starts_with("<?xml") && svg.contains("worker_loop") && svg.contains("worker-0"));

    let by_total = tools::report::Options {
        sort: tools::report::Sort::Total,
        ..Default::default()
    };
    let (rows, all) = tools::report::hottest(&p, &res, &by_total, |t| t.name == "worker-0");
    assert_eq!(
        rows.iter().map(|r| r.self_weight).sum::<u64>(),
        all,
        "self weights add up"
    );
    let wl = rows
        .iter()
        .find(|r| r.function.ends_with("worker_loop"))
        .unwrap();
    assert!(
        wl.total_weight * 10 >= all * 9,
        "worker_loop is on (nearly) every worker stack"
    );
    assert!(
        rows.windows(2)
            .all(|w| w[0].total_weight >= w[1].total_weight),
        "sorted by total"
    );
    let at = wl.hottest_line.as_deref().unwrap();
    assert!(at.starts_with("common/workload.rs:"), "{at}");
    let per_thread = tools::report::Options {
        per_thread: true,
        limit: 5,
        ..Default::default()
    };
    assert!(tools::report::report(&p, &res, &per_thread).contains("thread worker-0 ("));
    // A budget's pacing: half the session at the requested interval, half at four times it.
    let mut paced = p.clone();
    paced.rates = vec![vignette::RateChange {
        at_ns: p.duration_ns / 2,
        interval_ns: 4 * p.interval_ns,
    }];
    let text = tools::report::report(&paced, &res, &tools::report::Options::default());
    let hz = 1e9 / p.interval_ns as f64;
    let expect = format!(
        "paced by an overhead budget: every {:.3} to {:.3} ms, 1 changes from {:.3} s, {:.0} Hz on average",
        p.interval_ns as f64 / 1e6,
        4.0 * p.interval_ns as f64 / 1e6,
        (p.duration_ns / 2) as f64 / 1e9,
        hz * 5.0 / 8.0
    );
    assert!(text.contains(&expect), "{expect}\n{text}");
    assert!(!tools::report::report(&p, &res, &tools::report::Options::default()).contains("paced"));

    let fx = tools::firefox::to_firefox(&p, &res, "test");
    let fx_threads = fx["threads"].as_array().unwrap();
    let fw = fx_threads.iter().find(|t| t["name"] == "worker-0").unwrap();
    assert_eq!(
        fw["samples"]["length"].as_u64().unwrap() as usize,
        w.samples.len()
    );
    assert!(fw["stringArray"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s.as_str().unwrap().ends_with("worker_loop")));

    let collapsed = tools::collapsed::to_collapsed(&p, &res);
    let worker_weight: u64 = collapsed
        .lines()
        .filter(|l| l.starts_with("worker-0;"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(
        worker_weight,
        w.samples.iter().map(|s| s.weight as u64).sum::<u64>()
    );
}

fn cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vignette"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn cli_help_and_errors() {
    let (ok, help, _) = cli(&["--help"]);
    assert!(ok);
    for sub in ["symbols", "resolve", "convert", "report", "info"] {
        assert!(help.contains(sub), "{help}");
    }
    let dir = tmp("cli-errors");
    let junk = dir.join("junk.vignette");
    std::fs::write(&junk, b"{\"not\": \"a profile\"}").unwrap();
    let (ok, _, err) = cli(&["info", junk.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.starts_with("Error: ")
            && err.contains("junk.vignette")
            && err.contains("not a vignette profile"),
        "{err}"
    );
    let (ok, _, err) = cli(&["info", dir.join("missing").to_str().unwrap()]);
    assert!(
        !ok && err.contains("missing") && err.contains("No such file"),
        "{err}"
    );
    let (ok, _, err) = cli(&[
        "symbols",
        junk.to_str().unwrap(),
        "--store",
        dir.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("junk.vignette"), "{err}");

    // A real profile through the CLI.
    let p = profile_this_process();
    let path = dir.join("p.vignette");
    std::fs::write(&path, p.encode()).unwrap();
    let (ok, info, _) = cli(&["info", path.to_str().unwrap()]);
    assert!(
        ok && info.contains("worker-0") && info.contains("stacks ended: root"),
        "{info}"
    );
    let out = dir.join("p.speedscope.json");
    let exe = std::env::current_exe().unwrap();
    let (ok, _, err) = cli(&[
        "convert",
        path.to_str().unwrap(),
        "--to",
        "speedscope",
        "-o",
        out.to_str().unwrap(),
        "--symbols",
        exe.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("no symbols for libc.so.6"), "{err}");
    // Bad output paths: said before any work, nothing created.
    let file_as_folder = path.join("x.json");
    let missing_folder = dir.join("no-such-folder").join("x.json");
    for (bad, why) in [
        (&file_as_folder, "p.vignette is a file, not a folder"),
        (&missing_folder, "no-such-folder does not exist"),
        (&dir, "that is a folder"),
    ] {
        for command in [
            vec!["convert", path.to_str().unwrap(), "--to", "collapsed", "-o"],
            vec![
                "resolve",
                path.to_str().unwrap(),
                "--symbols",
                exe.to_str().unwrap(),
                "-o",
            ],
        ] {
            let mut args = command.clone();
            args.push(bad.to_str().unwrap());
            let (ok, _, err) = cli(&args);
            assert!(
                !ok && err.starts_with("Error: cannot write") && err.contains(why),
                "{err}"
            );
        }
    }
    assert!(!dir.join("no-such-folder").exists(), "no folder is created");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(
        doc["$schema"],
        "https://www.speedscope.app/file-format-schema.json"
    );

    // resolve -o, then convert without symbols: the same Speedscope file.
    let resolved = dir.join("p.resolved");
    let (ok, said, err) = cli(&[
        "resolve",
        path.to_str().unwrap(),
        "--symbols",
        exe.to_str().unwrap(),
        "-o",
        resolved.to_str().unwrap(),
    ]);
    assert!(ok && said.contains(" frames resolved"), "{said}{err}");
    let out2 = dir.join("p2.speedscope.json");
    let (ok, _, err) = cli(&[
        "convert",
        resolved.to_str().unwrap(),
        "--to",
        "speedscope",
        "-o",
        out2.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let doc2: serde_json::Value = serde_json::from_slice(&std::fs::read(&out2).unwrap()).unwrap();
    assert!(
        doc["shared"] == doc2["shared"] && doc["profiles"] == doc2["profiles"],
        "same frames and samples"
    );
    let mut damaged = std::fs::read(&resolved).unwrap();
    damaged.truncate(damaged.len() / 2);
    std::fs::write(&resolved, damaged).unwrap();
    let (ok, _, err) = cli(&["info", resolved.to_str().unwrap()]);
    assert!(
        !ok && err.contains("p.resolved") && err.contains("damaged"),
        "{err}"
    );
}

#[test]
fn stripped_binaries_use_their_debug_files() {
    let dir = tmp("debug-files");
    let lib = dir.join("libcallback-debug.so");
    let fixture = Path::new(FIXTURES).join("libcallback-debug.so");
    let run = |args: &[&str]| {
        assert!(
            Command::new(args[0])
                .args(&args[1..])
                .status()
                .unwrap()
                .success(),
            "{args:?}"
        )
    };
    let reference = SymbolFile::parse(
        &std::fs::read_to_string(Path::new(FIXTURES).join("libcallback-debug.dump_syms.sym"))
            .unwrap(),
        "ref",
    )
    .unwrap();
    let c_mix = 0x1208; // inside c_mix, in the inlined twice_plus (see the fixture's .sym)
                        // 1. By build ID under a debug root.
    let debug = dir.join("full.debug");
    run(&[
        "objcopy",
        "--only-keep-debug",
        fixture.to_str().unwrap(),
        debug.to_str().unwrap(),
    ]);
    run(&[
        "strip",
        "--strip-all",
        "-o",
        lib.to_str().unwrap(),
        fixture.to_str().unwrap(),
    ]);
    let root = dir.join("root");
    let hex = reference.id.code_id.clone().unwrap().to_lowercase();
    let by_id = root.join(".build-id").join(&hex[..2]);
    std::fs::create_dir_all(&by_id).unwrap();
    std::fs::copy(&debug, by_id.join(format!("{}.debug", &hex[2..]))).unwrap();
    // Without its debug file, only the exported symbols remain (FUNC records of their sizes,
    // no lines).
    let path = tools::store::add_to_store(&lib, &dir.join("store0"), &[]).unwrap();
    let bare = SymbolFile::parse(&std::fs::read_to_string(path).unwrap(), "bare").unwrap();
    assert_eq!(bare.function_count(), 4, "c_outer, c_work, c_spin, c_mix");
    assert_eq!(bare.lookup(c_mix).len(), 1);
    assert_eq!(bare.lookup(c_mix)[0].line, 0);
    let path =
        tools::store::add_to_store(&lib, &dir.join("store1"), std::slice::from_ref(&root)).unwrap();
    let ours = SymbolFile::parse(&std::fs::read_to_string(path).unwrap(), "ours").unwrap();
    assert_eq!(ours.id, reference.id);
    assert_eq!(ours.lookup(c_mix), reference.lookup(c_mix));
    // 2. By .gnu_debuglink, in the binary's .debug/ folder.
    let linked = dir.join("linked");
    std::fs::create_dir_all(linked.join(".debug")).unwrap();
    let lib2 = linked.join("libcallback-debug.so");
    std::fs::copy(
        &debug,
        linked.join(".debug").join("libcallback-debug.so.debug"),
    )
    .unwrap();
    run(&[
        "strip",
        "--strip-all",
        "-o",
        lib2.to_str().unwrap(),
        fixture.to_str().unwrap(),
    ]);
    run(&[
        "objcopy",
        &format!(
            "--add-gnu-debuglink={}",
            linked.join(".debug/libcallback-debug.so.debug").display()
        ),
        lib2.to_str().unwrap(),
    ]);
    let path = tools::store::add_to_store(&lib2, &dir.join("store2"), &[]).unwrap();
    let ours = SymbolFile::parse(&std::fs::read_to_string(path).unwrap(), "ours").unwrap();
    assert_eq!(ours.lookup(c_mix), reference.lookup(c_mix));
    assert!(
        ours.lookup(c_mix).len() == 2,
        "inline frames survive: {:?}",
        ours.lookup(c_mix)
    );
}

/// Compares `actual` with the snapshot `name` in tests/snapshots (UPDATE_SNAPSHOTS=1 rewrites
/// it), so changes to what users see are deliberate.
fn snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        actual, expected,
        "{name} changed; rerun with UPDATE_SNAPSHOTS=1 if that is intended"
    );
}

#[test]
fn cli_help_snapshots() {
    for (name, args) in [
        ("help.txt", &["--help"][..]),
        ("symbols-help.txt", &["symbols", "--help"][..]),
        ("convert-help.txt", &["convert", "--help"][..]),
        ("report-help.txt", &["report", "--help"][..]),
    ] {
        let (ok, out, err) = cli(args);
        assert!(ok, "{err}");
        snapshot(name, &out);
    }
    // And the info report of a fixed profile (decoded from bytes made here, so stable).
    let p = fixed_profile();
    let dir = tmp("cli-snapshots");
    let path = dir.join("fixed.vignette");
    std::fs::write(&path, p.encode()).unwrap();
    let (ok, out, err) = cli(&["info", path.to_str().unwrap()]);
    assert!(ok, "{err}");
    snapshot(
        "info.txt",
        &out.replace(path.to_str().unwrap(), "fixed.vignette"),
    );
    // The same facts as JSON, for scripts: parsed back, they agree with the profile.
    let (ok, out, err) = cli(&["info", "--json", path.to_str().unwrap()]);
    assert!(ok, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["samples"], p.sample_count());
    assert_eq!(doc["interval_ns"], p.interval_ns);
    assert_eq!(doc["threads"][0]["name"], "main");
    assert_eq!(doc["threads"][0]["weight"], 3);
    assert_eq!(
        doc["modules"][0]["debug_id"],
        p.modules[0].debug_id_string()
    );
    assert_eq!(doc["lost"]["unanswered"], p.lost.unanswered);
    assert_eq!(doc["stacks_ended"]["root"], 1);
    snapshot("info.json", &out);
    let (ok, out, err) = cli(&["report", path.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        err.contains("no symbols for app (debug ID 7DD4E2B7000000000000000000000000"),
        "{err}"
    );
    snapshot("report.txt", &out);
}

/// A small profile made here: one module, two frames, two samples.
fn fixed_profile() -> vignette::Profile {
    vignette::Profile {
        start_unix_ns: 1_700_000_000_000_000_000,
        duration_ns: 2_000_000_000,
        clock: vignette::Clock::Cpu,
        interval_ns: 1_000_000,
        max_frames: 128,
        modules: vec![vignette::Module {
            name: "app".into(),
            path: "/opt/app/bin/app".into(),
            start_avma: 0x5555_0000_0000,
            end_avma: 0x5555_0010_0000,
            base_avma: 0x5555_0000_0000,
            code_id: vec![0xb7, 0xe2, 0xd4, 0x7d],
            debug_id: [0x7d, 0xd4, 0xe2, 0xb7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            age: 0,
            debug_file: "app".into(),
            format: vignette::ObjectFormat::Elf,
        }],
        frames: vec![
            vignette::Frame {
                module: 1,
                address: 0x1234,
            },
            vignette::Frame {
                module: 0,
                address: 0x7f00_0000_1000,
            },
        ],
        stacks: vec![
            vignette::StackNode {
                parent: 0,
                frame: 0,
            },
            vignette::StackNode {
                parent: 1,
                frame: 1,
            },
        ],
        threads: vec![vignette::Thread {
            tid: 42,
            name: "main".into(),
            samples: vec![
                vignette::Sample {
                    dt_us: 1000,
                    stack: 1,
                    weight: 1,
                    end: vignette::EndReason::Root,
                    labels: 0,
                },
                vignette::Sample {
                    dt_us: 1000,
                    stack: 0,
                    weight: 2,
                    end: vignette::EndReason::NoUnwindInfo,
                    labels: 0,
                },
            ],
        }],
        lost: vignette::Lost {
            unanswered: 3,
            ..Default::default()
        },
        chunk: Default::default(),
        labels: Default::default(),
        backend: Default::default(),
        metadata: vec![
            ("app".into(), "fixed".into()),
            ("version".into(), "1.0".into()),
        ],
        system: vec![
            ("os".into(), "linux".into()),
            ("arch".into(), "x86_64".into()),
        ],
        process_cpu_ns: 2_000_000_000,
        pid: 42,
        rates: Vec::new(),
        jit: Vec::new(),
        heap: None,
    }
}

/// The report folds inlined functions into the function they were inlined into, unless asked,
/// shows each function's hottest line, and sorts by self or total.
#[test]
fn report_folds_inlined_frames_and_sorts_both_ways() {
    use tools::report::{hottest, Options, Sort};
    use tools::Location;
    let p = fixed_profile();
    let at = |function: &str, file: &str, line| Location {
        function: function.into(),
        file: Some(file.into()),
        line,
    };
    // Frame 0 (the leaf of 2 of 3 samples): `add` inlined into `hash` inlined into `crunch`.
    // Frame 1 (the root of the third sample's stack): `main`.
    let res = tools::Resolution {
        frames: vec![
            vec![
                at("add", "/rust/core/num.rs", 7),
                at("hash", "/src/app/hash.rs", 20),
                at("crunch", "/src/app/work.rs", 42),
            ],
            vec![at("main", "/src/app/main.rs", 3)],
        ],
        missing: Vec::new(),
        warnings: Vec::new(),
    };
    let row = |rows: &[tools::report::Row], f: &str| rows.iter().find(|r| r.function == f).cloned();
    let (folded, all) = hottest(&p, &res, &Options::default(), |_| true);
    assert_eq!(all, 3);
    let names: Vec<&str> = folded.iter().map(|r| r.function.as_str()).collect();
    assert_eq!(
        names,
        ["crunch", "main"],
        "inlined functions are folded, sorted by self"
    );
    let crunch = row(&folded, "crunch").unwrap();
    assert_eq!((crunch.self_weight, crunch.total_weight), (2, 3));
    assert_eq!(crunch.hottest_line.as_deref(), Some("app/work.rs:42"));
    let inlined = Options {
        inlined: true,
        ..Default::default()
    };
    let (rows, _) = hottest(&p, &res, &inlined, |_| true);
    assert_eq!(rows[0].function, "add");
    assert_eq!(rows[0].hottest_line.as_deref(), Some("core/num.rs:7"));
    assert_eq!(row(&rows, "crunch").unwrap().self_weight, 0);
    assert_eq!(row(&rows, "hash").unwrap().total_weight, 3);
    let by_total = Options {
        sort: Sort::Total,
        inlined: true,
        ..Default::default()
    };
    let (rows, _) = hottest(&p, &res, &by_total, |_| true);
    assert_eq!(
        rows.iter().map(|r| r.total_weight).collect::<Vec<_>>(),
        [3, 3, 3, 1]
    );
    assert_eq!(res.resolved_count(&p), 2);
    // A frame named only by its section (a PLT stub's) is not a resolved function.
    let plt = tools::Resolution {
        frames: vec![
            vec![Location {
                function: "<.plt ELF section in app>".into(),
                file: None,
                line: 0,
            }],
            vec![at("main", "/src/app/main.rs", 3)],
        ],
        ..res.clone()
    };
    assert_eq!(plt.resolved_count(&p), 1);
    let text = tools::report::report(&p, &res, &Options::default());
    assert!(text.contains("by self"), "{text}");
    assert!(text.contains("crunch  (app/work.rs:42)"), "{text}");
}

/// Every converter over every profile the fuzzer has made crash them, and over the largest
/// values the format can carry: no panic, and the outputs are there.
#[test]
fn converters_survive_extreme_values() {
    let mut extreme = fixed_profile();
    extreme.interval_ns = u64::MAX;
    for s in &mut extreme.threads[0].samples {
        s.dt_us = u64::MAX;
        s.weight = u32::MAX;
    }
    // fuzz/artifacts crash-893ec50c: a sample time delta that overflowed the Firefox timeline.
    let fuzzed = std::fs::read(common::fixture("fuzz-convert-overflow.vignette")).unwrap();
    for p in [extreme, vignette::Profile::decode(&fuzzed).unwrap()] {
        let res = tools::resolve(&p, &mut SymbolStore::new(&[])).unwrap();
        let doc = tools::speedscope::to_speedscope(&p, &res, "t");
        assert!(serde_json::to_vec(&doc).unwrap().len() > 100);
        assert!(!tools::collapsed::to_collapsed(&p, &res).is_empty());
        assert!(!tools::pprof::to_pprof(&p, Some(&res)).is_empty());
        assert!(!tools::pprof::to_pprof(&p, None).is_empty());
        assert!(tools::firefox::to_firefox(&p, &res, "t").is_object());
        let options = tools::report::Options {
            per_thread: true,
            ..Default::default()
        };
        assert!(!tools::report::report(&p, &res, &options).is_empty());
        assert!(!tools::svg::to_svg(&p, &res, "t").unwrap().is_empty());
    }
}

/// `vignette symbols` on PE files: the MODULE and CODE_ID lines dump_syms writes, the store
/// keyed by the PDB's name (`app.pdb/<ID>/app.sym`), functions and lines from the DWARF mingw
/// puts in the file; and a profile's Windows module resolves through that store.
#[test]
fn pe_files_get_dump_syms_identity_and_resolve_from_the_store() {
    let store = tmp("pe-store");
    let _ = std::fs::remove_dir_all(&store);
    for dll in ["pe-identity.dll", "pe-no-codeview.dll", "pe-dwarf.dll"] {
        let (ok, out, err) = cli(&[
            "symbols",
            common::fixture(dll).to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
        ]);
        assert!(ok, "{dll}: {out}{err}");
    }
    for (dll, dir) in [
        (
            "pe-identity",
            "pe-identity.pdb/2182EEF2A1F43A9BEB42D8146DC9C6611/pe-identity.sym",
        ),
        (
            "pe-no-codeview",
            "pe-no-codeview.dll/000000000000000000000000000000000/pe-no-codeview.dll.sym",
        ),
    ] {
        let text = std::fs::read_to_string(store.join(dir)).unwrap();
        let want =
            std::fs::read_to_string(common::fixture(&format!("{dll}.dump_syms.head"))).unwrap();
        assert!(text.starts_with(&want), "{dll}:\n{text}");
    }
    let sym = std::fs::read_dir(store.join("pe-dwarf.pdb"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let debug_id = sym.file_name().to_str().unwrap().to_string();
    let text = std::fs::read_to_string(sym.path().join("pe-dwarf.sym")).unwrap();
    let scale = text
        .lines()
        .find(|l| l.starts_with("FUNC ") && l.ends_with(" scale"))
        .unwrap_or_else(|| panic!("a FUNC for scale:\n{text}"));
    let addr = u64::from_str_radix(scale.split(' ').nth(1).unwrap(), 16).unwrap();
    // A profile from Windows with a frame inside `scale`, resolved on this machine.
    let mut p = fixed_profile();
    let guid: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&debug_id[i * 2..i * 2 + 2], 16).unwrap())
        .collect();
    p.modules[0] = vignette::Module {
        name: "pe-dwarf.dll".into(),
        path: String::new(),
        start_avma: 0x1_8000_0000,
        end_avma: 0x1_8002_0000,
        base_avma: 0x1_8000_0000,
        code_id: vec![0x6b, 0x0a, 0x9a, 0x4f, 0, 2, 0, 0],
        debug_id: guid.try_into().unwrap(),
        age: u32::from_str_radix(&debug_id[32..], 16).unwrap(),
        debug_file: "pe-dwarf.pdb".into(),
        format: vignette::ObjectFormat::Pe,
    };
    assert_eq!(p.modules[0].debug_id_string(), debug_id);
    assert_eq!(p.modules[0].code_id_string(), "6B0A9A4F20000");
    p.frames[0].address = addr + 4;
    let res = tools::resolve(&p, &mut SymbolStore::new(std::slice::from_ref(&store))).unwrap();
    let at = &res.frames[0];
    assert_eq!(at.last().unwrap().function, "scale", "{at:?}");
    assert!(
        at.last()
            .unwrap()
            .file
            .as_deref()
            .unwrap()
            .ends_with("pe-identity.c"),
        "{at:?}"
    );
}

/// A mingw executable without debug info: the functions only its COFF symbol table names
/// (`main`, a static function, the C runtime's entry) become `PUBLIC` records, as `nm` lists
/// them, and a frame in one resolves to its name.
#[test]
fn a_mingw_executable_s_coff_symbols_name_its_functions() {
    let dir = tmp("pe-coff");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("coff.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\n\
         static __attribute__((noinline)) int only_in_coff(int x) { return x * 7 + 1; }\n\
         int main(int argc, char **argv) { printf(\"%d\\n\", only_in_coff(argc)); return 0; }\n",
    )
    .unwrap();
    let exe = dir.join("coff.exe");
    let built = std::process::Command::new("x86_64-w64-mingw32-gcc")
        .args(["-O2", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .expect("x86_64-w64-mingw32-gcc (Debian package mingw-w64) is needed for this test");
    assert!(built.success());
    let data = std::fs::read(&exe).unwrap();
    let coff = vignette::tools::sym_writer::coff_functions(&data);
    let rva = |name: &str| {
        coff.iter()
            .find(|(_, n)| n == name)
            .unwrap_or_else(|| panic!("{name} in {coff:?}"))
            .0
    };
    let (main, only) = (rva("main"), rva("only_in_coff"));
    let (_, text) = vignette::tools::sym_writer::sym_for_pe(&data, "coff.exe", "coff.exe").unwrap();
    let text = String::from_utf8(text).unwrap();
    for (name, at) in [("main", main), ("only_in_coff", only)] {
        let line = format!("PUBLIC {at:x} 0 {name}");
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }
}

/// An MSVC-style module (clang's CodeView, lld-link's PDB): `vignette symbols` on the PDB, or
/// on the DLL with its PDB beside it, writes what dump_syms writes (but for its `STACK`
/// records and the `<unknown in …>` filler), and refuses a PDB of another build.
#[test]
fn pdb_files_give_the_records_dump_syms_writes() {
    let want: Vec<String> = std::fs::read_to_string(common::fixture("pe-msvc.dump_syms.sym"))
        .unwrap()
        .lines()
        .filter(|l| {
            !l.starts_with("INFO GENERATOR")
                && !l.starts_with("STACK ")
                && !l.contains("<unknown in ")
        })
        .map(String::from)
        .collect();
    for input in ["pe-msvc.pdb", "pe-msvc.dll"] {
        let store = tmp(&format!("pdb-store-{input}"));
        let _ = std::fs::remove_dir_all(&store);
        let (ok, out, err) = cli(&[
            "symbols",
            common::fixture(input).to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
        ]);
        assert!(ok, "{input}: {out}{err}");
        let text = std::fs::read_to_string(
            store.join("pe-msvc.pdb/9962F1D516F87D5D4C4C44205044422E1/pe-msvc.sym"),
        )
        .unwrap();
        let got: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with("INFO GENERATOR"))
            .map(String::from)
            .collect();
        assert_eq!(got, want, "{input}");
    }
    // A DLL whose CodeView record names a PDB of another build lying beside it.
    let dir = tmp("pdb-mismatch");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut dll = std::fs::read(common::fixture("pe-msvc.dll")).unwrap();
    let at = dll.windows(4).position(|w| w == b"RSDS").unwrap();
    dll[at + 4] ^= 0xff;
    std::fs::write(dir.join("pe-msvc.dll"), &dll).unwrap();
    std::fs::copy(common::fixture("pe-msvc.pdb"), dir.join("pe-msvc.pdb")).unwrap();
    let (ok, _, err) = cli(&[
        "symbols",
        dir.join("pe-msvc.dll").to_str().unwrap(),
        "--store",
        dir.join("store").to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("is not its own"), "{err}");
}

/// `fixed_profile` with labels: its first sample under `endpoint=/a`, its second under
/// `endpoint=/b request=7`.
fn labelled_profile() -> vignette::Profile {
    use vignette::{Label, LabelValue};
    let mut p = fixed_profile();
    p.labels = vignette::Labels {
        keys: vec!["endpoint".into(), "request".into()],
        strings: vec!["/a".into(), "/b".into()],
        sets: vec![
            vec![Label {
                key: 0,
                value: LabelValue::Str(0),
            }],
            vec![
                Label {
                    key: 0,
                    value: LabelValue::Str(1),
                },
                Label {
                    key: 1,
                    value: LabelValue::Int(7),
                },
            ],
        ],
    };
    p.threads[0].samples[0].labels = 1;
    p.threads[0].samples[1].labels = 2;
    vignette::Profile::decode(&p.encode()).expect("a valid labelled profile")
}

/// Labels in the tools: `--filter` keeps the samples with the label (times intact),
/// `report --by` gives a table per value, `--label-frames` puts them at the root of the
/// stacks, and naming a label the profile lacks says which it has.
#[test]
fn labels_filter_group_and_become_root_frames() {
    let p = labelled_profile();
    let f = |s: &str| s.parse::<tools::labels::LabelFilter>().unwrap();
    let b = tools::labels::filter(&p, &f("endpoint=/b"));
    assert_eq!(b.sample_count(), 1);
    assert_eq!(
        b.threads[0].samples[0].dt_us, 2000,
        "the dropped sample's time carried"
    );
    assert_eq!(tools::labels::filter(&p, &f("request=7")).sample_count(), 1);
    assert_eq!(tools::labels::filter(&p, &f("request=8")).sample_count(), 0);
    assert_eq!(
        tools::labels::values(&p, "endpoint"),
        [("/b".to_string(), 2), ("/a".to_string(), 1)]
    );
    assert!("novalue".parse::<tools::labels::LabelFilter>().is_err());

    let res = tools::resolve(&p, &mut SymbolStore::new(&[])).unwrap();
    let (framed, framed_res) = tools::labels::as_root_frames(&p, &res);
    let lines = tools::collapsed::to_collapsed(&framed, &framed_res);
    assert!(
        lines.lines().any(|l| l.starts_with("main;endpoint=/a;")),
        "{lines}"
    );
    assert!(
        lines
            .lines()
            .any(|l| l.starts_with("main;endpoint=/b request=7;")),
        "{lines}"
    );
    let weight = |text: &str| -> u64 {
        (text.lines())
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(
        weight(&lines),
        weight(&tools::collapsed::to_collapsed(&p, &res))
    );

    // Firefox: a category per label set.
    let fx = tools::firefox::to_firefox(&p, &res, "labels");
    let categories: Vec<&str> = fx["meta"]["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        categories.contains(&"endpoint=/a") && categories.contains(&"endpoint=/b request=7"),
        "{categories:?}"
    );

    let dir = tmp("labelled");
    let path = dir.join("labelled.vignette");
    std::fs::write(&path, p.encode()).unwrap();
    let (ok, out, err) = cli(&["report", path.to_str().unwrap(), "--by", "endpoint"]);
    assert!(ok, "{err}");
    let b_at = out.find("endpoint=/b: 2 sampling intervals").expect(&out);
    let a_at = out.find("endpoint=/a: 1 sampling intervals").expect(&out);
    assert!(b_at < a_at, "heaviest first:\n{out}");
    let (ok, _, err) = cli(&["report", path.to_str().unwrap(), "--filter", "phase=x"]);
    assert!(
        !ok && err.contains("no label \"phase\": it has endpoint, request"),
        "{err}"
    );
    let out_path = dir.join("labelled.collapsed");
    let (ok, _, err) = cli(&[
        "convert",
        path.to_str().unwrap(),
        "--to",
        "collapsed",
        "-o",
        out_path.to_str().unwrap(),
        "--filter",
        "endpoint=/a",
        "--label-frames",
    ]);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&out_path).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("main;endpoint=/a;"), "{text}");
}

/// A resolved profile written by an older vignette (its profile inside has an older layout) is
/// refused with what to do, not as damaged.
#[test]
fn an_older_resolved_profile_says_resolve_again() {
    let mut bytes = vignette::tools::resolve::RESOLVED_MAGIC.to_vec();
    bytes.extend([3, 1, 2, 3]);
    let err = vignette::tools::resolve::ResolvedProfile::decode(&bytes, "old.resolved")
        .expect("a resolved profile")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("run `vignette resolve` on the original profile again"),
        "{err}"
    );
}

/// Speedscope and the Firefox Profiler name the profile as the application named itself, and
/// Firefox shows the system it ran on.
#[test]
fn converters_carry_what_the_profile_came_from() {
    let p = fixed_profile();
    let res = tools::resolve(&p, &mut SymbolStore::new(&[])).unwrap();
    let doc = tools::speedscope::to_speedscope(&p, &res, "file-name");
    assert_eq!(doc["name"], "fixed 1.0");
    let fx = tools::firefox::to_firefox(&p, &res, "file-name");
    assert_eq!(fx["meta"]["product"], "fixed 1.0");
    assert_eq!(fx["meta"]["oscpu"], "linux x86_64");
    // Only the thread whose id is the process id is the main thread, wherever it is listed.
    let mut p = p;
    p.threads.insert(
        0,
        vignette::Thread {
            tid: 43,
            name: "worker-2".into(),
            samples: p.threads[0].samples.clone(),
        },
    );
    let fx = tools::firefox::to_firefox(&p, &res, "file-name");
    let main: Vec<(String, bool)> = (fx["threads"].as_array().unwrap().iter())
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["isMainThread"] == true,
            )
        })
        .collect();
    assert_eq!(main.iter().filter(|(_, m)| *m).count(), 1, "{main:?}");
    assert!(
        main.contains(&("worker-2".to_string(), false)),
        "the worker listed first is not the main thread: {main:?}"
    );
}

/// `convert -o -` writes the converted profile to standard output, and nothing else there (no
/// file named `-`, no "wrote" line in the stream).
#[test]
fn convert_to_standard_output() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("stdout-convert");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let profile = dir.join("fixed.vignette");
    std::fs::write(&profile, fixed_profile().encode()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vignette"))
        .args([
            "convert",
            profile.to_str().unwrap(),
            "--to",
            "collapsed",
            "-o",
            "-",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(!stdout.is_empty() && !stdout.contains("wrote"), "{stdout}");
    assert!(stdout
        .lines()
        .all(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().is_ok()));
    assert!(!dir.join("-").exists(), "a file named '-' was written");
}

/// The vDSO has no file: its missing symbols are explained, not blamed on a missing
/// `vignette symbols` run.
#[test]
fn the_vdso_is_not_sent_to_vignette_symbols() {
    let mut p = fixed_profile();
    p.modules[0].name = "linux-vdso.so.1".into();
    let store = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("empty-store");
    std::fs::create_dir_all(&store).unwrap();
    let res = tools::resolve(&p, &mut SymbolStore::new(&[store])).unwrap();
    let warning = res
        .warnings
        .iter()
        .find(|w| w.contains("linux-vdso"))
        .unwrap();
    assert!(warning.contains("vDSO has no file"), "{warning}");
    assert!(!warning.contains("vignette symbols"), "{warning}");
}

/// A stripped executable's symbols name a few exported functions and, for the rest of `.text`,
/// only the section (`<.text ELF section in app>`): frames there keep `app+0x…` (with their
/// offset) instead of all becoming one section "function"; a PLT stub keeps its section name.
#[test]
fn frames_only_a_text_section_record_covers_keep_their_offsets() {
    let mut p = fixed_profile();
    for address in [0x2345, 0x2400, 0x3010] {
        p.frames.push(vignette::Frame { module: 1, address });
    }
    let m = &p.modules[0];
    let dir = tmp("section-records");
    let sym = dir.join("app").join(m.debug_id_string()).join("app.sym");
    std::fs::create_dir_all(sym.parent().unwrap()).unwrap();
    std::fs::write(
        &sym,
        format!(
            "MODULE Linux x86_64 {} app\nPUBLIC 1000 0 exported\n\
             PUBLIC 2000 0 <.text ELF section in app>\nPUBLIC 3000 0 <.plt ELF section in app>\n",
            m.debug_id_string()
        ),
    )
    .unwrap();
    let res = tools::resolve(&p, &mut SymbolStore::new(&[dir])).unwrap();
    let names: Vec<&str> = res.frames.iter().map(|f| f[0].function.as_str()).collect();
    assert_eq!(names[0], "exported");
    assert_eq!(
        names[2..],
        ["app+0x2345", "app+0x2400", "<.plt ELF section in app>"]
    );
}

/// A Windows module's symbols are found whatever the case of its name: the loader says
/// `ADVAPI32.dll` where the store made from the file says `advapi32` (as Windows looks names
/// up); an ELF module's name keeps its case.
#[test]
fn windows_module_names_are_looked_up_ignoring_case() {
    let dir = tmp("store-case");
    let id = "3A1B2C3D4E5F60718293A4B5C6D7E8F91";
    for (folder, file) in [
        ("advapi32.pdb", "advapi32.sym"),
        ("libfoo.so", "libfoo.so.sym"),
    ] {
        let path = dir.join(folder).join(id).join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            format!("MODULE windows x86_64 {id} {folder}\nFUNC 1000 10 0 f\n"),
        )
        .unwrap();
    }
    let mut store = SymbolStore::new(&[dir]);
    assert!(store.find("ADVAPI32.pdb", id).is_some());
    assert!(store.find("advapi32.pdb", id).is_some());
    assert!(
        store.find("LIBFOO.so", id).is_none(),
        "ELF names keep their case"
    );
}

/// A stripped executable's symbols name only its exported functions, each for its own size:
/// code right after one (a static function the tables do not name) keeps its offset instead
/// of taking the exported function's name, as a PUBLIC record (lasting until the next) had it.
#[test]
fn code_past_an_exported_function_is_not_taken_for_it() {
    let dir = tmp("past-exported");
    let src = dir.join("prog.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\n\
         int exported_small(int x) { return x + 1; }\n\
         static long hidden_spin(long n) { long s = 0; for (long i = 0; i < n; i++) s += i; \
         return s; }\n\
         int main(int c, char **v) { printf(\"%ld %d\\n\", hidden_spin(c), exported_small(c)); \
         return 0; }\n",
    )
    .unwrap();
    let (full, stripped) = (dir.join("prog"), dir.join("prog-stripped"));
    // -O0 keeps the functions in source order; -rdynamic exports the global ones.
    let ok = Command::new("gcc")
        .args(["-O0", "-rdynamic", "-o"])
        .args([&full, &src])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let nm = Command::new("nm").arg(&full).output().unwrap();
    let address = |name: &str| {
        let out = String::from_utf8_lossy(&nm.stdout);
        let line = out
            .lines()
            .find(|l| l.ends_with(&format!(" {name}")))
            .unwrap();
        u64::from_str_radix(line.split(' ').next().unwrap(), 16).unwrap()
    };
    let (exported, hidden) = (address("exported_small"), address("hidden_spin"));
    assert!(exported < hidden, "laid out in source order");
    let ok = Command::new("strip")
        .arg("-o")
        .args([&stripped, &full])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let path = tools::store::add_to_store(&stripped, &dir.join("store"), &[]).unwrap();
    let sym = SymbolFile::parse(&std::fs::read_to_string(path).unwrap(), "prog").unwrap();
    let name = |a: u64| sym.lookup(a).first().map(|l| l.function.clone());
    // The executable's base is 0 (PIE): module offsets are its addresses.
    assert_eq!(name(exported).as_deref(), Some("exported_small"));
    assert_eq!(name(hidden + 4), None, "hidden_spin is nobody's");
}
