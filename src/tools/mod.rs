//! The offline half (feature `tools`): Breakpad symbol files, resolution of profiles, and
//! converters to the formats people view profiles in. The `vignette` command-line tool is a
//! thin layer over this module.
// Off the signal path: the signal path's lints (lib.rs) do not bind this module.
#![cfg_attr(
    not(test),
    allow(
        clippy::panic,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing
    )
)]

pub mod collapsed;
pub mod columns;
pub mod diff;
pub mod elf_sections;
pub mod export;
pub mod firefox;
pub mod heap;
pub mod info;
pub mod labels;
pub mod merge;
pub mod otlp;
pub mod pprof;
mod protobuf;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub mod record;
pub mod remote;
pub mod report;
pub mod resolve;
pub mod significance;
pub mod sources;
pub mod speedscope;
pub mod store;
pub mod svg;
pub mod sym_file;
pub mod sym_writer;

use std::fmt;
use std::path::{Path, PathBuf};

pub use resolve::{resolve, Resolution, ResolvedProfile};
pub use sources::SymbolSources;
pub use store::SymbolStore;
pub use sym_file::{Location, SymbolFile};

/// The formats [`convert`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// Speedscope JSON (<https://www.speedscope.app>)
    Speedscope,
    /// Collapsed stacks, one line per stack (flame graph input)
    Collapsed,
    /// pprof (gzipped profile.proto), resolved with --symbols
    Pprof,
    /// pprof with addresses, mappings and build IDs only, for server-side symbolization
    PprofUnresolved,
    /// An SVG flame graph
    Svg,
    /// Firefox Profiler processed profile JSON (<https://profiler.firefox.com>)
    Firefox,
    /// OpenTelemetry profiles (OTLP, v1development), build IDs on mappings
    Otlp,
}

impl Format {
    /// Every format, in the order a list of them shows.
    pub const ALL: [Format; 7] = [
        Format::Speedscope,
        Format::Collapsed,
        Format::Pprof,
        Format::PprofUnresolved,
        Format::Svg,
        Format::Firefox,
        Format::Otlp,
    ];

    /// Its name, as the command line takes it (`pprof-unresolved`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Speedscope => "speedscope",
            Format::Collapsed => "collapsed",
            Format::Pprof => "pprof",
            Format::PprofUnresolved => "pprof-unresolved",
            Format::Svg => "svg",
            Format::Firefox => "firefox",
            Format::Otlp => "otlp",
        }
    }

    /// What it is, in a few words.
    pub fn about(self) -> &'static str {
        match self {
            Format::Speedscope => "Speedscope JSON (<https://www.speedscope.app>)",
            Format::Collapsed => "Collapsed stacks, one line per stack (flame graph input)",
            Format::Pprof => "pprof (gzipped profile.proto), resolved with --symbols",
            Format::PprofUnresolved => {
                "pprof with addresses, mappings and build IDs only, for server-side symbolization"
            }
            Format::Svg => "An SVG flame graph",
            Format::Firefox => {
                "Firefox Profiler processed profile JSON (<https://profiler.firefox.com>)"
            }
            Format::Otlp => {
                "OpenTelemetry profiles (OTLP ProfilesData, v1development): addresses and build \
                 IDs on every mapping, names where --symbols resolved them"
            }
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    /// The format named `s` (see [`Format::name`]).
    fn from_str(s: &str) -> Result<Self, String> {
        (Format::ALL.into_iter().find(|f| f.name() == s)).ok_or_else(|| format!("no format {s:?}"))
    }
}

/// Options for [`convert`].
#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// The title the output shows (the profile's file name, say).
    pub title: String,
    /// The heap instead of the CPU samples, weighed by this measure (pprof writes all four
    /// of Go's heap sample types, this one the default).
    pub heap: Option<heap::HeapMeasure>,
}

/// Converts `profile`, with `res` resolving its frames (unused by
/// [`Format::PprofUnresolved`]), to `format`: the bytes of the output file.
pub fn convert(
    format: Format,
    profile: &crate::Profile,
    res: &Resolution,
    options: &ConvertOptions,
) -> Result<Vec<u8>, ToolError> {
    fn json(value: &impl serde::Serialize) -> Result<Vec<u8>, ToolError> {
        serde_json::to_vec(value)
            .map_err(|e| ToolError::new(ErrorKind::Output, format!("writing JSON: {e}")))
    }
    let title = &options.title;
    if let Some(measure) = options.heap {
        if profile.heap.is_none() {
            return Err(ToolError::new(
                ErrorKind::Output,
                "the profile has no heap (the profiler did not sample allocations: see \
                 Builder::sample_allocations)",
            ));
        }
        return Ok(match format {
            Format::Pprof => pprof::heap_to_pprof(profile, Some(res), measure),
            Format::PprofUnresolved => pprof::heap_to_pprof(profile, None, measure),
            Format::Collapsed => heap::to_collapsed(profile, res, measure).into_bytes(),
            Format::Svg => {
                let collapsed = heap::to_collapsed(profile, res, measure);
                svg::collapsed_to_svg(&collapsed, title, "bytes")?
            }
            // Its heap views are always there, beside the threads.
            Format::Speedscope => json(&speedscope::to_speedscope(profile, res, title))?,
            Format::Firefox | Format::Otlp => {
                return Err(ToolError::new(
                    ErrorKind::Output,
                    format!(
                        "the heap converts to pprof, speedscope, collapsed and svg, not {}",
                        format.name()
                    ),
                ))
            }
        });
    }
    Ok(match format {
        Format::Speedscope => json(&speedscope::to_speedscope(profile, res, title))?,
        Format::Collapsed => collapsed::to_collapsed(profile, res).into_bytes(),
        Format::Pprof => pprof::to_pprof(profile, Some(res)),
        Format::PprofUnresolved => pprof::to_pprof(profile, None),
        Format::Svg => svg::to_svg(profile, res, title)?,
        Format::Firefox => json(&firefox::to_firefox(profile, res, title))?,
        Format::Otlp => otlp::to_otlp(profile, res),
    })
}

/// What kind of thing went wrong in the tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A named file does not exist.
    NotFound,
    /// A file exists but could not be read or written.
    Io,
    /// A symbol file or binary could not be used (damaged, mismatched, unreadable format).
    Symbols,
    /// A profile could not be read (damaged, truncated, a newer format).
    Profile,
    /// An output could not be produced.
    Output,
}

/// What can go wrong in the tools: a kind, the file involved (if any), a message that names
/// it, and the underlying error (if any).
#[derive(Debug)]
pub struct ToolError {
    kind: ErrorKind,
    path: Option<PathBuf>,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ToolError {
    /// An error of `kind` saying `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ToolError {
            kind,
            path: None,
            message: message.into(),
            source: None,
        }
    }

    /// Reading or writing `path` failed with `e` ([`ErrorKind::NotFound`] when it does not
    /// exist, else [`ErrorKind::Io`]).
    pub fn io(path: &Path, e: std::io::Error) -> Self {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            _ => ErrorKind::Io,
        };
        ToolError {
            kind,
            path: Some(path.to_path_buf()),
            message: format!("{}: {e}", path.display()),
            source: Some(Box::new(e)),
        }
    }

    /// The same error, about the file at `path`.
    pub fn at(mut self, path: &Path) -> Self {
        self.path = Some(path.to_path_buf());
        self
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The file involved, if one is.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ToolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

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
        Err(ToolError::new(
            ErrorKind::Symbols,
            format!(
                "{what}: the ELF reader failed on this file ({}); it is malformed or unusual",
                escape_controls(&why)
            ),
        ))
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
    let bytes = std::fs::read(path).map_err(|e| ToolError::io(path, e))?;
    let source = path.display().to_string();
    if let Some(resolved) = resolve::ResolvedProfile::decode(&bytes, &source) {
        let (p, r) = resolved?.into_parts();
        return Ok((p, Some(r)));
    }
    crate::Profile::decode(&bytes)
        .map(|p| (p, None))
        .map_err(|e| ToolError::new(ErrorKind::Profile, format!("{source}: {e}")).at(path))
}
