//! Real, unmodified Debian programs profiled through a library injected with `LD_PRELOAD`
//! (`tests/c/shim.c`: start at load, write the profile at exit) behave exactly as without it:
//! the same output, the same exit status. Each also leaves a profile with samples.
#![cfg(all(
    target_os = "linux",
    target_arch = "x86_64",
    feature = "ffi",
    feature = "tools"
))]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The shim: `tests/c/shim.c` linked with the static C library into a shared object.
fn shim() -> PathBuf {
    let root = env!("CARGO_MANIFEST_DIR");
    let so = Path::new(env!("CARGO_TARGET_TMPDIR")).join("libvignette-shim.so");
    let out = Command::new("gcc")
        .args([
            "-O1",
            "-shared",
            "-fPIC",
            "-pthread",
            &format!("-I{root}/include"),
        ])
        .arg(format!("{root}/tests/c/shim.c"))
        .arg("-Wl,--whole-archive")
        .arg(common::c_library().join("libvignette.a"))
        .args(["-Wl,--no-whole-archive", "-ldl", "-lm", "-o"])
        .arg(&so)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    so
}

/// Runs `cmd` in `dir` with `stdin`, with the shim writing to `out` when given.
fn run(dir: &Path, cmd: &[&str], stdin: &[u8], shim: Option<(&Path, &Path)>) -> Output {
    use std::io::Write;
    let mut c = Command::new(cmd[0]);
    c.args(&cmd[1..])
        .current_dir(dir)
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some((so, out)) = shim {
        c.env("LD_PRELOAD", so).env("VIGNETTE_SHIM_OUT", out);
    }
    let mut child = c.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    output
}

/// Text for the programs to chew on: lines of pseudo-random words.
fn text(lines: usize) -> Vec<u8> {
    let mut x = 0x9e3779b97f4a7c15u64;
    let mut s = String::new();
    for i in 0..lines {
        for _ in 0..8 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s.push_str(&format!("{:x} ", x % 100_000));
        }
        s.push_str(&format!("{i}\n"));
    }
    s.into_bytes()
}

#[test]
fn real_programs_behave_as_without_vignette() {
    let so = shim();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("real-programs");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let input = text(200_000);
    let small = text(40_000);
    std::fs::write(dir.join("input.txt"), &input).unwrap();
    std::fs::write(
        dir.join("prog.c"),
        "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n",
    )
    .unwrap();
    let python = "import hashlib, json\nd = {}\nfor i in range(300000):\n    d[str(i)] = \
                  hashlib.sha256(str(i).encode()).hexdigest()[:8]\nprint(len(json.dumps(d)))\n";
    let cases: &[(&str, &[&str], &[u8])] = &[
        // sort catches SIGPROF and others to remove its temporary files; -S forces them.
        ("sort", &["sort", "-S", "1M", "-k2", "input.txt"], b""),
        ("xz", &["xz", "-6", "-c"], &small),
        ("python3", &["python3", "-c", python], b""),
        // gcc runs cc1, as and collect2/ld as children: each profiled too.
        ("gcc", &["gcc", "-O2", "prog.c", "-o", "/dev/null"], b""),
    ];
    for (name, cmd, stdin) in cases {
        let plain = run(&dir, cmd, stdin, None);
        let out = dir.join(format!("{name}.vignette"));
        let profiled = run(&dir, cmd, stdin, Some((&so, &out)));
        assert_eq!(
            profiled.status.code(),
            plain.status.code(),
            "{name}: exit status"
        );
        assert!(
            plain.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&plain.stderr)
        );
        assert!(profiled.stdout == plain.stdout, "{name}: stdout differs");
        assert_eq!(
            String::from_utf8_lossy(&profiled.stderr),
            String::from_utf8_lossy(&plain.stderr),
            "{name}: stderr"
        );
        // The program's own profile (its pid's), and for gcc its children's.
        let prefix = format!("{name}.vignette.");
        let profiles: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with(&prefix)
            })
            .collect();
        assert!(!profiles.is_empty(), "{name}: no profile written");
        let samples: usize = profiles
            .iter()
            .map(|p| vignette::tools::read_profile(p).unwrap().sample_count())
            .sum();
        eprintln!("{name}: {} profiles, {samples} samples", profiles.len());
        assert!(samples > 0, "{name}: no samples");
    }
}

/// `tools/preload` (what `vignette record` injects), built for the tests.
fn preload_library() -> PathBuf {
    let root = env!("CARGO_MANIFEST_DIR");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("preload-target");
    let status = Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "vignette-preload", "--manifest-path"])
        .arg(format!("{root}/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .unwrap();
    assert!(status.success(), "building the preload library");
    target.join("debug/libvignette_preload.so")
}

/// `vignette record -- sh -c …`: the shell, its pipeline's programs and a Python that forks a
/// child which exits normally all behave as without it (same output, same exit status); every
/// process that ran a program leaves its own profile, the forked child none.
#[test]
fn vignette_record_profiles_a_program_and_every_program_it_starts() {
    let lib = preload_library();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("record");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("input.txt"), text(20_000)).unwrap();
    let python = "import os, sys\npid = os.fork()\nif pid == 0:\n    sys.exit(0)\n\
                  os.waitpid(pid, 0)\nprint(sum(i * i for i in range(2000000)))\n";
    let script =
        format!("sort -k2 input.txt | xz -1 -c | xz -d -c | md5sum; python3 -c '{python}'; exit 7");
    let shell = ["sh", "-c", script.as_str()];
    let plain = run(&dir, &shell, b"", None);
    assert_eq!(plain.status.code(), Some(7));
    let (vignette, out) = (env!("CARGO_BIN_EXE_vignette"), dir.join("profiles"));
    let mut record = vec![
        vignette,
        "record",
        "-o",
        out.to_str().unwrap(),
        "--lib",
        lib.to_str().unwrap(),
        "--",
    ];
    record.extend(shell);
    let recorded = run(&dir, &record, b"", None);
    let stderr = String::from_utf8_lossy(&recorded.stderr);
    assert_eq!(recorded.status.code(), Some(7), "{stderr}");
    assert!(recorded.stdout == plain.stdout, "stdout differs");
    assert!(plain.stderr.is_empty());
    assert!(stderr.starts_with("vignette record: "), "{stderr}");
    let mut by_program: Vec<(String, usize)> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let p = vignette::Profile::decode(&std::fs::read(&path).unwrap()).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (
                name.rsplit_once('-').unwrap().0.to_string(),
                p.sample_count(),
            )
        })
        .collect();
    by_program.sort();
    let programs: Vec<&str> = by_program.iter().map(|(p, _)| p.as_str()).collect();
    eprintln!("{by_program:?}");
    for program in ["sort", "md5sum"] {
        assert_eq!(
            programs.iter().filter(|p| **p == program).count(),
            1,
            "{program}: {programs:?}"
        );
    }
    assert_eq!(programs.iter().filter(|p| **p == "xz").count(), 2);
    // One Python profile: the forked child, which exited normally, wrote none.
    let pythons: Vec<_> = by_program
        .iter()
        .filter(|(p, _)| p.starts_with("python3"))
        .collect();
    assert_eq!(pythons.len(), 1, "{programs:?}");
    assert!(pythons[0].1 > 0, "python3 has samples");
}

/// `vignette record -- node --perf-basic-prof …`: the JavaScript function that takes the time
/// is named in the profile, from the perf map Node writes (`/tmp/perf-<pid>.map`), and keeps
/// its name on a machine without that map (the map is removed before resolving).
#[test]
fn node_jit_frames_are_named_from_its_perf_map() {
    assert!(
        Command::new("node").arg("--version").output().is_ok(),
        "node is needed (apt-get install nodejs)"
    );
    let lib = preload_library();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("record-node");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("profiles");
    // Busy for 0.6 s of its own CPU time, however busy the machine is.
    let script = "function hotLoop(n){let s=0;for(let i=0;i<n;i++){s=(s*31+i)%1000003}return s}\
                  let t=0;while(process.cpuUsage().user<600000){t+=hotLoop(100000)}\
                  console.log(t>0)";
    let record = [
        env!("CARGO_BIN_EXE_vignette"),
        "record",
        "-o",
        out.to_str().unwrap(),
        "--lib",
        lib.to_str().unwrap(),
        "--",
        "node",
        "--perf-basic-prof",
        "-e",
        script,
    ];
    let recorded = run(&dir, &record, b"", None);
    assert!(
        recorded.status.success(),
        "{}",
        String::from_utf8_lossy(&recorded.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&recorded.stdout), "true\n");
    let file = std::fs::read_dir(&out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let p = vignette::tools::read_profile(&file).unwrap();
    let _ = std::fs::remove_file(format!("/tmp/perf-{}.map", p.pid));
    assert!(!p.jit.is_empty(), "no JIT names in the profile");
    let res = vignette::tools::resolve(&p, &mut vignette::tools::SymbolStore::new(&[])).unwrap();
    // The samples whose innermost frame is hotLoop's JIT code: most of them.
    let (mut hot, mut all) = (0u64, 0u64);
    for s in p.threads.iter().flat_map(|t| &t.samples) {
        all += s.weight as u64;
        let leaf = p.stacks[s.stack as usize].frame as usize;
        if res.frames[leaf]
            .iter()
            .any(|l| l.function.contains("hotLoop"))
        {
            hot += s.weight as u64;
        }
    }
    eprintln!("hotLoop: {hot} of {all}, {} JIT names", p.jit.len());
    assert!(hot * 2 > all, "hotLoop: {hot} of {all}");
}
