//! Helpers shared by the integration tests.
#![allow(dead_code)]

#[path = "../../examples/common/workload.rs"]
pub mod workload;

use std::sync::Mutex;

use vignette::Profile;

/// Only one profiler may exist per process: tests that build one hold this lock.
pub static PROFILER_LOCK: Mutex<()> = Mutex::new(());

/// Takes the profiler lock even if an earlier test panicked while holding it.
pub fn profiler_lock() -> std::sync::MutexGuard<'static, ()> {
    PROFILER_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The path of a file in tests/fixtures.
pub fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The absolute address of a frame, as captured in this process.
pub fn frame_avma(p: &Profile, frame: &vignette::Frame) -> u64 {
    match frame.module {
        0 => frame.address,
        m => p.modules[m as usize - 1].base_avma + frame.address,
    }
}

/// Function names for an address in this process (inlined frames first), demangled, without
/// the trailing hash.
pub fn names_at(avma: u64) -> Vec<String> {
    let mut names = Vec::new();
    backtrace::resolve(avma as *mut std::ffi::c_void, |sym| {
        if let Some(n) = sym.name() {
            names.push(format!("{n:#}"));
        }
    });
    names
}

/// The function names of a stack, innermost first (each frame's inlined names joined by '|').
pub fn stack_names(p: &Profile, stack: u32) -> Vec<String> {
    p.stack_frames(stack)
        .map(|f| names_at(frame_avma(p, f)).join("|"))
        .collect()
}

/// Whether `names` contains `chain` as a subsequence in order (innermost first), each
/// element matched as a substring of a frame's names.
pub fn has_chain(names: &[String], chain: &[&str]) -> bool {
    let mut it = names.iter();
    chain.iter().all(|want| it.any(|n| n.contains(want)))
}

/// This test executable's module in a profile of this process.
pub fn this_executable(p: &Profile) -> &vignette::Module {
    let exe = std::env::current_exe().unwrap();
    let name = exe.file_name().unwrap().to_str().unwrap();
    p.modules
        .iter()
        .find(|m| m.name == name)
        .expect("the executable is listed")
}

/// Waits until every thread named in `names` has used `ns` more nanoseconds of CPU than when
/// called; panics after a minute (a generous deadline: the machine may be busy).
pub fn wait_for_cpu(names: &[&str], ns: u64) {
    let start: Vec<u64> = names
        .iter()
        .map(|n| workload::named_thread_cpu_ns(n))
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let behind: Vec<_> = names
            .iter()
            .zip(&start)
            .filter(|(n, s)| workload::named_thread_cpu_ns(n).saturating_sub(**s) < ns)
            .map(|(n, _)| *n)
            .collect();
        if behind.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{behind:?} did not get {ns} ns of CPU in a minute"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Aborts the process if the test has not finished within `secs` seconds (store `true` in the
/// returned flag when done): a deadlock or hang fails loudly instead of stalling CI.
pub fn watchdog(secs: u64) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let d = done.clone();
    std::thread::spawn(move || {
        for _ in 0..secs * 10 {
            if d.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        eprintln!("watchdog: the test did not finish in {secs} s");
        std::process::abort();
    });
    done
}

/// The C compiler for the architecture the tests were built for: `VIGNETTE_TEST_CC` if set,
/// else `gcc`, or on aarch64 the cross compiler `aarch64-linux-gnu-gcc` when it is installed
/// (the tests then run under qemu-user, which runs the host's compiler natively).
#[allow(dead_code)]
pub fn cc() -> String {
    if let Ok(cc) = std::env::var("VIGNETTE_TEST_CC") {
        return cc;
    }
    let cross = "aarch64-linux-gnu-gcc";
    let has_cross = || {
        std::process::Command::new(cross)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if cfg!(target_arch = "aarch64") && has_cross() {
        cross.into()
    } else {
        "gcc".into()
    }
}

/// Builds the C library (release, `ffi/`) once per test binary; returns the folder holding
/// `libvignette.a` and `libvignette.so`.
#[cfg(target_os = "linux")]
pub fn c_library() -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = env!("CARGO_MANIFEST_DIR");
            let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ffi-target");
            let status = std::process::Command::new(env!("CARGO"))
                .args(["build", "--release", "--manifest-path"])
                .arg(format!("{root}/ffi/Cargo.toml"))
                .arg("--target-dir")
                .arg(&target)
                .status()
                .unwrap();
            assert!(status.success(), "building the C library");
            target.join("release")
        })
        .clone()
}

/// Compiles C or C++ `sources` (paths from the repository root) against the static C library
/// into `CARGO_TARGET_TMPDIR/<name>` with `compiler` (`gcc`, `g++`); returns the program.
#[cfg(target_os = "linux")]
pub fn c_program(compiler: &str, name: &str, sources: &[&str]) -> std::path::PathBuf {
    c_program_with(compiler, name, sources, &[])
}

/// [`c_program`] with more arguments for the compiler (before the C library).
#[cfg(target_os = "linux")]
pub fn c_program_with(
    compiler: &str,
    name: &str,
    sources: &[&str],
    args: &[String],
) -> std::path::PathBuf {
    let root = env!("CARGO_MANIFEST_DIR");
    let exe = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let out = std::process::Command::new(compiler)
        .args(["-O1", "-g", "-pthread", &format!("-I{root}/include")])
        .args(sources.iter().map(|s| format!("{root}/{s}")))
        .args(args)
        .arg(c_library().join("libvignette.a"))
        .args(["-ldl", "-lm", "-o"])
        .arg(&exe)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}
