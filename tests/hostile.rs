//! The tools treat every profile and symbol file as hostile: names and IDs read from a profile
//! never become paths, damaged trees and absurd depths are refused before anything walks them,
//! and a bad symbol file costs its module only. Every crafted input is made here.
#![cfg(feature = "tools")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vignette::tools::ResolvedProfile;
use vignette::{Clock, EndReason, Frame, Lost, Module, Profile, Sample, StackNode, Thread};

fn tmp(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn vignette(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vignette"))
        .args(args)
        .output()
        .expect("the CLI runs")
}

fn module(name: &str, path: &str, debug_id: [u8; 16], code_id: Vec<u8>) -> Module {
    Module {
        name: name.into(),
        path: path.into(),
        start_avma: 0x1000,
        end_avma: 0x2000,
        base_avma: 0x1000,
        code_id,
        debug_id,
        age: 0,
        debug_file: name.into(),
        format: vignette::ObjectFormat::Elf,
    }
}

/// A profile with one frame (at offset 0x10) in each of `modules`, each frame its own one-node
/// stack, sampled once.
fn profile_over(modules: Vec<Module>) -> Profile {
    let n = modules.len() as u32;
    Profile {
        start_unix_ns: 0,
        duration_ns: 1_000_000,
        clock: Clock::Cpu,
        interval_ns: 1_000_000,
        max_frames: 128,
        modules,
        frames: (1..=n)
            .map(|m| Frame {
                module: m,
                address: 0x10,
            })
            .collect(),
        stacks: (0..n)
            .map(|f| StackNode {
                parent: 0,
                frame: f,
            })
            .collect(),
        threads: vec![Thread {
            tid: 1,
            name: "main".into(),
            samples: (0..n)
                .map(|s| Sample {
                    dt_us: 10,
                    stack: s,
                    weight: 1,
                    end: EndReason::Root,
                    labels: 0,
                })
                .collect(),
        }],
        lost: Lost::default(),
        chunk: Default::default(),
        labels: Default::default(),
        backend: Default::default(),
        metadata: Vec::new(),
        system: Vec::new(),
        process_cpu_ns: 0,
        pid: 0,
        rates: Vec::new(),
        jit: Vec::new(),
        heap: None,
    }
}

/// A `.sym` file for module `name` with one function `function` at 0..0x100.
fn sym(name: &str, debug_id: &str, function: &str) -> String {
    format!("MODULE Linux x86_64 {debug_id} {name}\nFUNC 0 100 0 {function}\n")
}

fn hex(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02X}")).collect::<String>() + "0"
}

#[test]
fn module_names_from_a_profile_never_become_paths() {
    let dir = tmp("hostile-paths");
    let store = dir.join("store");
    std::fs::create_dir_all(&store).unwrap();
    let id = [0xAB; 16];
    // Symbol files an attacker would like vignette to read, outside the store.
    let outside = dir.join("outside");
    for name in ["evil", "passwd"] {
        let p = outside.join(hex(&id)).join(format!("{name}.sym"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, sym(name, &hex(&id), "LEAKED_SECRET")).unwrap();
    }
    let sneaky = [
        format!("{}/evil", outside.display()),
        "../outside/evil".to_string(),
        "..".to_string(),
        "a/../../outside/evil".to_string(),
        ".hidden".to_string(),
        "new\nline".to_string(),
    ];
    let modules: Vec<Module> = sneaky
        .iter()
        .map(|n| module(n, "/nowhere", id, vec![]))
        .collect();
    let profile = profile_over(modules);
    let file = dir.join("p.vignette");
    std::fs::write(&file, profile.encode()).unwrap();
    for args in [
        vec![
            "report",
            file.to_str().unwrap(),
            "--symbols",
            store.to_str().unwrap(),
        ],
        vec![
            "resolve",
            file.to_str().unwrap(),
            "--symbols",
            store.to_str().unwrap(),
        ],
    ] {
        let out = vignette(&args);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert!(
            !stdout.contains("LEAKED_SECRET") && !stderr.contains("LEAKED_SECRET"),
            "{args:?} read a file outside the store:\n{stdout}\n{stderr}"
        );
        assert_eq!(
            stderr.matches("unsafe name").count(),
            sneaky.len(),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn symbols_for_a_profile_reads_only_checked_files() {
    let dir = tmp("hostile-symbols");
    let store = dir.join("store");
    let exe = std::env::current_exe().unwrap();
    let exe = exe.to_str().unwrap();
    let modules = vec![
        module("passwd", "/etc/passwd", [1; 16], vec![1, 2, 3, 4]),
        module("environ", "/proc/self/environ", [2; 16], vec![1, 2, 3, 4]),
        module("mem", "/proc/self/mem", [3; 16], vec![1, 2, 3, 4]),
        module("null", "/dev/null", [4; 16], vec![1, 2, 3, 4]),
        // A real ELF file, but not the one the profile saw (another build ID).
        module("impostor", exe, [5; 16], vec![9; 20]),
        module("linux-vdso.so.1", "linux-vdso.so.1", [6; 16], vec![1; 20]),
    ];
    let file = dir.join("p.vignette");
    std::fs::write(&file, profile_over(modules).encode()).unwrap();
    let out = vignette(&[
        "symbols",
        "--profile",
        file.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for name in [
        "passwd",
        "environ",
        "mem",
        "null",
        "impostor",
        "linux-vdso.so.1",
    ] {
        assert!(
            stderr.contains(&format!("skipping {name}:")),
            "{name} not skipped: {stderr}"
        );
    }
    assert!(stderr.contains("another build ID"), "{stderr}");
    // Nothing was written into the store.
    let written: Vec<_> = walk(&store);
    assert!(written.is_empty(), "wrote {written:?}");
}

#[test]
fn modules_without_paths_are_found_by_file_name_and_build_id() {
    use vignette::tools::store::{elf_build_id, local_file_of};
    let libc = Path::new("/lib/x86_64-linux-gnu/libc.so.6");
    let libc_id = elf_build_id(libc).unwrap();
    let found = local_file_of(&module("libc.so.6", "", [1; 16], libc_id.clone()), &[]).unwrap();
    assert_eq!(elf_build_id(&found).unwrap(), libc_id, "{found:?}");
    // An executable is found in the system's program folders.
    let ls_id = elf_build_id(Path::new("/usr/bin/ls")).unwrap();
    let found = local_file_of(&module("ls", "", [3; 16], ls_id.clone()), &[]).unwrap();
    assert_eq!(elf_build_id(&found).unwrap(), ls_id, "{found:?}");
    // The same name with another build ID is not that file.
    let why = local_file_of(&module("libc.so.6", "", [1; 16], vec![7; 20]), &[])
        .unwrap_err()
        .to_string();
    assert!(why.contains("another build ID"), "{why}");
    // Names are file names, never paths.
    for name in ["../../etc/passwd", "/etc/passwd", "..", ".hidden", "a/b"] {
        let why = local_file_of(&module(name, "", [1; 16], libc_id.clone()), &[])
            .unwrap_err()
            .to_string();
        assert!(why.contains("not a file name"), "{name}: {why}");
    }
    // --search folders come first; a name found nowhere says how to help.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let clones_id = elf_build_id(&fixtures.join("clones")).unwrap();
    let clones = module("clones", "", [2; 16], clones_id);
    let why = local_file_of(&clones, &[]).unwrap_err().to_string();
    assert!(why.contains("--search"), "{why}");
    assert_eq!(
        local_file_of(&clones, std::slice::from_ref(&fixtures)).unwrap(),
        fixtures.join("clones").canonicalize().unwrap()
    );
    // A folder of the module's name (`/usr/local/lib/python3.11` for `python3.11`) is passed
    // over: the advice is still --search, not "not a regular file".
    let decoy = tmp("symbols-decoy");
    std::fs::create_dir_all(decoy.join("clones")).unwrap();
    let why = local_file_of(&clones, std::slice::from_ref(&decoy))
        .unwrap_err()
        .to_string();
    assert!(why.contains("--search"), "{why}");
    assert_eq!(
        local_file_of(&clones, &[decoy, fixtures.clone()]).unwrap(),
        fixtures.join("clones").canonicalize().unwrap()
    );
    // The CLI: `symbols --profile P --search DIR` writes the module's symbols.
    let dir = tmp("symbols-by-name");
    let file = dir.join("p.vignette");
    std::fs::write(&file, profile_over(vec![clones]).encode()).unwrap();
    let store = dir.join("store");
    let out = vignette(&[
        "symbols",
        "--profile",
        file.to_str().unwrap(),
        "--search",
        fixtures.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(walk(&store).len(), 1, "{:?}", walk(&store));
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let p = e.path();
            if p.is_dir() {
                walk(&p)
            } else {
                vec![p]
            }
        })
        .collect()
}

#[test]
fn damaged_stack_trees_and_absurd_depths_are_refused() {
    let dir = tmp("hostile-trees");
    // A resolved profile whose stack tree has a cycle (a node its own parent).
    let mut p = profile_over(vec![module("a", "/a", [1; 16], vec![])]);
    p.stacks[0].parent = 1;
    let resolved = ResolvedProfile {
        frames: vec![vec![vignette::tools::Location {
            function: "f".into(),
            file: None,
            line: 0,
        }]],
        missing: Vec::new(),
        profile: p,
    };
    let cyclic = dir.join("cyclic.vignette");
    std::fs::write(&cyclic, resolved.encode()).unwrap();
    // A plain profile with a 30 000-deep stack while max_frames says 128.
    let mut deep = profile_over(vec![module("a", "/a", [1; 16], vec![])]);
    deep.stacks = (0..30_000)
        .map(|i| StackNode {
            parent: i,
            frame: 0,
        })
        .collect();
    deep.threads[0].samples = vec![
        Sample {
            dt_us: 1,
            stack: 29_999,
            weight: 1,
            end: EndReason::Root,
            labels: 0,
        };
        30_000
    ];
    let deep_file = dir.join("deep.vignette");
    std::fs::write(&deep_file, deep.encode()).unwrap();
    for (file, why) in [
        (&cyclic, "parent does not precede"),
        (&deep_file, "deeper than the profile's max_frames"),
    ] {
        for to in ["collapsed", "speedscope"] {
            let out_file = dir.join(format!("out.{to}"));
            let started = std::time::Instant::now();
            let out = vignette(&[
                "convert",
                file.to_str().unwrap(),
                "--to",
                to,
                "-o",
                out_file.to_str().unwrap(),
            ]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{file:?} {to}: {stderr}");
            assert!(stderr.contains(why), "{file:?}: {stderr}");
            eprintln!("{file:?} -> {to}: refused in {:?}", started.elapsed());
        }
    }
}

#[test]
fn a_bad_symbol_file_costs_its_module_only() {
    let dir = tmp("hostile-sym");
    let store = dir.join("store");
    let ids = [[0x11; 16], [0x22; 16], [0x33; 16], [0x44; 16]];
    let names = ["good", "garbage", "wrongid", "truncated"];
    let contents = [
        sym("good", &hex(&ids[0]), "good_function"),
        "\u{1b}[31mnot a symbol file at all".to_string(),
        sym("wrongid", &hex(&ids[0]), "wrong_function"),
        "MODULE Linux x86_64".to_string(),
    ];
    for ((name, id), text) in names.iter().zip(&ids).zip(&contents) {
        let p = store.join(name).join(hex(id)).join(format!("{name}.sym"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
    }
    let modules = names
        .iter()
        .zip(ids)
        .map(|(n, id)| module(n, &format!("/x/{n}"), id, vec![]))
        .collect();
    let file = dir.join("p.vignette");
    std::fs::write(&file, profile_over(modules).encode()).unwrap();
    let out = vignette(&[
        "report",
        file.to_str().unwrap(),
        "--symbols",
        store.to_str().unwrap(),
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("good_function"), "{stdout}");
    for name in ["garbage", "wrongid", "truncated"] {
        assert!(
            stderr.contains(&format!("warning: no symbols for {name}")),
            "{name}: {stderr}"
        );
    }
    assert!(!stdout.contains("wrong_function"));
    assert!(
        !stderr.contains('\u{1b}'),
        "an escape sequence from a file reached the terminal: {stderr:?}"
    );
}

#[test]
fn control_characters_in_names_are_escaped_in_every_output() {
    let dir = tmp("hostile-names");
    let mut p = profile_over(vec![
        module("nul\u{0}here", "/x/nul", [1; 16], vec![]),
        module("esc\u{1b}[2Jhere", "/x/esc\u{1b}[2J", [2; 16], vec![]),
    ]);
    p.threads[0].name = "evil\nroot;fake 99".into();
    let file = dir.join("p.vignette");
    std::fs::write(&file, p.encode()).unwrap();
    let collapsed = dir.join("out.txt");
    let out = vignette(&[
        "convert",
        file.to_str().unwrap(),
        "--to",
        "collapsed",
        "-o",
        collapsed.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let text = std::fs::read_to_string(&collapsed).unwrap();
    // One line per stack (two), each "frames count", no control character anywhere.
    assert_eq!(text.lines().count(), 2, "{text:?}");
    for line in text.lines() {
        let (stack, count) = line.rsplit_once(' ').unwrap();
        assert_eq!(count, "1", "{line:?}");
        assert_eq!(
            stack.split(';').count(),
            2,
            "thread and one frame: {line:?}"
        );
    }
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "{text:?}"
    );
    let svg = dir.join("out.svg");
    let out = vignette(&[
        "convert",
        file.to_str().unwrap(),
        "--to",
        "svg",
        "-o",
        svg.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let svg = std::fs::read(&svg).unwrap();
    assert!(
        !svg.iter()
            .any(|&b| b < 0x20 && b != b'\n' && b != b'\t' && b != b'\r'),
        "the SVG holds characters XML forbids"
    );
    for command in ["info", "report"] {
        let out = vignette(&[command, file.to_str().unwrap()]);
        assert!(out.status.success());
        let all = [out.stdout, out.stderr].concat();
        assert!(
            !all.iter().any(|&b| b == 0x1b || b == 0),
            "{command}: {:?}",
            String::from_utf8_lossy(&all)
        );
    }
}

#[test]
fn malformed_elf_files_are_errors_not_panics() {
    // symbolic's ELF and DWARF readers panic on some damaged files; vignette turns that into an
    // error naming the file. Mutate a real library many ways (a fixed seed) and read each.
    vignette::tools::quiet_guarded_panics();
    let original = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/libcallback-debug.so"
    ))
    .unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut ok, mut refused, mut guarded) = (0, 0, 0);
    for _ in 0..600 {
        let mut data = original.clone();
        for _ in 0..1 + next() % 8 {
            let at = (next() % data.len() as u64) as usize;
            data[at] = next() as u8;
        }
        match vignette::tools::sym_writer::sym_for_elf(&data, "m.so", "mutated.so") {
            Ok(_) => ok += 1,
            Err(e) if e.to_string().contains("the ELF reader failed") => guarded += 1,
            Err(_) => refused += 1,
        }
    }
    eprintln!("{ok} read, {refused} refused, {guarded} reader panics turned into errors");
    assert!(ok > 0 && ok + refused + guarded == 600);
    let e = vignette::tools::guard("x.so", || -> Result<(), _> {
        panic!("index 9 out of range")
    })
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("x.so") && e.contains("index 9 out of range"),
        "{e}"
    );
}

#[test]
fn no_command_touches_a_path_a_profile_names() {
    // Every file-system call of every command, traced by strace (`.ci/run` installs it): none
    // may name a path the profile's module names or paths point at.
    assert!(
        Command::new("strace").arg("-V").output().is_ok(),
        "strace is needed (apt-get install strace)"
    );
    let dir = tmp("hostile-strace");
    let store = dir.join("store");
    std::fs::create_dir_all(&store).unwrap();
    let bait = dir.join("bait");
    std::fs::create_dir_all(&bait).unwrap();
    let bait_str = bait.to_str().unwrap();
    let modules = vec![
        module(
            &format!("{bait_str}/abs"),
            &format!("{bait_str}/abs"),
            [1; 16],
            vec![1; 20],
        ),
        module(
            "../bait/rel",
            &format!("{bait_str}/rel"),
            [2; 16],
            vec![2; 20],
        ),
        module("passwd", "/etc/passwd", [3; 16], vec![3; 20]),
        module("envmod", "/proc/self/environ", [4; 16], vec![4; 20]),
    ];
    let file = dir.join("p.vignette");
    std::fs::write(&file, profile_over(modules).encode()).unwrap();
    let (p, s) = (file.to_str().unwrap(), store.to_str().unwrap());
    let out = dir.join("out.json");
    let o = out.to_str().unwrap();
    let dataset = format!("{o}.dataset");
    let commands: Vec<Vec<&str>> = vec![
        vec!["export", p, "-o", &dataset, "--symbols", s],
        vec!["info", p],
        vec!["report", p, "--symbols", s],
        vec!["resolve", p, "--symbols", s],
        vec!["convert", p, "--to", "speedscope", "-o", o, "--symbols", s],
        vec!["symbols", "--profile", p, "--store", s],
    ];
    for args in commands {
        let log = dir.join("trace.log");
        let status = Command::new("strace")
            .args(["-f", "-qq", "-e", "trace=%file", "-o"])
            .arg(&log)
            .arg(env!("CARGO_BIN_EXE_vignette"))
            .args(&args)
            .output()
            .unwrap();
        assert!(status.status.success(), "{args:?}: {:?}", status);
        let trace = std::fs::read_to_string(&log).unwrap();
        // `symbols --profile` may open a module's recorded path when it is a regular file,
        // to read its ELF header and compare build IDs (/etc/passwd here: 64 bytes, refused);
        // no other command touches any path a profile names.
        let header_check = args[0] == "symbols";
        let touched: Vec<&str> = trace
            .lines()
            .filter(|l| {
                l.contains("bait")
                    || l.contains("environ")
                    || (l.contains("/etc/passwd") && !header_check)
            })
            .collect();
        assert!(touched.is_empty(), "{args:?} touched {touched:#?}");
        // Nothing is written outside the store and the named output.
        let written: Vec<&str> = trace
            .lines()
            .filter(|l| l.contains("openat(") && (l.contains("O_WRONLY") || l.contains("O_RDWR")))
            .filter(|l| !l.contains(s) && !l.contains(o) && !l.contains("/dev/"))
            .collect();
        assert!(written.is_empty(), "{args:?} wrote {written:#?}");
        assert!(
            trace.contains(p),
            "the trace is real: {args:?} opened its profile"
        );
    }
}

#[test]
fn an_empty_profile_converts_to_every_format() {
    // Written where `.ci/run` checks them with the real clients (speedscope, go tool pprof).
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("empty-profile");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut p = profile_over(Vec::new());
    p.threads[0].samples.clear();
    let file = dir.join("empty.vignette");
    std::fs::write(&file, p.encode()).unwrap();
    for (to, name) in [
        ("speedscope", "empty.speedscope.json"),
        ("svg", "empty.svg"),
        ("collapsed", "empty.collapsed"),
        ("firefox", "empty.firefox.json"),
        ("pprof", "empty.pb.gz"),
        ("pprof-unresolved", "empty.unresolved.pb.gz"),
        ("otlp", "empty.otlp"),
    ] {
        let out = dir.join(name);
        let o = vignette(&[
            "convert",
            file.to_str().unwrap(),
            "--to",
            to,
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(
            o.status.success(),
            "{to}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(out.exists(), "{to}");
    }
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("empty.speedscope.json")).unwrap()).unwrap();
    assert_eq!(doc["profiles"].as_array().unwrap().len(), 1);
    let svg = std::fs::read_to_string(dir.join("empty.svg")).unwrap();
    assert!(svg.starts_with("<?xml") && svg.contains("no samples") && svg.ends_with("</svg>\n"));
}

#[test]
fn report_reads_a_resolved_profile_without_symbols() {
    let dir = tmp("resolved-report");
    let store = dir.join("store");
    let id = [0x55; 16];
    let sym_path = store.join("lib.so").join(hex(&id)).join("lib.so.sym");
    std::fs::create_dir_all(sym_path.parent().unwrap()).unwrap();
    std::fs::write(&sym_path, sym("lib.so", &hex(&id), "resolved_function")).unwrap();
    let file = dir.join("p.vignette");
    std::fs::write(
        &file,
        profile_over(vec![module("lib.so", "/x/lib.so", id, vec![])]).encode(),
    )
    .unwrap();
    let resolved = dir.join("r.vignette");
    let o = vignette(&[
        "resolve",
        file.to_str().unwrap(),
        "--symbols",
        store.to_str().unwrap(),
        "-o",
        resolved.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    std::fs::remove_dir_all(&store).unwrap();
    let o = vignette(&["report", resolved.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(stdout.contains("resolved_function"), "{stdout}");
}

#[test]
fn symbols_takes_several_stores_after_one_flag() {
    let dir = tmp("several-stores");
    let ids = [[0x61; 16], [0x62; 16]];
    let mut stores = Vec::new();
    for (i, (name, id)) in ["one.so", "two.so"].iter().zip(ids).enumerate() {
        let store = dir.join(format!("store{i}"));
        let p = store.join(name).join(hex(&id)).join(format!("{name}.sym"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, sym(name, &hex(&id), &format!("function_of_{i}"))).unwrap();
        stores.push(store.to_str().unwrap().to_string());
    }
    let modules = vec![
        module("one.so", "/x/one.so", ids[0], vec![]),
        module("two.so", "/x/two.so", ids[1], vec![]),
    ];
    let file = dir.join("p.vignette");
    std::fs::write(&file, profile_over(modules).encode()).unwrap();
    let o = vignette(&[
        "report",
        file.to_str().unwrap(),
        "--symbols",
        &stores[0],
        &stores[1],
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout.contains("function_of_0") && stdout.contains("function_of_1"),
        "{stdout}"
    );
}

#[test]
fn errors_say_their_kind_and_file() {
    use vignette::tools::{read_profile, ErrorKind};
    let missing = Path::new("/nonexistent/p.vignette");
    let e = read_profile(missing).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(e.path(), Some(missing));
    assert!(std::error::Error::source(&e).is_some());
    let dir = tmp("error-kinds");
    let garbage = dir.join("garbage.vignette");
    std::fs::write(&garbage, b"VIGNETTE\x03\x00garbage").unwrap();
    let e = read_profile(&garbage).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Profile);
    assert_eq!(e.path(), Some(garbage.as_path()));
    assert!(e.to_string().contains("garbage.vignette"), "{e}");
}

#[test]
fn a_compressed_section_claiming_terabytes_is_refused() {
    // Found by the elf_symbols fuzz target: the ELF reader allocates a compressed section's
    // stated size up front, so a crafted header made it ask for terabytes and abort.
    let mut data = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/libcallback-debug.so"
    ))
    .unwrap();
    let u = |d: &[u8], at: usize, n: usize| {
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&d[at..at + n]);
        u64::from_le_bytes(b) as usize
    };
    let (shoff, shentsize, shnum, shstrndx) = (
        u(&data, 0x28, 8),
        u(&data, 0x3a, 2),
        u(&data, 0x3c, 2),
        u(&data, 0x3e, 2),
    );
    let names = u(&data, shoff + shstrndx * shentsize + 24, 8);
    let line = (0..shnum)
        .map(|i| shoff + i * shentsize)
        .find(|&h| {
            let name = names + u(&data, h, 4);
            data[name..].starts_with(b".debug_line\0")
        })
        .expect("the fixture has .debug_line");
    // SHF_COMPRESSED, and an Elf64_Chdr: zstd, 1 TiB.
    let flags = u(&data, line + 8, 8) | 0x800;
    data[line + 8..line + 16].copy_from_slice(&(flags as u64).to_le_bytes());
    let offset = u(&data, line + 24, 8);
    data[offset..offset + 4].copy_from_slice(&2u32.to_le_bytes());
    data[offset + 8..offset + 16].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let e = vignette::tools::sym_writer::sym_for_elf(&data, "m.so", "crafted.so").unwrap_err();
    assert!(e.to_string().contains("claims 1099511627776 bytes"), "{e}");
}

#[test]
fn resolve_says_why_each_module_has_no_symbols() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let reference = std::fs::read_to_string(fixtures.join("clones.dump_syms.sym")).unwrap();
    let id = reference.lines().next().unwrap().split(' ').nth(3).unwrap();
    let mut debug_id = [0u8; 16];
    for (i, b) in debug_id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&id[2 * i..2 * i + 2], 16).unwrap();
    }
    let main = reference.lines().find(|l| l.ends_with(" main")).unwrap();
    let main = u64::from_str_radix(main.split(' ').nth(1).unwrap(), 16).unwrap();
    let mut p = profile_over(vec![
        module("clones", "", debug_id, vec![]),
        module("libgone.so", "", [7; 16], vec![]),
    ]);
    p.frames[0].address = main + 4;
    let dir = tmp("resolve-why");
    let file = dir.join("p.vignette");
    std::fs::write(&file, p.encode()).unwrap();
    let stripped = dir.join("clones");
    let strip = std::process::Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(fixtures.join("clones"))
        .status()
        .unwrap();
    assert!(strip.success());
    let file = file.to_str().unwrap();

    // The stripped binary: its symbols name nothing, and the warning says so.
    let out = vignette(&["resolve", file, "--symbols", stripped.to_str().unwrap()]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("0 of 2 frames resolved"), "{stdout}");
    assert!(
        stderr.contains("no symbols for clones") && stderr.contains("names none of its 1 frames"),
        "{stderr}"
    );
    assert!(stderr.contains("made from a stripped binary?"), "{stderr}");
    assert!(
        stderr.contains("no symbols for libgone.so")
            && stderr.contains("none in the symbols given"),
        "{stderr}"
    );

    // The unstripped one resolves; the resolved profile still names what is missing.
    let resolved = dir.join("r.vignette");
    let unstripped = fixtures.join("clones");
    let out = vignette(&[
        "resolve",
        file,
        "--symbols",
        unstripped.to_str().unwrap(),
        "-o",
        resolved.to_str().unwrap(),
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(stdout.contains("1 of 2 frames resolved"), "{stdout}");
    assert!(!stderr.contains("no symbols for clones"), "{stderr}");
    let out = vignette(&["report", resolved.to_str().unwrap()]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(stdout.contains(" main"), "{stdout}");
    assert!(stderr.contains("no symbols for libgone.so"), "{stderr}");
}

/// A library the profile knows by its soname (`libver.so.1`), found as a symlink to the
/// versioned file, is stored under the soname (so `resolve` finds it), and once only.
#[test]
fn a_versioned_library_is_stored_under_the_name_the_profile_uses() {
    use vignette::tools::store::elf_build_id;
    let dir = tmp("symbols-soname");
    let lib = dir.join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/libcallback-debug.so");
    std::fs::copy(&fixture, lib.join("libver.so.1.2.3")).unwrap();
    std::os::unix::fs::symlink("libver.so.1.2.3", lib.join("libver.so.1")).unwrap();
    let build_id = elf_build_id(&fixture).unwrap();
    // Breakpad's debug id: the build ID's first 16 bytes, the GUID's first three fields swapped.
    let mut debug_id: [u8; 16] = build_id[..16].try_into().unwrap();
    debug_id[..4].reverse();
    debug_id[4..6].reverse();
    debug_id[6..8].reverse();
    let file = dir.join("p.vignette");
    let m = module("libver.so.1", "", debug_id, build_id);
    std::fs::write(&file, profile_over(vec![m]).encode()).unwrap();
    let store = dir.join("store");
    let args = [
        "symbols",
        "--profile",
        file.to_str().unwrap(),
        "--search",
        lib.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ];
    let out = vignette(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = walk(&store);
    assert_eq!(written.len(), 1, "{written:?}");
    let sym = &written[0];
    assert!(sym.ends_with("libver.so.1.sym"), "{sym:?}");
    assert_eq!(
        sym.parent().unwrap().parent().unwrap().file_name().unwrap(),
        "libver.so.1"
    );
    let text = std::fs::read_to_string(sym).unwrap();
    assert!(
        text.lines().next().unwrap().ends_with(" libver.so.1"),
        "{}",
        text.lines().next().unwrap()
    );
    // Again: nothing rewritten.
    let modified = std::fs::metadata(sym).unwrap().modified().unwrap();
    assert!(vignette(&args).status.success());
    assert_eq!(
        std::fs::metadata(sym).unwrap().modified().unwrap(),
        modified
    );
}
