//! Reading Breakpad `.sym` files (ours or Mozilla's `dump_syms`) and looking addresses up in
//! them, inline frames included.

use std::collections::HashMap;

use super::sym_writer::SymbolId;
use super::{ErrorKind, ToolError};

/// A source location of one (possibly inlined) function frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Location {
    /// Function name.
    pub function: String,
    /// Source file, if known.
    pub file: Option<String>,
    /// Line number, 0 if unknown.
    pub line: u32,
}

#[derive(Debug, Clone)]
struct Inline {
    depth: u32,
    call_line: u32,
    call_file: u64,
    origin: u64,
    ranges: Vec<(u64, u64)>,
}

#[derive(Debug, Clone)]
struct Func {
    address: u64,
    size: u64,
    name: String,
    /// (address, size, line, file), sorted.
    lines: Vec<(u64, u64, u32, u64)>,
    inlines: Vec<Inline>,
}

/// A parsed symbol file.
#[derive(Debug, Clone)]
pub struct SymbolFile {
    /// The module it describes.
    pub id: SymbolId,
    /// Where it was read from (as given to [`SymbolFile::parse`]).
    pub source: String,
    files: HashMap<u64, String>,
    origins: HashMap<u64, String>,
    funcs: Vec<Func>,
    publics: Vec<(u64, String)>,
}

fn hex(s: &str, what: &str, at: usize) -> Result<u64, String> {
    u64::from_str_radix(s, 16).map_err(|_| format!("line {at}: bad {what} {s:?}"))
}

fn dec(s: &str, what: &str, at: usize) -> Result<u64, String> {
    s.parse()
        .map_err(|_| format!("line {at}: bad {what} {s:?}"))
}

impl SymbolFile {
    /// Parses `.sym` text. `source` names the file in errors.
    pub fn parse(text: &str, source: &str) -> Result<SymbolFile, ToolError> {
        let mut sym = Self::parse_inner(text)
            .map_err(|e| ToolError::new(ErrorKind::Symbols, format!("{source}: {e}")))?;
        sym.source = source.to_string();
        Ok(sym)
    }

    fn parse_inner(text: &str) -> Result<SymbolFile, String> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
        let (_, first) = lines
            .next()
            .ok_or("empty file: not a Breakpad symbol file")?;
        let mut head = first.splitn(5, ' ');
        let (Some("MODULE"), Some(_os), Some(_arch), Some(debug_id), Some(name)) = (
            head.next(),
            head.next(),
            head.next(),
            head.next(),
            head.next(),
        ) else {
            return Err("the first line is not a MODULE record: not a Breakpad symbol file".into());
        };
        let mut sym = SymbolFile {
            source: String::new(),
            id: SymbolId {
                name: name.to_string(),
                debug_id: debug_id.to_uppercase(),
                code_id: None,
            },
            files: HashMap::new(),
            origins: HashMap::new(),
            funcs: Vec::new(),
            publics: Vec::new(),
        };
        for (at, line) in lines {
            let mut words = line.split(' ');
            match words.next().unwrap_or("") {
                "" | "STACK" => {}
                "INFO" => {
                    if words.next() == Some("CODE_ID") {
                        sym.id.code_id = words.next().map(str::to_uppercase);
                    }
                }
                "FILE" => {
                    let mut p = line.splitn(3, ' ').skip(1);
                    let n = dec(p.next().unwrap_or(""), "FILE number", at)?;
                    sym.files.insert(n, p.next().unwrap_or("").to_string());
                }
                "INLINE_ORIGIN" => {
                    let mut p = line.splitn(3, ' ').skip(1);
                    let n = dec(p.next().unwrap_or(""), "INLINE_ORIGIN number", at)?;
                    sym.origins.insert(n, p.next().unwrap_or("").to_string());
                }
                "FUNC" => {
                    let rest = line.strip_prefix("FUNC ").unwrap_or("");
                    let rest = rest.strip_prefix("m ").unwrap_or(rest);
                    let mut p = rest.splitn(4, ' ');
                    let address = hex(p.next().unwrap_or(""), "FUNC address", at)?;
                    let size = hex(p.next().unwrap_or(""), "FUNC size", at)?;
                    hex(p.next().unwrap_or(""), "FUNC parameter size", at)?;
                    let name = p.next().unwrap_or("").to_string();
                    sym.funcs.push(Func {
                        address,
                        size,
                        name,
                        lines: Vec::new(),
                        inlines: Vec::new(),
                    });
                }
                "INLINE" => {
                    let f = sym
                        .funcs
                        .last_mut()
                        .ok_or(format!("line {at}: INLINE outside a FUNC"))?;
                    let nums: Vec<&str> = words.collect();
                    if nums.len() < 6 || !nums.len().is_multiple_of(2) {
                        return Err(format!("line {at}: malformed INLINE record"));
                    }
                    let ranges = nums[4..]
                        .chunks(2)
                        .map(|r| {
                            Ok((
                                hex(r[0], "INLINE address", at)?,
                                hex(r[1], "INLINE size", at)?,
                            ))
                        })
                        .collect::<Result<_, String>>()?;
                    f.inlines.push(Inline {
                        depth: dec(nums[0], "INLINE depth", at)? as u32,
                        call_line: dec(nums[1], "INLINE call line", at)? as u32,
                        call_file: dec(nums[2], "INLINE call file", at)?,
                        origin: dec(nums[3], "INLINE origin", at)?,
                        ranges,
                    });
                }
                "PUBLIC" => {
                    let rest = line.strip_prefix("PUBLIC ").unwrap_or("");
                    let rest = rest.strip_prefix("m ").unwrap_or(rest);
                    let mut p = rest.splitn(3, ' ');
                    let address = hex(p.next().unwrap_or(""), "PUBLIC address", at)?;
                    hex(p.next().unwrap_or(""), "PUBLIC parameter size", at)?;
                    sym.publics
                        .push((address, p.next().unwrap_or("").to_string()));
                }
                first => {
                    // A line record: address size line file, all belonging to the last FUNC.
                    let nums: Vec<&str> = std::iter::once(first).chain(words).collect();
                    if nums.len() != 4 {
                        return Err(format!("line {at}: unknown record {line:?}"));
                    }
                    let f = sym
                        .funcs
                        .last_mut()
                        .ok_or(format!("line {at}: line record outside a FUNC"))?;
                    f.lines.push((
                        hex(nums[0], "line address", at)?,
                        hex(nums[1], "line size", at)?,
                        dec(nums[2], "line number", at)? as u32,
                        dec(nums[3], "file number", at)?,
                    ));
                }
            }
        }
        sym.funcs.sort_by_key(|f| f.address);
        for f in &mut sym.funcs {
            f.lines.sort_unstable();
        }
        sym.publics.sort();
        Ok(sym)
    }

    /// Number of functions.
    pub fn function_count(&self) -> usize {
        self.funcs.len()
    }

    /// The frames at module-relative address `addr`, innermost (most inlined) first; empty if
    /// no function or public symbol covers it.
    pub fn lookup(&self, addr: u64) -> Vec<Location> {
        let i = self.funcs.partition_point(|f| f.address <= addr);
        let before = i.checked_sub(1).map(|i| &self.funcs[i]);
        let Some(f) = before.filter(|f| addr < f.address.saturating_add(f.size)) else {
            return self.lookup_public(addr, before.map(|f| f.address));
        };
        let file = |n: u64| self.files.get(&n).cloned();
        let li = f.lines.partition_point(|l| l.0 <= addr);
        let mut loc = li
            .checked_sub(1)
            .map(|i| f.lines[i])
            .filter(|l| addr < l.0.saturating_add(l.1.max(1)))
            .map_or((None, 0), |l| (file(l.3), l.2));
        let mut inlines: Vec<&Inline> = f
            .inlines
            .iter()
            .filter(|inl| {
                inl.ranges
                    .iter()
                    .any(|&(a, s)| a <= addr && addr < a.saturating_add(s))
            })
            .collect();
        inlines.sort_by_key(|inl| std::cmp::Reverse(inl.depth));
        let mut frames = Vec::with_capacity(inlines.len() + 1);
        for inl in inlines {
            let name = self
                .origins
                .get(&inl.origin)
                .cloned()
                .unwrap_or_else(|| format!("<inline origin {}>", inl.origin));
            frames.push(Location {
                function: name,
                file: loc.0,
                line: loc.1,
            });
            loc = (file(inl.call_file), inl.call_line);
        }
        frames.push(Location {
            function: f.name.clone(),
            file: loc.0,
            line: loc.1,
        });
        frames
    }

    /// The public symbol before `addr`, unless the function starting at `func` (the last
    /// one before `addr`, which ends before it) lies between: as Breakpad's resolver, a
    /// public symbol does not reach past a function.
    fn lookup_public(&self, addr: u64, func: Option<u64>) -> Vec<Location> {
        let i = self.publics.partition_point(|p| p.0 <= addr);
        match i
            .checked_sub(1)
            .filter(|&i| func.is_none_or(|f| self.publics[i].0 > f))
        {
            Some(i) => vec![Location {
                function: self.publics[i].1.clone(),
                file: None,
                line: 0,
            }],
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYM: &str = "MODULE Linux x86_64 7DD4E2B7AD9B626374162F3BE1737BAF0 demo
INFO CODE_ID B7E2D47D9BAD6362
FILE 0 /src/main.rs
FILE 1 /src/lib with space.rs
INLINE_ORIGIN 0 inlined_outer
INLINE_ORIGIN 1 inlined_inner
FUNC 1000 40 0 demo::main
INLINE 0 10 0 0 1010 20
INLINE 1 20 1 1 1018 8
1000 10 5 0
1010 8 21 1
1018 8 30 1
1020 10 11 0
1030 10 12 0
FUNC m 2000 10 0 demo::with spaces(int, int)
2000 10 99 0
PUBLIC 3000 0 public_thing
STACK CFI INIT 1000 40 .cfa: $rsp 8 +
";

    #[test]
    fn parses_and_resolves_inline_frames() {
        let s = SymbolFile::parse(SYM, "demo.sym").unwrap();
        assert_eq!(s.id.debug_id, "7DD4E2B7AD9B626374162F3BE1737BAF0");
        assert_eq!(s.id.code_id.as_deref(), Some("B7E2D47D9BAD6362"));
        assert_eq!(s.function_count(), 2);
        let names = |a| {
            s.lookup(a)
                .into_iter()
                .map(|l| (l.function, l.line))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(0x1004), [("demo::main".into(), 5)]);
        assert_eq!(
            names(0x1012),
            [("inlined_outer".into(), 21), ("demo::main".into(), 10)]
        );
        assert_eq!(
            names(0x101a),
            [
                ("inlined_inner".into(), 30),
                ("inlined_outer".into(), 20),
                ("demo::main".into(), 10)
            ]
        );
        assert_eq!(
            s.lookup(0x101a)[1].file.as_deref(),
            Some("/src/lib with space.rs")
        );
        assert_eq!(names(0x1034), [("demo::main".into(), 12)]);
        assert_eq!(names(0x2004), [("demo::with spaces(int, int)".into(), 99)]);
        assert_eq!(names(0x3004), [("public_thing".into(), 0)]);
        assert!(s.lookup(0x10).is_empty());
    }

    /// As Breakpad's resolver: a public symbol lasts until the next one, but not past a
    /// function that starts after it (code after that function's end is nobody's).
    #[test]
    fn a_public_symbol_does_not_reach_past_a_function() {
        let s = SymbolFile::parse(
            "MODULE Linux x86_64 ABC x\nPUBLIC 100 0 early\nFUNC 200 10 0 small\n\
             PUBLIC 300 0 later\n",
            "x.sym",
        )
        .unwrap();
        let name = |a| s.lookup(a).first().map(|l| l.function.clone());
        assert_eq!(name(0x150).as_deref(), Some("early"));
        assert_eq!(name(0x205).as_deref(), Some("small"));
        assert_eq!(name(0x250), None, "past small's end, early does not reach");
        assert_eq!(name(0x350).as_deref(), Some("later"));
    }

    #[test]
    fn bad_files_give_errors_with_line_numbers() {
        let err = |t: &str| SymbolFile::parse(t, "x.sym").unwrap_err().to_string();
        assert!(err("").contains("empty"));
        assert!(err("{\"json\": true}").contains("not a Breakpad symbol file"));
        assert!(
            err("MODULE Linux x86_64 ABC x\nFUNC zz 1 0 f").contains("line 2: bad FUNC address")
        );
        assert!(err("MODULE Linux x86_64 ABC x\n1000 4 1 0").contains("outside a FUNC"));
        assert!(
            err("MODULE Linux x86_64 ABC x\nFUNC 1 1 0 f\nINLINE 0 1").contains("malformed INLINE")
        );
        assert!(err("MODULE Linux x86_64 ABC x\nWHAT is this").contains("unknown record"));
    }
}
