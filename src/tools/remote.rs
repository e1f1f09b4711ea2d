//! Symbols from servers: HTTP(S) Breakpad symbol stores (`<url>/<file>/<DEBUG_ID>/<file>.sym`,
//! plain or gzipped) and debuginfod servers (`<url>/buildid/<hex>/debuginfo`, then
//! `/executable`, turned into a `.sym` here). Everything fetched lands in a cache folder laid
//! out as a symbol store, misses (every server answering 404) included for a day, so a second
//! run asks nothing again but what failed (an error status, a timeout, garbage); the
//! resolver then reads the cache like any local store.
//!
//! Servers are not trusted: names and IDs from a profile are sent only when they are one safe
//! file-name component and hex (percent-encoded besides); a body is capped in size; a `.sym`
//! for another debug ID, garbage, an error status or a timeout costs only that module, with a
//! warning. Fetches run in parallel, each retried once.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::store::{is_hex_id, is_safe_file_name, store_path};
use super::sym_file::SymbolFile;
use crate::Module;

/// Largest body accepted (a debug file of a big library is a few hundred MiB).
pub const MAX_BODY: u64 = 1 << 30;

/// How long a miss is remembered.
pub const MISS_TTL: Duration = Duration::from_secs(24 * 3600);

/// How many fetches run at once.
const PARALLEL: usize = 8;

/// A symbol server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Server {
    /// A Breakpad store over HTTP(S), by its base URL.
    Breakpad(String),
    /// A debuginfod server, by its base URL.
    Debuginfod(String),
}

impl Server {
    /// The server a `--symbols` value names: `http://` or `https://` a Breakpad store,
    /// `debuginfod:<url>` a debuginfod server; `None` for anything else (a local path).
    pub fn parse(value: &str) -> Option<Server> {
        if let Some(url) = value.strip_prefix("debuginfod:") {
            return Some(Server::Debuginfod(url.trim_end_matches('/').to_string()));
        }
        (value.starts_with("http://") || value.starts_with("https://"))
            .then(|| Server::Breakpad(value.trim_end_matches('/').to_string()))
    }

    /// The servers `DEBUGINFOD_URLS` lists (space-separated), as elfutils reads it.
    pub fn from_debuginfod_urls(value: &str) -> Vec<Server> {
        value
            .split_whitespace()
            .map(|u| Server::Debuginfod(u.trim_end_matches('/').to_string()))
            .collect()
    }

    fn describe(&self) -> String {
        match self {
            Server::Breakpad(u) => u.clone(),
            Server::Debuginfod(u) => format!("debuginfod:{u}"),
        }
    }
}

/// The platform's cache folder for vignette's symbols: `$XDG_CACHE_HOME/vignette/symbols`,
/// else `~/.cache/vignette/symbols`.
pub fn default_cache() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("vignette").join("symbols")
}

/// What one module needs from the servers.
struct Want {
    debug_file: String,
    debug_id: String,
    /// The GNU build ID in hex, for debuginfod (ELF modules with one).
    build_id: Option<String>,
    name: String,
}

/// Fetches the symbols of `modules` that `cache` does not hold yet from `servers` (in order,
/// the first that has them wins), into `cache`, calling `progress(done, of)` as each module's
/// fetch ends. Returns warnings, one per module that none of them served and per server
/// failure met; never fails as a whole.
pub fn fetch(
    modules: &[&Module],
    servers: &[Server],
    cache: &Path,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut wants = Vec::new();
    for m in modules {
        let (file, id) = (m.debug_file.as_str(), m.debug_id_string());
        if !is_safe_file_name(file) || !is_hex_id(&id) {
            warnings.push(format!(
                "{:?} (debug ID {id:?}): unsafe name, not fetched",
                m.debug_file
            ));
            continue;
        }
        let Some(path) = store_path(cache, file, &id) else {
            continue;
        };
        if path.is_file() || recent_miss(&path) {
            continue;
        }
        let build_id = (m.format == crate::ObjectFormat::Elf && !m.code_id.is_empty())
            .then(|| m.code_id_string());
        wants.push(Want {
            debug_file: file.to_string(),
            debug_id: id,
            build_id,
            name: m.name.clone(),
        });
    }
    if wants.is_empty() || servers.is_empty() {
        return warnings;
    }
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
        .build();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done = std::sync::atomic::AtomicUsize::new(0);
    progress(0, wants.len());
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL.min(wants.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(w) = wants.get(i) else { break };
                let r = fetch_one(&agent, w, servers, cache);
                let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                progress(d, wants.len());
                results.lock().unwrap_or_else(|e| e.into_inner()).extend(r);
            });
        }
    });
    warnings.extend(results.into_inner().unwrap_or_else(|e| e.into_inner()));
    warnings
}

/// Whether a miss for the store path `sym` was recorded less than [`MISS_TTL`] ago.
fn recent_miss(sym: &Path) -> bool {
    let miss = sym.with_extension("miss");
    std::fs::metadata(miss)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age < MISS_TTL)
}

/// Percent-encodes a path component (IDs and checked names pass unchanged but for a few
/// characters).
fn component(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One GET, retried once; `Ok(None)` for 404, the body (at most [`MAX_BODY`]) for 200.
fn get(agent: &ureq::Agent, url: &str) -> Result<Option<Vec<u8>>, String> {
    let mut last = String::new();
    for _ in 0..2 {
        match agent.get(url).call() {
            Ok(resp) => {
                // A declared size over the cap is refused before a byte is read.
                let declared = resp
                    .header("Content-Length")
                    .and_then(|l| l.trim().parse::<u64>().ok());
                if declared.is_some_and(|n| n > MAX_BODY) {
                    return Err(format!(
                        "{url}: {} bytes, more than the {MAX_BODY} accepted; refused",
                        declared.unwrap_or_default()
                    ));
                }
                let mut body = Vec::new();
                let read = resp.into_reader().take(MAX_BODY + 1).read_to_end(&mut body);
                match read {
                    Ok(_) if body.len() as u64 > MAX_BODY => {
                        return Err(format!("{url}: larger than {MAX_BODY} bytes, refused"))
                    }
                    Ok(_) => return Ok(Some(body)),
                    Err(e) => last = format!("{url}: {e}"),
                }
            }
            Err(ureq::Error::Status(404, _)) => return Ok(None),
            Err(ureq::Error::Status(code, _)) => last = format!("{url}: HTTP {code}"),
            Err(e) => last = format!("{url}: {e}"),
        }
    }
    Err(last)
}

/// Gunzips `body` if it is gzip (capped like any body).
fn maybe_gunzip(body: Vec<u8>) -> Result<Vec<u8>, String> {
    if !body.starts_with(&[0x1f, 0x8b]) {
        return Ok(body);
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&body[..])
        .take(MAX_BODY + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("bad gzip: {e}"))?;
    if out.len() as u64 > MAX_BODY {
        return Err(format!("unpacks to more than {MAX_BODY} bytes, refused"));
    }
    Ok(out)
}

/// Fetches one module's symbols; returns warnings.
fn fetch_one(agent: &ureq::Agent, w: &Want, servers: &[Server], cache: &Path) -> Vec<String> {
    let mut warnings = Vec::new();
    let Some(path) = store_path(cache, &w.debug_file, &w.debug_id) else {
        return warnings;
    };
    let sym_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    for server in servers {
        let text = match server {
            Server::Breakpad(base) => {
                let url = format!(
                    "{base}/{}/{}/{}",
                    component(&w.debug_file),
                    component(&w.debug_id),
                    component(sym_name.as_deref().unwrap_or_default())
                );
                match get(agent, &url).and_then(|b| b.map(maybe_gunzip).transpose()) {
                    Ok(Some(body)) => Some((url, body)),
                    Ok(None) => None,
                    Err(e) => {
                        warnings.push(format!("{}: {e}", w.debug_file));
                        None
                    }
                }
            }
            Server::Debuginfod(base) => {
                let Some(build_id) = w.build_id.as_deref().filter(|b| is_hex_id(b)) else {
                    continue;
                };
                let mut found = None;
                for kind in ["debuginfo", "executable"] {
                    let url = format!("{base}/buildid/{}/{kind}", component(build_id));
                    match get(agent, &url) {
                        Ok(Some(object)) => {
                            match super::sym_writer::sym_for_elf(&object, &w.name, &url) {
                                Ok(text) => {
                                    found = Some((url, text));
                                    break;
                                }
                                Err(e) => warnings.push(format!("{}: {e}", w.debug_file)),
                            }
                        }
                        Ok(None) => {}
                        Err(e) => warnings.push(format!("{}: {e}", w.debug_file)),
                    }
                }
                found
            }
        };
        let Some((url, text)) = text else { continue };
        // A .sym must describe this module: parse it and compare the debug ID.
        match SymbolFile::parse(&String::from_utf8_lossy(&text), &url) {
            Ok(sym) if sym.id.debug_id == w.debug_id => {
                if let Err(e) = save(&path, &text) {
                    warnings.push(format!("{}: caching {}: {e}", w.debug_file, path.display()));
                }
                return warnings;
            }
            Ok(sym) => warnings.push(format!(
                "{}: {} served symbols for debug ID {}, not {}; ignored",
                w.debug_file,
                server.describe(),
                sym.id.debug_id,
                w.debug_id
            )),
            Err(e) => warnings.push(format!("{}: {e}", w.debug_file)),
        }
    }
    // Every server said it does not have them (no error, no wrong answer): remember that for
    // a while. A failure is not remembered: the next run asks again.
    if warnings.is_empty() {
        let _ = save(&path.with_extension("miss"), b"");
    }
    warnings
}

/// Writes `bytes` at `path` through a temporary file (a reader never sees half of one).
fn save(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
