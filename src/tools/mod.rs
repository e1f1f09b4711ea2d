//! The offline half (feature `tools`): Breakpad symbol files, resolution of profiles, and
//! converters to the formats people view profiles in. The `vignette` command-line tool is a
//! thin layer over this module.

pub mod collapsed;
pub mod firefox;
pub mod pprof;
pub mod report;
pub mod resolve;
pub mod speedscope;
pub mod store;
pub mod svg;
pub mod sym_file;
pub mod sym_writer;

use std::fmt;
use std::path::Path;

pub use resolve::{resolve, Resolution, ResolvedProfile};
pub use store::SymbolStore;
pub use sym_file::{Location, SymbolFile};

/// What can go wrong in the tools. Every message names the file involved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolError {
    /// Reading or writing a file failed.
    Io(String),
    /// A symbol file or binary could not be used.
    Symbols(String),
    /// A profile could not be read.
    Profile(String),
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToolError::Io(m) | ToolError::Symbols(m) | ToolError::Profile(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ToolError {}

std::thread_local! {
    /// Set while [`guard`] runs: the CLI's panic hook stays quiet then.
    static GUARDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, which reads a file through a parser vignette depends on (symbolic's ELF and DWARF
/// readers panic on some malformed files), turning a panic into an error about `what`.
pub fn guard<T>(what: &str, f: impl FnOnce() -> Result<T, ToolError>) -> Result<T, ToolError> {
    let outer = GUARDED.with(|g| g.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(outer));
    result.unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(ToolError::Symbols(format!(
            "{what}: the ELF reader failed on this file ({}); it is malformed or unusual",
            escape_controls(&why)
        )))
    })
}

/// Installs a panic hook that prints nothing for panics [`guard`] turns into errors (and
/// what the previous hook printed for any other). For command-line tools.
pub fn quiet_guarded_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !GUARDED.with(|g| g.get()) {
            previous(info)
        }
    }));
}

/// `s` with control characters (terminal escape sequences, newlines, NUL) shown as `\u{..}`
/// escapes: for names that come from profiles and symbol files, before they reach a terminal
/// or a line-based or XML output.
pub fn escape_controls(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// Reads and decodes the profile at `path` (a resolved profile gives its plain profile).
pub fn read_profile(path: &Path) -> Result<crate::Profile, ToolError> {
    read_any(path).map(|(p, _)| p)
}

/// Reads the profile at `path`, plain or resolved (then with its resolution).
pub fn read_any(path: &Path) -> Result<(crate::Profile, Option<Resolution>), ToolError> {
    let bytes =
        std::fs::read(path).map_err(|e| ToolError::Io(format!("{}: {e}", path.display())))?;
    let source = path.display().to_string();
    if let Some(resolved) = resolve::ResolvedProfile::decode(&bytes, &source) {
        let (p, r) = resolved?.into_parts();
        return Ok((p, Some(r)));
    }
    crate::Profile::decode(&bytes)
        .map(|p| (p, None))
        .map_err(|e| ToolError::Profile(format!("{source}: {e}")))
}
