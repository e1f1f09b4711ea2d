//! Symbol stores: folders in Breakpad's layout `<file>/<DEBUG_ID>/<file>.sym`, plus binaries
//! and `.sym` files named directly.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use symbolic_debuginfo::elf::ElfObject as Object;

use super::sym_file::SymbolFile;
use super::sym_writer::{symbol_id, write_sym};
use super::ToolError;

fn io_err(path: &Path, e: std::io::Error) -> ToolError {
    ToolError::Io(format!("{}: {e}", path.display()))
}

/// Where a module's symbols live in a store.
pub fn store_path(store: &Path, name: &str, debug_id: &str) -> PathBuf {
    store.join(name).join(debug_id).join(format!("{name}.sym"))
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
    let data = std::fs::read(binary).map_err(|e| io_err(binary, e))?;
    let object = Object::parse(&data).map_err(|e| {
        ToolError::Symbols(format!(
            "{}: not an ELF file vignette can read: {e}",
            binary.display()
        ))
    })?;
    let name = binary
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let id = symbol_id(&object, &name);
    let debug_data = match object.has_debug_info() {
        true => None,
        false => match find_debug_file(binary, &object, debug_roots) {
            Some(path) => Some(std::fs::read(&path).map_err(|e| io_err(&path, e))?),
            None => None,
        },
    };
    let debug_object = match &debug_data {
        Some(d) => Some(Object::parse(d).map_err(|e| {
            ToolError::Symbols(format!("{}: its debug file: {e}", binary.display()))
        })?),
        None => None,
    };
    let source = debug_object.as_ref().unwrap_or(&object);
    if !source.has_debug_info() && source.symbols().next().is_none() {
        return Err(ToolError::Symbols(format!(
            "{}: has neither debug info nor a symbol table, and no debug file was found (by build ID or \
             .gnu_debuglink); point vignette at the unstripped file",
            binary.display()
        )));
    }
    let path = store_path(store, &name, &id.debug_id);
    let dir = path.parent().unwrap_or(store);
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let tmp = path.with_extension("sym.tmp");
    let file = std::fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
    let mut out = BufWriter::new(file);
    write_sym(source, &id, &mut out)?;
    out.flush().map_err(|e| io_err(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
    Ok(path)
}

/// Finds and caches symbols for modules, from store folders and from files named directly
/// (ELF binaries with symbols, or `.sym` files).
pub struct SymbolStore {
    roots: Vec<PathBuf>,
    files: Vec<PathBuf>,
    /// Directly named files by debug id, built on first use.
    by_id: Option<HashMap<String, PathBuf>>,
    loaded: HashMap<String, Option<Arc<SymbolFile>>>,
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
        }
    }

    fn index_files(&mut self) -> Result<&HashMap<String, PathBuf>, ToolError> {
        if self.by_id.is_none() {
            let mut map = HashMap::new();
            for f in &self.files {
                let data = std::fs::read(f).map_err(|e| io_err(f, e))?;
                let id = if data.starts_with(b"MODULE ") {
                    let head = String::from_utf8_lossy(&data[..data.len().min(512)]).into_owned();
                    head.split_whitespace()
                        .nth(3)
                        .unwrap_or_default()
                        .to_uppercase()
                } else {
                    let object = Object::parse(&data).map_err(|e| {
                        ToolError::Symbols(format!(
                            "{}: neither a .sym file nor an object file: {e}",
                            f.display()
                        ))
                    })?;
                    symbol_id(&object, "").debug_id
                };
                map.insert(id, f.clone());
            }
            self.by_id = Some(map);
        }
        Ok(self.by_id.get_or_insert_with(HashMap::new))
    }

    /// The symbols of module `name` with `debug_id`, or `None` if no store has them. A symbol
    /// file found at the module's path but made for another debug id is an error.
    pub fn find(
        &mut self,
        name: &str,
        debug_id: &str,
    ) -> Result<Option<Arc<SymbolFile>>, ToolError> {
        let key = format!("{name}/{debug_id}");
        if let Some(hit) = self.loaded.get(&key) {
            return Ok(hit.clone());
        }
        let found = self.load(name, debug_id)?.map(Arc::new);
        self.loaded.insert(key, found.clone());
        Ok(found)
    }

    fn load(&mut self, name: &str, debug_id: &str) -> Result<Option<SymbolFile>, ToolError> {
        for root in &self.roots {
            let path = store_path(root, name, debug_id);
            if path.is_file() {
                let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
                let sym = SymbolFile::parse(&text, &path.display().to_string())?;
                if sym.id.debug_id != debug_id {
                    return Err(ToolError::Symbols(format!(
                        "{}: symbol file for debug ID {}, but the profile's {name} has {debug_id}; regenerate the store",
                        path.display(),
                        sym.id.debug_id
                    )));
                }
                return Ok(Some(sym));
            }
        }
        let Some(path) = self.index_files()?.get(debug_id).cloned() else {
            return Ok(None);
        };
        let data = std::fs::read(&path).map_err(|e| io_err(&path, e))?;
        let source = path.display().to_string();
        if data.starts_with(b"MODULE ") {
            return SymbolFile::parse(&String::from_utf8_lossy(&data), &source).map(Some);
        }
        let object =
            Object::parse(&data).map_err(|e| ToolError::Symbols(format!("{source}: {e}")))?;
        let mut text = Vec::new();
        write_sym(&object, &symbol_id(&object, name), &mut text)?;
        SymbolFile::parse(&String::from_utf8_lossy(&text), &source).map(Some)
    }
}
