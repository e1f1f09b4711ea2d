//! vignette inside C and C++ programs at the moments a library meets there: calls made while
//! the process exits (an `atexit` handler, a C++ static destructor). Each program checks every
//! call's status and message itself; here its exit status, its (fully buffered) stdout and the
//! profile it wrote are checked.
#![cfg(all(target_os = "linux", feature = "ffi", feature = "tools"))]

mod common;

use std::path::Path;
use std::process::Command;

/// Runs `exe PROFILE`, checks it exited 0 with all 200 lines of its buffered output and
/// `last_line` after them, and that the profile it wrote at exit has samples.
fn runs_to_the_end(exe: &Path, last_line: &str) {
    let profile = exe.with_extension("vignette");
    let _ = std::fs::remove_file(&profile);
    let run = Command::new(exe).arg(&profile).output().unwrap();
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{:?}: {out}{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 201, "{out}");
    assert_eq!(lines[199], "line 199");
    assert_eq!(lines[200], last_line);
    let p = vignette::tools::read_profile(&profile).unwrap();
    let samples: usize = p.threads.iter().map(|t| t.samples.len()).sum();
    assert!(samples > 0, "the profile written at exit has samples");
    if exe.ends_with("at_exit") {
        assert_eq!(p.metadata, [("app".to_string(), "at_exit".to_string())]);
    }
}

#[test]
fn every_call_works_from_an_atexit_handler() {
    let exe = common::c_program("gcc", "at_exit", &["tests/c/at_exit.c"]);
    runs_to_the_end(&exe, "stopped, wrote and destroyed at exit");
}

#[test]
fn every_call_works_from_a_static_destructor() {
    let exe = common::c_program("g++", "static_dtor", &["tests/c/static_dtor.cpp"]);
    runs_to_the_end(&exe, "stopped, wrote and destroyed in a static destructor");
}

/// The profiler the Rust child stops at exit.
static AT_EXIT: std::sync::Mutex<Option<(vignette::Profiler, std::path::PathBuf)>> =
    std::sync::Mutex::new(None);

/// Stops the profiler in [`AT_EXIT`] and writes its profile: from an `atexit` handler, or a
/// thread-local's destructor.
fn stop_and_write() {
    let (mut profiler, path) = AT_EXIT.lock().unwrap().take().expect("a profiler to stop");
    let capture = profiler.stop().expect("stop");
    let file = std::fs::File::create(&path).unwrap();
    capture.write_to(std::io::BufWriter::new(file)).unwrap();
    drop(profiler);
    // Labels too: the thread's thread-locals may be gone.
    drop(vignette::labels::set(
        vignette::labels::LabelKey::new("phase"),
        1i64,
    ));
}

extern "C" fn stop_at_exit() {
    stop_and_write();
    println!("rust: stopped and wrote at exit");
}

/// Run as a child (`VIGNETTE_HOST_CHILD` names what to do): starts a profiler, burns CPU, and
/// leaves stopping it to an `atexit` handler or a thread-local destructor.
#[test]
fn rust_child() {
    let Ok(how) = std::env::var("VIGNETTE_HOST_CHILD") else {
        return;
    };
    let path = std::path::PathBuf::from(std::env::var("VIGNETTE_HOST_PROFILE").unwrap());
    let mut profiler = vignette::Profiler::builder()
        .frequency(1000)
        .build()
        .unwrap();
    profiler.start().unwrap();
    *AT_EXIT.lock().unwrap() = Some((profiler, path));
    let start = common::workload::thread_cpu_ns();
    let mut sink = 0;
    while common::workload::thread_cpu_ns() - start < 50_000_000 {
        sink ^= common::workload::mix_hash(sink, 10_000);
    }
    std::hint::black_box(sink);
    match how.as_str() {
        "atexit" => {
            // SAFETY: registers a handler that lives for the whole program.
            unsafe { libc::atexit(stop_at_exit) };
        }
        "tls" => std::thread::spawn(|| {
            struct StopOnDrop;
            impl Drop for StopOnDrop {
                fn drop(&mut self) {
                    stop_and_write();
                    println!("rust: stopped and wrote in a thread-local destructor");
                }
            }
            thread_local! { static STOP: StopOnDrop = const { StopOnDrop }; }
            // A second thread-local, destroyed first or after: either way STOP's runs late.
            STOP.with(|_| {});
        })
        .join()
        .unwrap(),
        other => panic!("unknown child {other}"),
    }
}

/// Runs [`rust_child`] in a child process doing `how`; checks it said `said` and wrote a
/// profile with samples.
fn rust_child_stops(how: &str, said: &str) {
    let profile = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("rust-{how}.vignette"));
    let _ = std::fs::remove_file(&profile);
    let run = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "rust_child", "--nocapture", "--test-threads=1"])
        .env("VIGNETTE_HOST_CHILD", how)
        .env("VIGNETTE_HOST_PROFILE", &profile)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success() && out.contains(said),
        "{:?}: {out}{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    let p = vignette::tools::read_profile(&profile).unwrap();
    assert!(p.threads.iter().any(|t| !t.samples.is_empty()));
}

#[test]
fn the_rust_api_works_from_an_atexit_handler() {
    rust_child_stops("atexit", "rust: stopped and wrote at exit");
}

#[test]
fn the_rust_api_works_from_a_thread_local_destructor() {
    rust_child_stops(
        "tls",
        "rust: stopped and wrote in a thread-local destructor",
    );
}

#[test]
fn a_program_that_takes_signals_after_start_runs_as_without_vignette() {
    let exe = common::c_program("gcc", "late_handler", &["tests/c/late_handler.c"]);
    let profile = exe.with_extension("vignette");
    let run = Command::new(&exe).arg(&profile).output().unwrap();
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{:?}: {out}{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(out.lines().filter(|l| l.starts_with("line ")).count(), 200);
    eprintln!("{}", out.lines().last().unwrap());
    let p = vignette::tools::read_profile(&profile).unwrap();
    assert!(p.lost.signal_taken > 0, "{:?}", p.lost);
    assert!(p.threads.iter().any(|t| !t.samples.is_empty()));
}

/// Stacks through glibc's lazy-binding trampoline walk to the root: its CFA is kept in rbx,
/// which the frames below it restore only through their full CFI.
#[test]
fn stacks_through_the_lazy_binding_trampoline_reach_the_root() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let root = env!("CARGO_MANIFEST_DIR");
    let lib = dir.join("liblazy_lib.so");
    let built = Command::new("gcc")
        .args(["-O1", "-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(format!("{root}/tests/c/lazy_lib.c"))
        .status()
        .unwrap();
    assert!(built.success());
    let exe = common::c_program_with(
        "gcc",
        "lazy",
        &["tests/c/lazy.c"],
        &[
            "-Wl,-z,lazy".into(),
            format!("-L{}", dir.display()),
            "-llazy_lib".into(),
            format!("-Wl,-rpath,{}", dir.display()),
        ],
    );
    let profile = dir.join("lazy.vignette");
    let run = Command::new(&exe)
        .arg(&profile)
        .env("LD_BIND_NOT", "1")
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let p = vignette::tools::read_profile(&profile).unwrap();
    let samples: Vec<_> = p.threads.iter().flat_map(|t| &t.samples).collect();
    let ld = p
        .modules
        .iter()
        .position(|m| m.name.starts_with("ld-linux"))
        .unwrap() as u32
        + 1;
    let through = samples
        .iter()
        .filter(|s| p.stack_frames(s.stack).skip(1).any(|f| f.module == ld))
        .count();
    let short = samples
        .iter()
        .filter(|s| s.end != vignette::EndReason::Root)
        .count();
    eprintln!(
        "{} samples, {through} through the loader, {short} not to the root",
        samples.len()
    );
    assert!(
        through * 10 >= samples.len(),
        "calls go through the trampoline: {through}"
    );
    assert!(
        short * 100 <= samples.len(),
        "{short} of {} stacks end early",
        samples.len()
    );
}

/// A main program whose segments the loader maps apart (non-PIE, 2 MiB segment alignment, as
/// Node's executable is laid out) has its frames attributed to it: glibc's `_dl_find_object`
/// reports such a program per segment, and the handler's loader check took a segment's end
/// for another object's (every frame of Node's own code was a bare address).
#[test]
fn frames_of_a_main_program_mapped_in_pieces_are_its_own() {
    let exe = common::c_program_with(
        "gcc",
        "gapped",
        &["tests/c/spin.c"],
        &[
            "-no-pie".into(),
            "-Wl,-z,max-page-size=0x200000".into(),
            "-Wl,-z,separate-code".into(),
        ],
    );
    let profile = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gapped.vignette");
    let run = Command::new(&exe).arg(&profile).output().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let p = vignette::tools::read_profile(&profile).unwrap();
    let exe_module = p.modules.iter().position(|m| m.name == "gapped").unwrap() as u32 + 1;
    let samples: Vec<_> = p.threads.iter().flat_map(|t| &t.samples).collect();
    let leaf_in_exe = samples
        .iter()
        .filter(|s| {
            p.stack_frames(s.stack)
                .next()
                .is_some_and(|f| f.module == exe_module)
        })
        .count();
    let unattributed = samples
        .iter()
        .filter(|s| p.stack_frames(s.stack).any(|f| f.module == 0))
        .count();
    eprintln!(
        "{} samples: leaf in the executable {leaf_in_exe}, with a frame in no module \
         {unattributed}",
        samples.len()
    );
    assert!(samples.len() >= 200, "{} samples", samples.len());
    assert!(leaf_in_exe * 10 >= samples.len() * 8);
    assert_eq!(unattributed, 0);
}

/// A C program's own allocator wrapper reports to vignette: the profile's heap holds the leak
/// (32 MiB still live) and the churn (128 MiB allocated, none live), each within 10%.
#[test]
fn a_c_programs_allocator_wrapper_reports_its_heap() {
    let exe = common::c_program("gcc", "c_heap", &["tests/c/c_heap.c"]);
    let profile = exe.with_extension("vignette");
    let run = Command::new(&exe).arg(&profile).output().unwrap();
    assert!(
        run.status.success(),
        "{:?}: {}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    let p = vignette::tools::read_profile(&profile).unwrap();
    let heap = p.heap.as_ref().expect("the profile has the heap");
    let res = vignette::tools::resolve(&p, &mut vignette::tools::SymbolStore::new(&[exe])).unwrap();
    let at = |site: &str| {
        heap.sites
            .iter()
            .filter(|s| res.stack(&p, s.stack).iter().any(|l| l.function == site))
            .fold((0, 0), |(a, i), s| (a + s.alloc_bytes, i + s.inuse_bytes))
    };
    let near = |got: u64, want: u64| (got as f64 - want as f64).abs() <= want as f64 * 0.1;
    let (leak_alloc, leak_live) = at("leak_site");
    let (churn_alloc, churn_live) = at("churn_site");
    assert!(
        near(leak_alloc, 32 << 20) && near(leak_live, 32 << 20),
        "{heap:?}"
    );
    assert!(near(churn_alloc, 128 << 20) && churn_live == 0, "{heap:?}");
}
