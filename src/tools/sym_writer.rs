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

/// How much larger than its compressed bytes a compressed section may claim to be.
const MAX_INFLATION: u64 = 100;

/// Refuses an ELF file with a compressed section (`SHF_COMPRESSED`, or GNU `.zdebug_*`) whose
/// stated uncompressed size is more than 100 times its compressed size (plus
/// 1 MiB): the ELF reader allocates that size up front, so a crafted header would make it ask
/// for terabytes and abort. Files it cannot make sense of are left to the ELF reader.
pub fn check_compressed_sections(data: &[u8]) -> Result<(), String> {
    const SHF_COMPRESSED: u64 = 0x800;
    let (Some(&class), Some(&endian)) = (data.get(4), data.get(5)) else {
        return Ok(());
    };
    if data.get(..4) != Some(b"\x7fELF") || !(1..=2).contains(&class) {
        return Ok(());
    }
    let wide = class == 2;
    let big = endian == 2;
    let uint = |at: u64, len: usize| -> Option<u64> {
        let b = data.get(usize::try_from(at).ok()?..)?.get(..len)?;
        let mut v = 0u64;
        for i in 0..len {
            let byte = if big { b[i] } else { b[len - 1 - i] };
            v = v << 8 | byte as u64;
        }
        Some(v)
    };
    let word = if wide { 8 } else { 4 };
    let (Some(shoff), Some(shentsize), Some(shnum), Some(shstrndx)) = (
        uint(if wide { 0x28 } else { 0x20 }, word),
        uint(if wide { 0x3a } else { 0x2e }, 2),
        uint(if wide { 0x3c } else { 0x30 }, 2),
        uint(if wide { 0x3e } else { 0x32 }, 2),
    ) else {
        return Ok(());
    };
    // (flags, offset, size) of section header i.
    let header = |i: u64| -> Option<(u64, u64, u64, u64)> {
        let at = shoff.checked_add(i.checked_mul(shentsize)?)?;
        let name = uint(at, 4)?;
        let (flags, offset, size) = if wide {
            (
                uint(at.saturating_add(8), 8)?,
                uint(at.saturating_add(24), 8)?,
                uint(at.saturating_add(32), 8)?,
            )
        } else {
            (
                uint(at.saturating_add(8), 4)?,
                uint(at.saturating_add(16), 4)?,
                uint(at.saturating_add(20), 4)?,
            )
        };
        Some((name, flags, offset, size))
    };
    let names = header(shstrndx).map(|(_, _, offset, _)| offset);
    for i in 0..shnum.min(65_535) {
        let Some((name, flags, offset, size)) = header(i) else {
            break;
        };
        let limit = size.saturating_mul(MAX_INFLATION).saturating_add(1 << 20);
        let claimed = if flags & SHF_COMPRESSED != 0 {
            // Elf64_Chdr: type, reserved, size; Elf32_Chdr: type, size.
            uint(offset.saturating_add(if wide { 8 } else { 4 }), word)
        } else {
            let zdebug = names
                .and_then(|n| n.checked_add(name))
                .and_then(|at| data.get(usize::try_from(at).ok()?..))
                .is_some_and(|n| n.starts_with(b".zdebug"));
            let zlib = data
                .get(usize::try_from(offset).unwrap_or(usize::MAX)..)
                .is_some_and(|d| d.starts_with(b"ZLIB"));
            (zdebug && zlib)
                .then(|| {
                    let b = data
                        .get(usize::try_from(offset.saturating_add(4)).ok()?..)?
                        .get(..8)?;
                    Some(u64::from_be_bytes(b.try_into().ok()?))
                })
                .flatten()
        };
        if let Some(claimed) = claimed.filter(|&c| c > limit) {
            return Err(format!(
                "section {i} claims {claimed} bytes once decompressed, from {size}: refused"
            ));
        }
    }
    Ok(())
}

/// The `.sym` text for the ELF file `data` as module `name` (`source` names it in errors). A
/// malformed file is an error, never a panic (see [`super::guard`]).
pub fn sym_for_elf(data: &[u8], name: &str, source: &str) -> Result<Vec<u8>, ToolError> {
    check_compressed_sections(data)
        .map_err(|e| ToolError::new(ErrorKind::Symbols, format!("{source}: {e}")))?;
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
