//! Symbol stores: folders in Breakpad's layout `<file>/<DEBUG_ID>/<file>.sym`, plus binaries
//! and `.sym` files named directly.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use symbolic_debuginfo::elf::ElfObject as Object;

use super::elf_sections::check_compressed_sections;
use super::elf_sections::executable_sections;
use super::sym_file::SymbolFile;
use super::sym_writer::{
    is_macho, sym_for_macho, sym_for_pdb, sym_for_pe, symbol_id, write_sym, Origin, SymbolId,
};
use super::{ErrorKind, ToolError};

fn io_err(path: &Path, e: std::io::Error) -> ToolError {
    ToolError::io(path, e)
}

/// Whether `name` (a module name read from a profile or a file) may serve as one file-name
/// component: not empty, no `/`, `\`, NUL or other control character, not starting with `.`
/// (so neither `..` nor a hidden file), at most 255 bytes.
pub fn is_safe_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
}

/// Whether `id` is a debug or build ID: 1 to 64 hexadecimal digits.
pub fn is_hex_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Where a module's symbols live in a store, by its debug file's name (an ELF module's own
/// name, a PE module's PDB name), as Breakpad lays stores out:
/// `<store>/<name>/<DEBUG_ID>/<name>.sym`, with a `.pdb` name's extension replaced
/// (`app.pdb/<ID>/app.sym`). `None` if the name is not a single safe file-name component or
/// the ID is not hex (names and IDs come from profiles, which are data, never paths).
pub fn store_path(store: &Path, name: &str, debug_id: &str) -> Option<PathBuf> {
    (is_safe_file_name(name) && is_hex_id(debug_id))
        .then(|| store.join(name).join(debug_id).join(sym_file_name(name)))
}

/// Whether `name` is a Windows module's or debug file's (`.pdb`, `.dll`, `.exe`, `.sys`), whose
/// case means nothing: the loader says `ADVAPI32.dll` where a store made from the file says
/// `advapi32.dll`.
fn is_windows_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".pdb", ".dll", ".exe", ".sys"]
        .iter()
        .any(|ext| lower.ends_with(ext))
}

/// [`store_path`] looked up as Windows looks names up, ignoring ASCII case, in the folders
/// `root` has (`None` if nothing there matches). `name` and `debug_id` must be safe already.
fn store_path_ignoring_case(root: &Path, name: &str, debug_id: &str) -> Option<PathBuf> {
    let entry = |dir: &Path, want: &str| {
        std::fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .find(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(want))
            })
            .map(|e| e.path())
    };
    let folder = entry(root, name)?;
    let id = entry(&folder, debug_id)?;
    entry(&id, &sym_file_name(name)).filter(|p| p.is_file())
}

/// The `.sym` file's name for debug file `name`: `.pdb` replaced, anything else extended.
fn sym_file_name(name: &str) -> String {
    match name
        .len()
        .checked_sub(4)
        .filter(|&i| name.is_char_boundary(i))
    {
        Some(i) if name[i..].eq_ignore_ascii_case(".pdb") => format!("{}.sym", &name[..i]),
        _ => format!("{name}.sym"),
    }
}

/// The separate debug file of a stripped `binary`: by build ID
/// (`<root>/.build-id/ab/cdef….debug`), then by `.gnu_debuglink` (next to the binary, in its
/// `.debug/` folder, or under `<root>/<binary's folder>/`), for each root in `debug_roots`
/// (usually `/usr/lib/debug`).
pub fn find_debug_file(
    binary: &Path,
    object: &Object<'_>,
    debug_roots: &[PathBuf],
) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(id) = object.code_id() {
        let hex = id.as_str().to_lowercase();
        if hex.len() > 2 {
            for root in debug_roots {
                candidates.push(
                    root.join(".build-id")
                        .join(&hex[..2])
                        .join(format!("{}.debug", &hex[2..])),
                );
            }
        }
    }
    if let Ok(Some(link)) = object.debug_link() {
        let name = link.filename().to_string_lossy().into_owned();
        let dir = binary.parent().unwrap_or(Path::new("."));
        candidates.push(dir.join(&name));
        candidates.push(dir.join(".debug").join(&name));
        let abs = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        for root in debug_roots {
            candidates.push(root.join(abs.strip_prefix("/").unwrap_or(&abs)).join(&name));
        }
    }
    candidates
        .into_iter()
        .find(|c| c.is_file() && c.as_path() != binary)
}

/// Writes the `.sym` file for the ELF file at `binary` into `store`; returns its path. A
/// stripped binary's separate debug file is found under `debug_roots` (see
/// [`find_debug_file`]).
pub fn add_to_store(
    binary: &Path,
    store: &Path,
    debug_roots: &[PathBuf],
) -> Result<PathBuf, ToolError> {
    add_to_store_as(binary, None, store, debug_roots)
}

/// [`add_to_store`], an ELF file stored under `name` (the file name a profile knows it by,
/// such as a soname that links to a versioned file: `libz.so.1` for `libz.so.1.2.13`) rather
/// than its own file name.
pub fn add_to_store_as(
    binary: &Path,
    name: Option<&str>,
    store: &Path,
    debug_roots: &[PathBuf],
) -> Result<PathBuf, ToolError> {
    let what = binary.display().to_string();
    super::guard(&what, || {
        add_to_store_unguarded(binary, name, store, debug_roots)
    })
}

fn add_to_store_unguarded(
    binary: &Path,
    elf_name: Option<&str>,
    store: &Path,
    debug_roots: &[PathBuf],
) -> Result<PathBuf, ToolError> {
    let data = std::fs::read(binary).map_err(|e| io_err(binary, e))?;
    if data.starts_with(b"MZ") {
        return add_pe_to_store(&data, binary, store);
    }
    if data.starts_with(b"Microsoft C/C++ MSF 7.00") {
        return add_pdb_to_store(&data, binary, store);
    }
    if is_macho(&data) {
        return add_macho_to_store(&data, binary, store, debug_roots);
    }
    let refuse = |path: &Path, e: ToolError| {
        ToolError::new(ErrorKind::Symbols, format!("{}: {e}", path.display())).at(path)
    };
    check_compressed_sections(&data).map_err(|e| refuse(binary, e))?;
    let object = Object::parse(&data).map_err(|e| {
        ToolError::new(
            ErrorKind::Symbols,
            format!(
                "{}: not an ELF file vignette can read: {e}",
                binary.display()
            ),
        )
    })?;
    let name = elf_name.map_or_else(|| file_name_of(binary), str::to_string);
    let id = symbol_id(&object, &name);
    let debug_data = match object.has_debug_info() {
        true => None,
        false => match find_debug_file(binary, &object, debug_roots) {
            Some(path) => {
                let data = std::fs::read(&path).map_err(|e| io_err(&path, e))?;
                check_compressed_sections(&data).map_err(|e| refuse(&path, e))?;
                Some(data)
            }
            None => None,
        },
    };
    let debug_object = match &debug_data {
        Some(d) => Some(Object::parse(d).map_err(|e| {
            ToolError::new(
                ErrorKind::Symbols,
                format!("{}: its debug file: {e}", binary.display()),
            )
        })?),
        None => None,
    };
    let source = debug_object.as_ref().unwrap_or(&object);
    if !source.has_debug_info() && source.symbols().next().is_none() {
        return Err(ToolError::new(ErrorKind::Symbols, format!(
            "{}: has neither debug info nor a symbol table, and no debug file was found (by build ID or \
             .gnu_debuglink); point vignette at the unstripped file, or resolve with \
             --debuginfod (a distribution's server has its packages' debug files)",
            binary.display()
        )));
    }
    let sections = executable_sections(source.data());
    write_to_store(store, binary, &id, |out| {
        write_sym(source, &id, &Origin::Elf(&sections), out)
    })
}

/// The last component of `path` (what the module is called in profiles and `.sym` files), or
/// empty.
fn file_name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Writes a `.sym` into the store at `id`'s path (through a temporary file, so a reader never
/// sees half of one); `binary` names the input in errors.
fn write_to_store(
    store: &Path,
    binary: &Path,
    id: &SymbolId,
    write: impl FnOnce(&mut BufWriter<std::fs::File>) -> Result<(), ToolError>,
) -> Result<PathBuf, ToolError> {
    let path = store_path(store, &id.name, &id.debug_id).ok_or_else(|| {
        ToolError::new(
            ErrorKind::Symbols,
            format!(
                "{}: its name ({}) cannot name a folder in the store (rename it)",
                binary.display(),
                id.name
            ),
        )
    })?;
    let dir = path.parent().unwrap_or(store);
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let tmp = path.with_extension("sym.tmp");
    let file = std::fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
    let mut out = BufWriter::new(file);
    write(&mut out)?;
    out.flush().map_err(|e| io_err(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
    Ok(path)
}

/// [`add_to_store`] for a PDB file (MSVC's or lld-link's debug info for a Windows module); the
/// executable or DLL beside it, when there is one with the PDB's stem, gives the code id.
fn add_pdb_to_store(data: &[u8], pdb: &Path, store: &Path) -> Result<PathBuf, ToolError> {
    let file_name = file_name_of(pdb);
    let code = ["dll", "exe"].iter().find_map(|ext| {
        let path = pdb.with_extension(ext);
        let bytes = std::fs::read(&path).ok()?;
        let object = symbolic_debuginfo::pe::PeObject::parse(&bytes).ok()?;
        let code_id = object.code_id()?.as_str().to_uppercase();
        let name = path.file_name()?.to_string_lossy().into_owned();
        Some((name, code_id))
    });
    let (id, text) = sym_for_pdb(
        data,
        &file_name,
        code.as_ref().map(|(n, c)| (n.as_str(), c.clone())),
        &pdb.display().to_string(),
    )?;
    write_to_store(store, pdb, &id, |out| {
        out.write_all(&text).map_err(|e| io_err(pdb, e))
    })
}

/// [`add_to_store`] for a PE file (a Windows executable or DLL): its DWARF (mingw) and exports.
/// A Mach-O file's `.sym`: its DWARF comes from the `.dSYM` bundle beside it
/// (`NAME.dSYM/Contents/Resources/DWARF/NAME`) or under a debug root, else its symbols only.
fn add_macho_to_store(
    data: &[u8],
    binary: &Path,
    store: &Path,
    debug_roots: &[PathBuf],
) -> Result<PathBuf, ToolError> {
    let file_name = file_name_of(binary);
    let in_bundle = |dir: &Path| {
        dir.join(format!("{file_name}.dSYM"))
            .join("Contents/Resources/DWARF")
            .join(&file_name)
    };
    let dir = binary.parent().unwrap_or(Path::new("."));
    let dsym_path = std::iter::once(in_bundle(dir))
        .chain(debug_roots.iter().map(|r| in_bundle(r)))
        .find(|p| p.is_file());
    let dsym = match &dsym_path {
        Some(p) => Some(std::fs::read(p).map_err(|e| io_err(p, e))?),
        None => None,
    };
    let (id, text) = sym_for_macho(
        data,
        dsym.as_deref(),
        &file_name,
        &binary.display().to_string(),
    )?;
    write_to_store(store, binary, &id, |out| {
        out.write_all(&text).map_err(|e| io_err(binary, e))
    })
}

fn add_pe_to_store(data: &[u8], binary: &Path, store: &Path) -> Result<PathBuf, ToolError> {
    let file_name = file_name_of(binary);
    // An MSVC build keeps its debug info in the PDB its CodeView record names: use that PDB
    // when it lies beside the file (as dump_syms does).
    if let Ok(object) = symbolic_debuginfo::pe::PeObject::parse(data) {
        let id = super::sym_writer::pe_symbol_id(&object, &file_name);
        // The PDB's name comes from the file: one safe file-name component, or it is not
        // looked for.
        if !object.has_debug_info()
            && is_safe_file_name(&id.name)
            && id.name.to_ascii_lowercase().ends_with(".pdb")
        {
            let pdb = binary.with_file_name(&id.name);
            if let Ok(pdb_data) = std::fs::read(&pdb) {
                let pdb_id = symbolic_debuginfo::pdb::PdbObject::parse(&pdb_data)
                    .map(|p| p.debug_id().breakpad().to_string().to_uppercase())
                    .map_err(|e| e.to_string());
                if pdb_id.as_deref() != Ok(id.debug_id.as_str()) {
                    return Err(ToolError::new(
                        ErrorKind::Symbols,
                        format!(
                            "{}: the PDB beside it ({}) is not its own (debug ID {}, not {}): \
                             point vignette at the matching PDB",
                            binary.display(),
                            pdb.display(),
                            pdb_id.unwrap_or_else(|e| format!("unreadable: {e}")),
                            id.debug_id
                        ),
                    ));
                }
                return add_pdb_to_store(&pdb_data, &pdb, store);
            }
        }
    }
    let (id, text) = sym_for_pe(data, &file_name, &binary.display().to_string())?;
    write_to_store(store, binary, &id, |out| {
        out.write_all(&text).map_err(|e| io_err(binary, e))
    })
}

/// Where [`local_file_of`] looks for a module by file name when the profile recorded no path
/// (the default: see `Builder::module_paths`): the system's library folders, Debian's
/// multiarch ones for both architectures vignette runs on (a file found is still checked by
/// its build ID).
pub const SYSTEM_LIBRARY_DIRS: [&str; 9] = [
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
    "/usr/local/lib",
];

/// Where [`local_file_of`] looks next, for executables: the system's program folders, then
/// those `PATH` names, then the folder of the running program (where `vignette record`'s
/// library is built, beside the `vignette` binary).
fn program_dirs() -> Vec<PathBuf> {
    let system = [
        "/usr/local/bin",
        "/usr/bin",
        "/bin",
        "/usr/local/sbin",
        "/usr/sbin",
        "/sbin",
    ];
    let path = std::env::var_os("PATH").unwrap_or_default();
    let own = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf));
    (system.iter().map(PathBuf::from))
        .chain(std::env::split_paths(&path).filter(|p| p.is_absolute()))
        .chain(own)
        .collect()
}

/// The file on this machine that is `module` of a profile, for `vignette symbols --profile`:
/// its recorded path if the profile has one, else `<dir>/<file name>` for the first of
/// `search` (then [`SYSTEM_LIBRARY_DIRS`], the system's program folders, `PATH`'s and the
/// running program's) that holds it, where the file name must be one
/// safe path component. A candidate counts only if it is a regular file (after symlinks)
/// outside `/proc`, `/dev` and `/sys` whose GNU build ID, read from its headers alone, equals
/// the module's. Nothing else is read, so a crafted profile cannot make vignette read (or copy
/// symbols of) an arbitrary file. The error ([`ErrorKind::NotFound`], or [`ErrorKind::Io`]
/// reading a candidate) says why the module is skipped.
pub fn local_file_of(module: &crate::Module, search: &[PathBuf]) -> Result<PathBuf, ToolError> {
    let skip = |why: String| ToolError::new(ErrorKind::NotFound, why);
    if module.code_id.is_empty() {
        return Err(skip(
            "the profile has no build ID to check a local file against".into(),
        ));
    }
    if !module.path.is_empty() {
        let path = Path::new(&module.path);
        if !path.is_absolute() {
            return Err(skip(format!(
                "{:?} is not a file path (the kernel's vDSO, or an unnamed mapping)",
                module.path
            )));
        }
        return checked_local_file(path, &module.code_id);
    }
    if !is_safe_file_name(&module.name) {
        return Err(skip("not a file name (an unnamed mapping)".into()));
    }
    if super::resolve::is_vdso(&module.name) {
        return Err(skip(
            "the kernel's vDSO has no file on disk (its frames keep their offsets)".into(),
        ));
    }
    let dirs = search
        .iter()
        .cloned()
        .chain(SYSTEM_LIBRARY_DIRS.iter().map(PathBuf::from))
        .chain(program_dirs());
    let mut other_build = None;
    for dir in dirs {
        let candidate = dir.join(&module.name);
        // A folder of the same name (`/usr/local/lib/python3.11` for the executable
        // `python3.11`) is not the module: look on.
        if !candidate.is_file() {
            continue;
        }
        match checked_local_file(&candidate, &module.code_id) {
            Ok(path) => return Ok(path),
            Err(why) => other_build = Some(why),
        }
    }
    Err(other_build.unwrap_or_else(|| {
        skip(
            "not found in the system's library or program folders (profiles record file \
             names only: pass --search DIR for the folder that holds it)"
                .into(),
        )
    }))
}

/// `path`, resolved, if it is a regular file outside `/proc`, `/dev` and `/sys` with the GNU
/// build ID `code_id`.
fn checked_local_file(path: &Path, code_id: &[u8]) -> Result<PathBuf, ToolError> {
    let not = |path: &Path, why: String| ToolError::new(ErrorKind::NotFound, why).at(path);
    let special = |p: &Path| ["/proc", "/dev", "/sys"].iter().any(|s| p.starts_with(s));
    // Refused before anything looks at it, and again once symlinks are resolved.
    if special(path) {
        return Err(not(
            path,
            format!("{} is not a regular file", path.display()),
        ));
    }
    let real = path.canonicalize().map_err(|e| {
        not(
            path,
            format!("{} is not on this machine ({e})", path.display()),
        )
    })?;
    if special(&real) {
        return Err(not(
            &real,
            format!("{} is not a regular file", real.display()),
        ));
    }
    let meta = std::fs::metadata(&real).map_err(|e| ToolError::io(&real, e))?;
    if !meta.is_file() {
        return Err(not(
            &real,
            format!("{} is not a regular file", real.display()),
        ));
    }
    match elf_build_id(&real) {
        Some(id) if id == code_id => Ok(real),
        Some(_) => Err(not(
            &real,
            format!(
                "{} has another build ID: not the file the profile saw",
                real.display()
            ),
        )),
        None => Err(not(
            &real,
            format!("{} is not an ELF file with a build ID", real.display()),
        )),
    }
}

/// The GNU build ID of the 64-bit little-endian ELF file at `path`, from its program headers
/// and notes only (at most a few pages read, whatever the file's size).
pub fn elf_build_id(path: &Path) -> Option<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let file = std::cell::RefCell::new(std::fs::File::open(path).ok()?);
    let read = |offset: u64, len: u64| -> Option<Vec<u8>> {
        if len > 1 << 16 {
            return None;
        }
        let mut buf = vec![0u8; len as usize];
        let mut f = file.borrow_mut();
        f.seek(SeekFrom::Start(offset)).ok()?;
        f.read_exact(&mut buf).ok()?;
        Some(buf)
    };
    let eh = read(0, 64)?;
    if &eh[..4] != b"\x7fELF" || eh[4] != 2 || eh[5] != 1 {
        return None;
    }
    let u16_at = |b: &[u8], o: usize| Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |b: &[u8], o: usize| Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |b: &[u8], o: usize| Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?));
    let (phoff, phentsize, phnum) = (u64_at(&eh, 0x20)?, u16_at(&eh, 0x36)?, u16_at(&eh, 0x38)?);
    if phentsize != 56 {
        return None;
    }
    let phdrs = read(phoff, phentsize as u64 * phnum as u64)?;
    phdrs.chunks_exact(56).find_map(|ph| {
        const PT_NOTE: u32 = 4;
        if u32_at(ph, 0)? != PT_NOTE {
            return None;
        }
        let notes = read(u64_at(ph, 8)?, u64_at(ph, 32)?)?;
        crate::modules::gnu_build_id(&notes).map(|id| id.to_vec())
    })
}

/// Finds and caches symbols for modules, from store folders and from files named directly
/// (ELF binaries with symbols, or `.sym` files).
pub struct SymbolStore {
    roots: Vec<PathBuf>,
    files: Vec<PathBuf>,
    /// Directly named files by debug id, built on first use.
    by_id: Option<HashMap<String, PathBuf>>,
    loaded: HashMap<String, Option<Arc<SymbolFile>>>,
    /// Problems met so far that cost one module or one file, not the whole lookup.
    pub warnings: Vec<String>,
}

impl SymbolStore {
    /// A store over `paths`: folders are searched in Breakpad's layout; files are read to learn
    /// which module they describe.
    pub fn new(paths: &[PathBuf]) -> Self {
        let (roots, files) = paths.iter().cloned().partition(|p| p.is_dir());
        SymbolStore {
            roots,
            files,
            by_id: None,
            loaded: HashMap::new(),
            warnings: Vec::new(),
        }
    }

    /// Whether it was given no folders and no files at all.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty() && self.files.is_empty()
    }

    /// The files named directly, by the debug ID they describe; a file that is neither a
    /// `.sym` file nor an object file is skipped with a warning.
    fn index_files(&mut self) -> &HashMap<String, PathBuf> {
        if self.by_id.is_none() {
            let mut map = HashMap::new();
            for f in &self.files {
                let data = match std::fs::read(f) {
                    Ok(d) => d,
                    Err(e) => {
                        self.warnings.push(format!("{}: {e}", f.display()));
                        continue;
                    }
                };
                let id = if data.starts_with(b"MODULE ") {
                    let head = String::from_utf8_lossy(&data[..data.len().min(512)]).into_owned();
                    head.split_whitespace()
                        .nth(3)
                        .unwrap_or_default()
                        .to_uppercase()
                } else {
                    let what = f.display().to_string();
                    let id = super::guard(&what, || {
                        Object::parse(&data)
                            .map(|object| symbol_id(&object, "").debug_id)
                            .map_err(|e| ToolError::new(ErrorKind::Symbols, e.to_string()))
                    });
                    match id {
                        Ok(id) => id,
                        Err(e) => {
                            self.warnings.push(format!(
                                "{}: neither a .sym file nor an object file ({e}); skipped",
                                f.display()
                            ));
                            continue;
                        }
                    }
                };
                map.insert(id, f.clone());
            }
            self.by_id = Some(map);
        }
        self.by_id.get_or_insert_with(HashMap::new)
    }

    /// The symbols of module `name` with `debug_id`, or `None` if no store has usable ones.
    /// Whatever costs this module its symbols (an unsafe name, a damaged or mismatched symbol
    /// file) is added to [`SymbolStore::warnings`] once; other modules are unaffected.
    pub fn find(&mut self, name: &str, debug_id: &str) -> Option<Arc<SymbolFile>> {
        let key = format!("{name}/{debug_id}");
        if let Some(hit) = self.loaded.get(&key) {
            return hit.clone();
        }
        let found = if !is_safe_file_name(name) || !is_hex_id(debug_id) {
            self.warnings.push(format!(
                "no symbols for module {:?} (debug ID {:?}): unsafe name, not looked up",
                name, debug_id
            ));
            None
        } else {
            match self.load(name, debug_id) {
                Ok(found) => found.map(Arc::new),
                Err(e) => {
                    self.warnings.push(format!("no symbols for {name}: {e}"));
                    None
                }
            }
        };
        self.loaded.insert(key, found.clone());
        found
    }

    fn load(&mut self, name: &str, debug_id: &str) -> Result<Option<SymbolFile>, ToolError> {
        for root in &self.roots {
            let Some(mut path) = store_path(root, name, debug_id) else {
                continue;
            };
            if !path.is_file() && is_windows_name(name) {
                path = store_path_ignoring_case(root, name, debug_id).unwrap_or(path);
            }
            if path.is_file() {
                let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
                let sym = SymbolFile::parse(&text, &path.display().to_string())?;
                if sym.id.debug_id != debug_id {
                    return Err(ToolError::new(ErrorKind::Symbols, format!(
                        "{}: symbol file for debug ID {}, but the profile's {name} has {debug_id}; regenerate the store",
                        path.display(),
                        sym.id.debug_id
                    )));
                }
                return Ok(Some(sym));
            }
        }
        let Some(path) = self.index_files().get(debug_id).cloned() else {
            return Ok(None);
        };
        let data = std::fs::read(&path).map_err(|e| io_err(&path, e))?;
        let source = path.display().to_string();
        if data.starts_with(b"MODULE ") {
            return SymbolFile::parse(&String::from_utf8_lossy(&data), &source).map(Some);
        }
        let text = super::sym_writer::sym_for_elf(&data, name, &source)?;
        SymbolFile::parse(&String::from_utf8_lossy(&text), &source).map(Some)
    }
}
