//! Writing Breakpad `.sym` files from ELF files with DWARF, and from PE files (with the DWARF
//! mingw puts in them): `MODULE`, `INFO CODE_ID`, `FILE`, `INLINE_ORIGIN`, `FUNC` with line
//! records and `INLINE`, and `PUBLIC` — the records Mozilla's `dump_syms --inlines` writes
//! (without `STACK` records, which profiles do not need). One difference: a file without debug
//! info gets a `FUNC` of its size, without lines, for each sized symbol where dump_syms writes
//! a `PUBLIC`, so code past a symbol's end is not taken for it.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::io::{self, Write};

use symbolic_debuginfo::elf::ElfObject as Object;
use symbolic_debuginfo::macho::MachObject;
use symbolic_debuginfo::pdb::PdbObject;
use symbolic_debuginfo::pe::PeObject;
use symbolic_debuginfo::{DebugSession, Function, LineInfo, ObjectLike};
use symbolic_demangle::{Demangle, DemangleOptions};

use super::elf_sections::{check_compressed_sections, executable_sections};
use super::{ErrorKind, ToolError};

/// The identity of a module's symbols: what a store path and a profile's module agree on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SymbolId {
    /// The debug file's name, which the store is keyed by: an ELF file's own name (e.g.
    /// `libc.so.6`), a PE file's PDB name (or its own name when it names no PDB).
    pub name: String,
    /// Breakpad debug id with age (33 uppercase hex digits).
    pub debug_id: String,
    /// Code id (the build ID, uppercase hex; for PE the time stamp and image size), if any.
    pub code_id: Option<String>,
}

/// The identity of the ELF object in `data`, named `name`.
pub fn symbol_id(object: &Object<'_>, name: &str) -> SymbolId {
    SymbolId {
        name: name.to_string(),
        debug_id: object.debug_id().breakpad().to_string().to_uppercase(),
        code_id: object.code_id().map(|c| c.as_str().to_uppercase()),
    }
}

/// The identity of the PE object `object`, whose file is named `file_name`: keyed by its PDB's
/// name when its CodeView record names one, else by its own name (as profiles key it).
pub fn pe_symbol_id(object: &PeObject<'_>, file_name: &str) -> SymbolId {
    let pdb = object
        .debug_file_name()
        .map(|p| p.rsplit(['\\', '/']).next().unwrap_or_default().to_string())
        .filter(|p| !p.is_empty());
    SymbolId {
        name: pdb.unwrap_or_else(|| file_name.to_string()),
        debug_id: object.debug_id().breakpad().to_string().to_uppercase(),
        code_id: object.code_id().map(|c| c.as_str().to_uppercase()),
    }
}

/// Where a module comes from, for the `MODULE` and `INFO CODE_ID` lines.
pub enum Origin<'a> {
    /// An ELF file: `MODULE Linux`, with its executable sections (for the `PUBLIC` records of
    /// code outside every symbol).
    Elf(&'a [(String, u64)]),
    /// A PE file named `file`: `MODULE windows`, and the code file after the code id.
    Pe {
        /// The executable's or DLL's file name.
        file: &'a str,
        /// The functions its COFF symbol table names, (RVA, name) ([`coff_functions`]).
        coff: &'a [(u64, String)],
    },
    /// A Mach-O file: `MODULE Mac`.
    MachO,
}

/// The name a `.sym` file gives `name`, as Mozilla's dump_syms writes it: compiler suffixes
/// of clones and split parts removed (`foo.constprop.0`, `foo.cold`, `foo [clone .isra.0]` all
/// read `foo`), demangled with parameters, control characters dropped (a name is one line).
fn demangle(name: &symbolic_common::Name<'_>) -> String {
    let raw = name.as_str();
    let fixed =
        strip_compiler_suffixes(raw).replace("`anonymous namespace'", "(anonymous namespace)");
    let fixed = symbolic_common::Name::new(fixed.as_str(), name.mangling(), name.language());
    let mut text = fixed
        .try_demangle(DemangleOptions::name_only().parameters(true))
        .into_owned();
    text.retain(|c| !c.is_ascii_control());
    text
}

/// Suffixes compilers append to a function's symbol when they clone or split it (GCC's
/// `.constprop.N`, `.isra.N`, `.part.N`, `.cold`; LLVM's `.llvm.N`; and their demangled
/// form ` [clone .isra.0]`).
const CLONE_SUFFIXES: [&[u8]; 8] = [
    b"cold",
    b"constprop",
    b"llvm",
    b"localalias",
    b"lto_priv",
    b"isra",
    b"part",
    b"str",
];

/// `name` without its trailing run of compiler suffixes: the shortest prefix whose rest is a
/// sequence of `.WORD`, `.WORD.DIGITS` (WORD one of [`CLONE_SUFFIXES`]) and ` [clone ...] `
/// tokens, which is what dump_syms removes. Linear in the name's length.
fn strip_compiler_suffixes(name: &str) -> &str {
    let b = name.as_bytes();
    let n = b.len();
    // next_close[i]: the first ']' at or after i.
    let mut next_close = vec![n; n + 1];
    for i in (0..n).rev() {
        next_close[i] = if b[i] == b']' { i } else { next_close[i + 1] };
    }
    // rest_ok[i]: b[i..] is a (possibly empty) sequence of tokens.
    let mut rest_ok = vec![false; n + 1];
    rest_ok[n] = true;
    for i in (0..n).rev() {
        let mut ends = arrayvec::ArrayVec::<usize, 3>::new();
        if b[i] == b'.' {
            if let Some(w) = CLONE_SUFFIXES.iter().find(|w| b[i + 1..].starts_with(w)) {
                let j = i + 1 + w.len();
                ends.push(j);
                let digits = b
                    .get(j + 1..)
                    .map_or(0, |r| r.iter().take_while(|c| c.is_ascii_digit()).count());
                if b.get(j) == Some(&b'.') && digits > 0 {
                    ends.push(j + 1 + digits);
                }
            }
        } else {
            let open = if b[i] == b' ' { i + 1 } else { i };
            if b[open..].starts_with(b"[clone") && next_close[open] < n {
                let close = next_close[open] + 1;
                ends.push(close);
                if b.get(close) == Some(&b' ') {
                    ends.push(close + 1);
                }
            }
        }
        rest_ok[i] = ends.iter().any(|&e| rest_ok[e]);
    }
    // A name that is nothing but suffixes stays as it is.
    let cut = (1..=n).find(|&i| rest_ok[i]).unwrap_or(n);
    &name[..cut]
}

/// The functions the COFF symbol table of the PE file `data` names, (RVA, raw name): what
/// `nm` lists as `T`/`t` in a mingw build (images built by MSVC keep none). Empty when there is
/// no table or it cannot be read.
pub fn coff_functions(data: &[u8]) -> Vec<(u64, String)> {
    use goblin::pe::symbol::{
        IMAGE_SYM_CLASS_EXTERNAL, IMAGE_SYM_CLASS_STATIC, IMAGE_SYM_DTYPE_FUNCTION,
    };
    let Ok(pe) = goblin::pe::PE::parse(data) else {
        return Vec::new();
    };
    let header = &pe.header.coff_header;
    let (Ok(Some(symbols)), Ok(Some(strings))) = (header.symbols(data), header.strings(data))
    else {
        return Vec::new();
    };
    symbols
        .iter()
        .filter(|(_, _, sym)| {
            sym.derived_type() == IMAGE_SYM_DTYPE_FUNCTION
                && matches!(
                    sym.storage_class,
                    IMAGE_SYM_CLASS_EXTERNAL | IMAGE_SYM_CLASS_STATIC
                )
        })
        .filter_map(|(_, short, sym)| {
            let section = (sym.section_number as usize)
                .checked_sub(1)
                .and_then(|i| pe.sections.get(i))?;
            let name = match short {
                Some(n) => n,
                None => sym.name(&strings).ok()?,
            };
            Some((
                section.virtual_address as u64 + sym.value as u64,
                name.to_string(),
            ))
        })
        .collect()
}

/// Whether a source path from debug info is absolute, on the system that built the binary:
/// `/…`, or Windows' `\…` and `C:\…` (mingw's DWARF names Rust's standard library
/// `\rustc\<hash>\library\…`, which joined onto the build folder named no file at all).
fn is_absolute(path: &str) -> bool {
    let b = path.as_bytes();
    matches!(b.first(), Some(b'/' | b'\\'))
        || (b.len() >= 3
            && b[0].is_ascii_alphabetic()
            && b[1] == b':'
            && matches!(b[2], b'\\' | b'/'))
}

#[derive(Default)]
struct Tables {
    files: HashMap<String, usize>,
    origins: HashMap<String, usize>,
}

impl Tables {
    fn file(&mut self, line: &LineInfo<'_>, comp_dir: &[u8]) -> usize {
        let mut path = line.file.path_str();
        if !is_absolute(&path) && !comp_dir.is_empty() {
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
    /// Another function shares this address (identical code folding).
    multiple: bool,
    name: String,
    inlines: Vec<(usize, u64, usize, usize, u64, u64)>,
    lines: Vec<(u64, u64, u64, usize)>,
}

/// One `PUBLIC` record: a symbol outside every function.
struct Public {
    name: String,
    /// The symbol's size: symbols inside it get no record of their own.
    size: u64,
    /// Several symbols start here.
    multiple: bool,
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
    check_compressed_sections(data)
        .map_err(|e| ToolError::new(ErrorKind::Symbols, format!("{source}: {e}")))?;
    super::guard(source, || {
        let object = Object::parse(data)
            .map_err(|e| ToolError::new(ErrorKind::Symbols, format!("{source}: {e}")))?;
        let mut text = Vec::new();
        let sections = executable_sections(object.data());
        write_sym(
            &object,
            &symbol_id(&object, name),
            &Origin::Elf(&sections),
            &mut text,
        )?;
        Ok(text)
    })
}

/// The identity and `.sym` text of the PE file `data` named `file_name` (`source` names it in
/// errors); functions and lines come from the DWARF mingw writes into the file, symbols from
/// its exports. A malformed file is an error, never a panic.
pub fn sym_for_pe(
    data: &[u8],
    file_name: &str,
    source: &str,
) -> Result<(SymbolId, Vec<u8>), ToolError> {
    super::guard(source, || {
        let object = PeObject::parse(data).map_err(|e| {
            ToolError::new(ErrorKind::Symbols, format!("{source}: not a PE file: {e}"))
        })?;
        let id = pe_symbol_id(&object, file_name);
        let mut text = Vec::new();
        let coff = coff_functions(data);
        let origin = Origin::Pe {
            file: file_name,
            coff: &coff,
        };
        write_sym(&object, &id, &origin, &mut text)?;
        Ok((id, text))
    })
}

/// Whether `data` starts like a Mach-O file: a 32- or 64-bit image or a universal (fat) one.
pub fn is_macho(data: &[u8]) -> bool {
    matches!(
        data.get(..4),
        Some([0xcf, 0xfa, 0xed, 0xfe] | [0xce, 0xfa, 0xed, 0xfe] | [0xca, 0xfe, 0xba, 0xbe])
    )
}

/// The identity and `.sym` text of the Mach-O file `data` named `file_name` (`source` names
/// it in errors): functions and lines from `dsym` (the DWARF file of its `.dSYM` bundle,
/// which must carry the same UUID) when given, else its symbols only, as dump_syms writes
/// them. A universal binary is refused (one architecture per `.sym`: `lipo -thin` first).
pub fn sym_for_macho(
    data: &[u8],
    dsym: Option<&[u8]>,
    file_name: &str,
    source: &str,
) -> Result<(SymbolId, Vec<u8>), ToolError> {
    let err = |m: String| ToolError::new(ErrorKind::Symbols, format!("{source}: {m}"));
    if data.starts_with(&[0xca, 0xfe, 0xba, 0xbe]) {
        return Err(err(
            "a universal binary: extract one architecture first (lipo -thin ARCH)".into(),
        ));
    }
    super::guard(source, || {
        let object = MachObject::parse(data).map_err(|e| err(format!("not a Mach-O file: {e}")))?;
        let id = SymbolId {
            name: file_name.to_string(),
            debug_id: object.debug_id().breakpad().to_string().to_uppercase(),
            code_id: object.code_id().map(|c| c.as_str().to_uppercase()),
        };
        let mut text = Vec::new();
        match dsym {
            Some(dsym) => {
                let debug = MachObject::parse(dsym)
                    .map_err(|e| err(format!("its dSYM is not a Mach-O file: {e}")))?;
                let debug_id = debug.debug_id().breakpad().to_string().to_uppercase();
                if debug_id != id.debug_id {
                    return Err(err(format!(
                        "the dSYM found for it is another build's (debug ID {debug_id}, not {}): \
                         point vignette at the matching dSYM",
                        id.debug_id
                    )));
                }
                write_sym(&debug, &id, &Origin::MachO, &mut text)?;
            }
            None => write_sym(&object, &id, &Origin::MachO, &mut text)?,
        }
        Ok((id, text))
    })
}

/// The identity and `.sym` text of the PDB file `data` named `file_name` (`source` names it in
/// errors): keyed by the PDB's name, as dump_syms keys it; `code` is the executable or DLL it
/// belongs to, if found next to it (file name and code id, for `INFO CODE_ID`).
pub fn sym_for_pdb(
    data: &[u8],
    file_name: &str,
    code: Option<(&str, String)>,
    source: &str,
) -> Result<(SymbolId, Vec<u8>), ToolError> {
    super::guard(source, || {
        let object = PdbObject::parse(data).map_err(|e| {
            ToolError::new(ErrorKind::Symbols, format!("{source}: not a PDB file: {e}"))
        })?;
        let (code_file, code_id) = match code {
            Some((file, id)) => (Some(file), Some(id)),
            None => (None, None),
        };
        let id = SymbolId {
            name: file_name.to_string(),
            debug_id: object.debug_id().breakpad().to_string().to_uppercase(),
            code_id,
        };
        let mut text = Vec::new();
        let origin = Origin::Pe {
            file: code_file.unwrap_or(""),
            coff: &[],
        };
        write_sym(&object, &id, &origin, &mut text)?;
        Ok((id, text))
    })
}

/// Merges line records `(address, size, line, file)` (sorted by address) that continue one
/// another with the same line and file, as dump_syms does: rows that differ only in their
/// column (clang writes those) say nothing a `.sym` file can.
fn merge_adjacent_lines(lines: &mut Vec<(u64, u64, u64, usize)>) {
    lines.dedup_by(|next, kept| {
        let continues =
            kept.0.saturating_add(kept.1) == next.0 && (kept.2, kept.3) == (next.2, next.3);
        if continues {
            kept.1 += next.1;
        }
        continues
    });
}

/// Writes the `.sym` text for the module `id` to `out`, with functions and symbols from
/// `object` (the module itself, or its separate debug file).
pub fn write_sym<'data, 'object, O>(
    object: &'object O,
    id: &SymbolId,
    origin: &Origin<'_>,
    out: &mut impl Write,
) -> Result<(), ToolError>
where
    O: ObjectLike<'data, 'object>,
    O::Error: Display,
{
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
        if f.size == 0 || f.address == 0 {
            continue;
        }
        if let Some(other) = funcs.get_mut(&f.address) {
            // Identical code folded into one address: dump_syms' `FUNC m`.
            other.multiple = true;
            continue;
        }
        let mut rec = FuncRecord {
            address: f.address,
            size: f.size,
            multiple: false,
            name: demangle(&f.name),
            inlines: Vec::new(),
            lines: Vec::new(),
        };
        collect(&f, 0, &mut t, &mut rec);
        rec.lines.sort_unstable();
        merge_adjacent_lines(&mut rec.lines);
        funcs.insert(f.address, rec);
    }
    // Symbols that do not fall inside a function or an earlier symbol become PUBLIC records,
    // in the symbol table's order, as dump_syms picks them.
    let mut publics: BTreeMap<u64, Public> = BTreeMap::new();
    // A PE file's own symbols are its exports; mingw also keeps a COFF symbol table, which
    // names `main`, the runtime's entry points and every static function: after the exports.
    let coff = match origin {
        Origin::Pe { coff, .. } => *coff,
        _ => &[],
    };
    let symbols = (object.symbols())
        .map(|s| (s.address, s.name.map(|n| n.to_string()), s.size))
        .chain(coff.iter().map(|(a, n)| (*a, Some(n.clone()), 0)));
    for (address, name, size) in symbols {
        let Some(n) = name.as_deref().filter(|n| !n.is_empty()) else {
            continue;
        };
        let last_func = funcs
            .range(..address)
            .next_back()
            .map(|(&a, f)| (a, f.size));
        let last_public = publics
            .range(..address)
            .next_back()
            .map(|(&a, p)| (a, p.size));
        let inside = last_func
            .max(last_public)
            .is_some_and(|(a, size)| address < a.saturating_add(size));
        if inside || funcs.contains_key(&address) {
            continue;
        }
        publics
            .entry(address)
            .and_modify(|p| p.multiple = true)
            .or_insert_with(|| Public {
                name: demangle(&symbolic_common::Name::from(n)),
                size,
                multiple: false,
            });
    }
    // Code outside every symbol (PLT stubs) still says where it is, as in dump_syms' files.
    let sections = match origin {
        Origin::Elf(sections) => *sections,
        Origin::Pe { .. } | Origin::MachO => &[],
    };
    for (section, addr) in sections {
        let (section, addr) = (section, *addr);
        if !funcs.contains_key(&addr) {
            let mut name = format!("<{section} ELF section in {name}>");
            name.retain(|c| !c.is_ascii_control());
            publics.entry(addr).or_insert(Public {
                name,
                size: 0,
                multiple: false,
            });
        }
    }
    // A file without debug info (a stripped binary's symbol tables): a symbol whose size is
    // known becomes a FUNC of that size, so code past its end (a static function the tables
    // do not name) is not taken for it, as a PUBLIC record, which lasts until the next one,
    // would have it. dump_syms writes PUBLIC records here; Breakpad readers take both.
    if funcs.is_empty() {
        let sized: Vec<u64> = (publics.iter())
            .filter(|(_, p)| p.size > 0)
            .map(|(&a, _)| a)
            .collect();
        for address in sized {
            if let Some(p) = publics.remove(&address) {
                funcs.insert(
                    address,
                    FuncRecord {
                        address,
                        size: p.size,
                        multiple: p.multiple,
                        name: p.name,
                        inlines: Vec::new(),
                        lines: Vec::new(),
                    },
                );
            }
        }
    }
    let io =
        |e: io::Error| ToolError::new(ErrorKind::Io, format!("writing symbols for {name}: {e}"));
    // Breakpad's architecture names (`x86_64`, `arm64`), as dump_syms writes them.
    let arch = object.arch().name();
    let os = match origin {
        Origin::Elf(_) => "Linux",
        Origin::Pe { .. } => "windows",
        Origin::MachO => "Mac",
    };
    writeln!(out, "MODULE {os} {arch} {} {}", id.debug_id, name).map_err(io)?;
    match (&id.code_id, origin) {
        (Some(code_id), Origin::Pe { file, .. }) => {
            let file: String = file.chars().filter(|c| !c.is_control()).collect();
            writeln!(out, "INFO CODE_ID {code_id} {file}").map_err(io)?;
        }
        (Some(code_id), _) => writeln!(out, "INFO CODE_ID {code_id}").map_err(io)?,
        (None, _) => {}
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
        let m = if f.multiple { "m " } else { "" };
        writeln!(out, "FUNC {m}{:x} {:x} 0 {}", f.address, f.size, f.name).map_err(io)?;
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
    for (addr, p) in publics {
        let m = if p.multiple { "m " } else { "" };
        writeln!(out, "PUBLIC {m}{addr:x} 0 {}", p.name).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use symbolic_common::{Language, Name, NameMangling};

    #[test]
    fn compiler_suffixes_are_stripped_as_dump_syms_strips_them() {
        for name in [
            "hello",
            "hello.llvm.1234567890",
            "hello.str.158.llvm.1786438672924483777",
            "hello [clone .constprop.0] [clone .isra.0] [clone .cold]",
            "hello.localalias",
            "hello.constprop.0.isra.0",
            "hello.cold",
            "hello.part.0.cold.12",
        ] {
            assert_eq!(strip_compiler_suffixes(name), "hello", "{name}");
        }
        // Labels it does not know, and dots that are not suffixes, stay.
        for name in [
            "hello [clone foo][bar]",
            "hello.unknown.0",
            "hello.cold.x",
            "hello.0",
            ".cold",
            "",
        ] {
            assert_eq!(strip_compiler_suffixes(name), name);
        }
        assert_eq!(strip_compiler_suffixes("a.cold [clone .x] "), "a");
        // Linear on adversarial names (a quadratic scan would take minutes here).
        let long = "[clone".repeat(200_000);
        assert_eq!(strip_compiler_suffixes(&long), long);
        let long = format!("f{}", ".cold.1".repeat(200_000));
        assert_eq!(strip_compiler_suffixes(&long), "f");
    }

    #[test]
    fn windows_paths_are_not_joined_onto_the_build_folder() {
        for path in [
            "/usr/src/a.c",
            "\\rustc\\abc\\library\\std\\src\\rt.rs",
            "C:\\src\\a.c",
            "d:/src/a.c",
        ] {
            assert!(is_absolute(path), "{path}");
        }
        for path in ["src/main.rs", "library\\std\\src\\rt.rs", "", "C:", "1:\\x"] {
            assert!(!is_absolute(path), "{path}");
        }
    }

    #[test]
    fn names_are_demangled_on_one_line() {
        let name = |s: &'static str, m| demangle(&Name::new(s, m, Language::Unknown));
        assert_eq!(
            name(
                "_ZN6shapesL5firstEPKNS_3BigEl.isra.0",
                NameMangling::Mangled
            ),
            "shapes::first(shapes::Big const*, long)"
        );
        assert_eq!(name("main.cold", NameMangling::Unmangled), "main");
        assert_eq!(
            name("evil\nFUNC 0 1 0 injected", NameMangling::Unmangled),
            "evilFUNC 0 1 0 injected"
        );
    }
}
