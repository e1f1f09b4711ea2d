//! Writing Breakpad `.sym` files from ELF files with DWARF: `MODULE`, `INFO CODE_ID`, `FILE`,
//! `INLINE_ORIGIN`, `FUNC` with line records and `INLINE`, and `PUBLIC` — the records Mozilla's
//! `dump_syms --inlines` writes (without `STACK` records, which profiles do not need).

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

use symbolic_debuginfo::elf::ElfObject as Object;
use symbolic_debuginfo::{Function, LineInfo};
use symbolic_demangle::{Demangle, DemangleOptions};

use super::{ErrorKind, ToolError};

/// The identity of a module's symbols: what a store path and a profile's module agree on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SymbolId {
    /// File name (e.g. `libc.so.6`).
    pub name: String,
    /// Breakpad debug id with age (33 uppercase hex digits on Linux).
    pub debug_id: String,
    /// Code id (the build ID, uppercase hex), if any.
    pub code_id: Option<String>,
}

/// The identity of the object in `data`, named `name`.
pub fn symbol_id(object: &Object<'_>, name: &str) -> SymbolId {
    SymbolId {
        name: name.to_string(),
        debug_id: object.debug_id().breakpad().to_string().to_uppercase(),
        code_id: object.code_id().map(|c| c.as_str().to_uppercase()),
    }
}

fn demangle(name: &symbolic_common::Name<'_>) -> String {
    name.try_demangle(DemangleOptions::name_only().parameters(true))
        .into_owned()
}

#[derive(Default)]
struct Tables {
    files: HashMap<String, usize>,
    origins: HashMap<String, usize>,
}

impl Tables {
    fn file(&mut self, line: &LineInfo<'_>, comp_dir: &[u8]) -> usize {
        let mut path = line.file.path_str();
        if !path.starts_with('/') && !comp_dir.is_empty() {
            path = format!(
                "{}/{}",
                String::from_utf8_lossy(comp_dir).trim_end_matches('/'),
                path
            );
        }
        let n = self.files.len();
        *self.files.entry(path).or_insert(n)
    }

    fn origin(&mut self, name: String) -> usize {
        let n = self.origins.len();
        *self.origins.entry(name).or_insert(n)
    }
}

/// One `FUNC` with its records, ready to print.
struct FuncRecord {
    address: u64,
    size: u64,
    name: String,
    inlines: Vec<(usize, u64, usize, usize, u64, u64)>,
    lines: Vec<(u64, u64, u64, usize)>,
}

/// Collects `f`'s inline records (children at `depth`) and innermost line records.
fn collect(f: &Function<'_>, depth: usize, t: &mut Tables, out: &mut FuncRecord) {
    for line in &f.lines {
        // A line that starts where an inlinee starts, covering it, is that inlinee's call site.
        let call = f
            .inlinees
            .iter()
            .find(|c| c.address == line.address && Some(c.size) == line.size);
        if call.is_none() {
            let file = t.file(line, f.compilation_dir);
            out.lines
                .push((line.address, line.size.unwrap_or(1), line.line, file));
        }
    }
    for c in &f.inlinees {
        let site = f.lines.iter().find(|l| l.address == c.address);
        let (call_line, call_file) = match site {
            Some(l) => (l.line, t.file(l, f.compilation_dir)),
            None => (0, 0),
        };
        let origin = t.origin(demangle(&c.name));
        out.inlines
            .push((depth, call_line, call_file, origin, c.address, c.size));
        collect(c, depth + 1, t, out);
    }
}

/// The `.sym` text for the ELF file `data` as module `name` (`source` names it in errors). A
/// malformed file is an error, never a panic (see [`super::guard`]).
pub fn sym_for_elf(data: &[u8], name: &str, source: &str) -> Result<Vec<u8>, ToolError> {
    super::guard(source, || {
        let object = Object::parse(data)
            .map_err(|e| ToolError::new(ErrorKind::Symbols, format!("{source}: {e}")))?;
        let mut text = Vec::new();
        write_sym(&object, &symbol_id(&object, name), &mut text)?;
        Ok(text)
    })
}

/// Writes the `.sym` text for the module `id` to `out`, with functions and symbols from
/// `object` (the module itself, or its separate debug file).
pub fn write_sym(
    object: &Object<'_>,
    id: &SymbolId,
    out: &mut impl Write,
) -> Result<(), ToolError> {
    let name = &id.name;
    let mut t = Tables::default();
    let mut funcs: BTreeMap<u64, FuncRecord> = BTreeMap::new();
    let session = object.debug_session().map_err(|e| {
        ToolError::new(
            ErrorKind::Symbols,
            format!("{name}: cannot read debug info: {e}"),
        )
    })?;
    for f in session.functions() {
        let f = f.map_err(|e| {
            ToolError::new(ErrorKind::Symbols, format!("{name}: bad debug info: {e}"))
        })?;
        if f.size == 0 || funcs.contains_key(&f.address) {
            continue;
        }
        let mut rec = FuncRecord {
            address: f.address,
            size: f.size,
            name: demangle(&f.name),
            inlines: Vec::new(),
            lines: Vec::new(),
        };
        collect(&f, 0, &mut t, &mut rec);
        rec.lines.sort_unstable();
        funcs.insert(f.address, rec);
    }
    // Symbols not covered by a function become PUBLIC records.
    let covered = |addr: u64| {
        funcs
            .range(..=addr)
            .next_back()
            .is_some_and(|(_, f)| addr < f.address + f.size)
    };
    let mut publics: BTreeMap<u64, String> = BTreeMap::new();
    for s in object.symbols() {
        if let Some(n) = s.name.as_deref() {
            if !n.is_empty() && !covered(s.address) {
                let name = symbolic_common::Name::from(n);
                publics.entry(s.address).or_insert_with(|| demangle(&name));
            }
        }
    }
    let io =
        |e: io::Error| ToolError::new(ErrorKind::Io, format!("writing symbols for {name}: {e}"));
    writeln!(out, "MODULE Linux x86_64 {} {}", id.debug_id, name).map_err(io)?;
    if let Some(code_id) = &id.code_id {
        writeln!(out, "INFO CODE_ID {code_id}").map_err(io)?;
    }
    writeln!(out, "INFO GENERATOR vignette {}", env!("CARGO_PKG_VERSION")).map_err(io)?;
    let mut files: Vec<_> = t.files.iter().collect();
    files.sort_by_key(|(_, &i)| i);
    for (path, i) in files {
        writeln!(out, "FILE {i} {path}").map_err(io)?;
    }
    let mut origins: Vec<_> = t.origins.iter().collect();
    origins.sort_by_key(|(_, &i)| i);
    for (origin, i) in origins {
        writeln!(out, "INLINE_ORIGIN {i} {origin}").map_err(io)?;
    }
    for f in funcs.values() {
        writeln!(out, "FUNC {:x} {:x} 0 {}", f.address, f.size, f.name).map_err(io)?;
        for &(depth, call_line, call_file, origin, addr, size) in &f.inlines {
            writeln!(
                out,
                "INLINE {depth} {call_line} {call_file} {origin} {addr:x} {size:x}"
            )
            .map_err(io)?;
        }
        for &(addr, size, line, file) in &f.lines {
            writeln!(out, "{addr:x} {size:x} {line} {file}").map_err(io)?;
        }
    }
    for (addr, name) in publics {
        writeln!(out, "PUBLIC {addr:x} 0 {name}").map_err(io)?;
    }
    Ok(())
}
