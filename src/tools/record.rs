//! `vignette record`: profiles an unmodified program and every program it starts, one profile
//! per process, by injecting `libvignette_preload.so` (`tools/preload`) with `LD_PRELOAD`, as
//! `perf record` and `samply record` profile any program. Linux only.
//!
//! The library starts a profiler with the defaults when it is loaded and writes
//! `DIR/<program>-<pid>.vignette` when the process exits (by returning from `main` or calling
//! `exit`; a process killed by a signal or leaving by `_exit` writes none). Statically linked
//! and setuid programs ignore `LD_PRELOAD` and are not profiled.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use super::{ErrorKind, ToolError};

/// The injected library's file name.
pub const PRELOAD_LIBRARY: &str = "libvignette_preload.so";

/// What [`record`] ran and wrote.
#[derive(Debug)]
pub struct Recorded {
    /// How the program ended.
    pub status: ExitStatus,
    /// The profiles written by the program and its children, in the order of their names.
    pub profiles: Vec<PathBuf>,
}

/// The library `vignette record` injects: `lib` if given, else [`PRELOAD_LIBRARY`] beside the
/// running executable (where `cargo build --release -p vignette-preload` puts it).
pub fn preload_library(lib: Option<&Path>) -> Result<PathBuf, ToolError> {
    let path = match lib {
        Some(lib) => lib.to_path_buf(),
        None => std::env::current_exe()
            .map_err(|e| ToolError::new(ErrorKind::NotFound, format!("this executable: {e}")))?
            .with_file_name(PRELOAD_LIBRARY),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(ToolError::new(
            ErrorKind::NotFound,
            format!(
                "{} does not exist: build it with `cargo build --release -p vignette-preload` \
                 (it goes beside target/release/vignette), or pass --lib",
                path.display()
            ),
        ))
    }
}

/// How the injected library samples (the library's defaults where `None`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sampling {
    /// Samples per second of each thread's CPU time.
    pub rate: Option<u32>,
    /// The overhead budget in percent ([`crate::Builder::max_overhead`]).
    pub max_overhead: Option<f64>,
}

/// Runs `program` (its path or name, then its arguments) with `lib` injected, its profiles
/// (and its children's) going to `out` (created if needed), sampling as `sampling` says.
/// Waits for it; Ctrl-C and Ctrl-\ go to the program, not to this process.
pub fn record(
    program: &[OsString],
    out: &Path,
    sampling: Sampling,
    lib: &Path,
) -> Result<Recorded, ToolError> {
    let (name, args) = program
        .split_first()
        .ok_or_else(|| ToolError::new(ErrorKind::Io, "no program to record"))?;
    std::fs::create_dir_all(out).map_err(|e| ToolError::io(out, e))?;
    // Absolute: the program may change its directory before it exits.
    let out = out.canonicalize().map_err(|e| ToolError::io(out, e))?;
    let lib = lib.canonicalize().map_err(|e| ToolError::io(lib, e))?;
    let before = profiles_in(&out)?;
    let mut preload = OsString::from(&lib);
    if let Some(existing) = std::env::var_os("LD_PRELOAD").filter(|p| !p.is_empty()) {
        preload.push(":");
        preload.push(existing);
    }
    let mut command = Command::new(name);
    command
        .args(args)
        .env("LD_PRELOAD", preload)
        .env("VIGNETTE_RECORD_DIR", &out);
    if let Some(hz) = sampling.rate {
        command.env("VIGNETTE_RECORD_HZ", hz.to_string());
    }
    if let Some(percent) = sampling.max_overhead {
        command.env("VIGNETTE_RECORD_MAX_OVERHEAD", percent.to_string());
    }
    let mut child = command.spawn().map_err(|e| {
        ToolError::new(
            ErrorKind::NotFound,
            format!("{}: {e}", Path::new(name).display()),
        )
    })?;
    let status = {
        let _keys = TerminalKeysGoToTheChild::new();
        child
            .wait()
            .map_err(|e| ToolError::new(ErrorKind::Io, e.to_string()))?
    };
    let profiles = profiles_in(&out)?
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    Ok(Recorded { status, profiles })
}

/// The `.vignette` files in `dir`, sorted.
fn profiles_in(dir: &Path) -> Result<Vec<PathBuf>, ToolError> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| ToolError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "vignette"))
        .collect();
    found.sort();
    Ok(found)
}

/// While it lives, this process ignores SIGINT and SIGQUIT (the terminal sends them to the
/// whole foreground group, the program included, which decides what they do).
struct TerminalKeysGoToTheChild {
    old: [libc::sighandler_t; 2],
}

impl TerminalKeysGoToTheChild {
    fn new() -> Self {
        // SAFETY: setting a signal's disposition to SIG_IGN runs no code of ours.
        let old = [libc::SIGINT, libc::SIGQUIT].map(|s| unsafe { libc::signal(s, libc::SIG_IGN) });
        TerminalKeysGoToTheChild { old }
    }
}

impl Drop for TerminalKeysGoToTheChild {
    fn drop(&mut self) {
        for (s, old) in [libc::SIGINT, libc::SIGQUIT].into_iter().zip(self.old) {
            // SAFETY: restores the disposition `new` replaced.
            unsafe { libc::signal(s, old) };
        }
    }
}
