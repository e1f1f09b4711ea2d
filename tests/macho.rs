//! macOS support verified on Linux: real Mach-O dylibs for x86_64 and arm64, built here with
//! clang and lld (`ld64.lld`) from `tests/macho/`, read by vignette's Mach-O identity code
//! and compact unwind parser, checked against `llvm-objdump` and against each function's own
//! prologue. (Running on macOS is not possible here; see DESIGN.md's platform table.)

use std::path::{Path, PathBuf};
use std::process::Command;

use vignette::modules::macho::{self, MachOIdentity};
use vignette::unwind::compact::{arm64, x86_64, CompactRegs, CompactRule, UnwindInfo};
use vignette::unwind::{SliceImage, SliceStack, Step};

/// The first of `names` that runs (`--version`), newest LLVM first, else a panic saying what
/// to install.
fn tool(names: &[&str]) -> String {
    // Debian installs versioned LLVM tools under /usr/lib/llvm-N/bin.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib")
        .map(|dirs| {
            dirs.flatten()
                .filter_map(|d| {
                    let name = d.file_name().to_string_lossy().into_owned();
                    Some((
                        name.strip_prefix("llvm-")?.parse().ok()?,
                        d.path().join("bin"),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    let mut candidates: Vec<String> = Vec::new();
    for (_, bin) in versions.iter().rev() {
        candidates.extend(
            names
                .iter()
                .map(|n| bin.join(n).to_string_lossy().into_owned()),
        );
    }
    candidates.extend(names.iter().map(|s| s.to_string()));
    candidates
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .unwrap_or_else(|| panic!("{names:?} not found: install clang, lld-16 and llvm"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A dylib for `arch` (`x86_64`, `arm64`) from `sources` (paths under `tests/`), compiled
/// with `flags`.
fn dylib(dir: &Path, arch: &str, flags: &[&str], sources: &[&str]) -> PathBuf {
    let clang = tool(&["clang"]);
    let ld = tool(&["ld64.lld"]);
    let tag = format!("{arch}{}", flags.join("").replace('-', "_"));
    let mut objects = Vec::new();
    for src in sources {
        let obj = dir.join(format!("{tag}-{}.o", src.replace('/', "-")));
        run(Command::new(&clang)
            .args(["-target", &format!("{arch}-apple-macos11"), "-c"])
            .args(flags)
            .arg(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests")
                    .join(src),
            )
            .arg("-o")
            .arg(&obj));
        objects.push(obj);
    }
    let out = dir.join(format!("lib{tag}.dylib"));
    run(Command::new(ld)
        .args(["-arch", arch, "-platform_version", "macos", "11.0", "11.0"])
        .args(["-dylib", "-undefined", "dynamic_lookup"])
        .args(&objects)
        .arg("-o")
        .arg(&out));
    out
}

/// `llvm-objdump --macho` with `args` on `file`.
fn objdump(args: &[&str], file: &Path) -> String {
    run(Command::new(tool(&["llvm-objdump"]))
        .arg("--macho")
        .args(args)
        .arg(file))
}

/// The hex number right after `key` on `line`.
fn hex_after(line: &str, key: &str) -> Option<u32> {
    let rest = &line[line.find(key)? + key.len()..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
    u32::from_str_radix(&digits, 16).ok()
}

/// The dylibs the tests read: both architectures, frame pointers kept (the platforms'
/// default) and omitted, at -O2 and -Os, plus (x86_64) a function no compact encoding fits.
fn dylibs(test: &str) -> Vec<(String, PathBuf)> {
    let dir = &Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("macho-{test}"));
    std::fs::create_dir_all(dir).unwrap();
    let mut out = Vec::new();
    for arch in ["x86_64", "arm64"] {
        for flags in [
            &["-O2"][..],
            &["-Os"],
            &["-O2", "-fomit-frame-pointer"],
            &["-Os", "-fomit-frame-pointer"],
        ] {
            // The identity fixture's source: functions of every shape.
            let mut sources = vec!["fixtures/macho-identity.c"];
            if arch == "x86_64" {
                sources.push("macho/cfa_in_rbx_x86_64.s");
            }
            out.push((arch.to_string(), dylib(dir, arch, flags, &sources)));
        }
    }
    out
}

/// The dylib's `__unwind_info` (in `bytes`, the file), parsed.
fn unwind_info<'a>(bytes: &'a [u8], id: &MachOIdentity) -> UnwindInfo<'a> {
    let (off, len) = (id.unwind_info.0 as usize, id.unwind_info.1 as usize);
    UnwindInfo::parse(&bytes[off..off + len]).unwrap()
}

fn identity(bytes: &[u8]) -> MachOIdentity {
    // A dylib's __TEXT starts at file offset 0 and address 0: the file reads as the image.
    macho::identity(&SliceImage { base: 0, bytes }, 0).expect("a Mach-O image")
}

#[test]
fn identity_is_the_uuid_as_dump_syms_writes_it() {
    for (arch, path) in dylibs("identity") {
        let bytes = std::fs::read(&path).unwrap();
        let id = identity(&bytes);
        let headers = objdump(&["--private-headers"], &path);
        let uuid: String = headers
            .lines()
            .find_map(|l| l.trim().strip_prefix("uuid "))
            .expect("an LC_UUID")
            .replace('-', "");
        assert_eq!(id.code_id().unwrap().as_str(), uuid);
        assert_eq!(id.debug_id().unwrap().as_str(), format!("{uuid}0"));
        let cpu = if arch == "x86_64" {
            macho::CPU_X86_64
        } else {
            macho::CPU_ARM64
        };
        assert_eq!(id.cpu, cpu);
        assert!(id.unwind_info.1 > 0, "{path:?} has __unwind_info");
        // Not Mach-O: no identity.
        assert_eq!(
            macho::identity(
                &SliceImage {
                    base: 0,
                    bytes: &bytes[1..]
                },
                0
            ),
            None
        );
        for len in [0, 16, 31, 100, 600] {
            let _ = macho::identity(
                &SliceImage {
                    base: 0,
                    bytes: &bytes[..len],
                },
                0,
            );
        }
    }
}

/// Committed dylibs (`tests/fixtures/make-fixtures.sh`) give the IDs dump_syms wrote for them.
#[test]
fn identity_of_the_fixtures_is_dump_syms_module_line() {
    for arch in ["x86_64", "arm64"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let file = format!("macho-identity-{arch}.dylib");
        let id = identity(&std::fs::read(dir.join(&file)).unwrap());
        let head =
            std::fs::read_to_string(dir.join(format!("macho-identity-{arch}.dump_syms.head")))
                .unwrap();
        let mine = format!(
            "MODULE Mac {arch} {} {file}\nINFO CODE_ID {}\n",
            id.debug_id().unwrap(),
            id.code_id().unwrap()
        );
        assert_eq!(mine, head);
    }
}

/// The records of a `.sym` text that both writers write (not the generator, not `STACK`).
fn records(sym: &str) -> Vec<&str> {
    sym.lines()
        .filter(|l| !l.starts_with("INFO GENERATOR") && !l.starts_with("STACK"))
        .collect()
}

/// `vignette symbols BINARY --store STORE`.
fn vignette_symbols(binary: &Path, store: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vignette"))
        .arg("symbols")
        .arg(binary)
        .arg("--store")
        .arg(store)
        .output()
        .unwrap()
}

/// The folder [`symbols`] works in for `test`.
fn symbols_dir(test: &str, arch: &str, with_dsym: bool) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("macho-sym-{test}-{arch}-{with_dsym}"))
}

/// `vignette symbols` on the `arch` dylib of `fixtures` copied into a fresh folder of its own
/// for `test`, with its dSYM beside it if `with_dsym`; the `.sym` text written, or the
/// command's stderr.
fn symbols(test: &str, arch: &str, with_dsym: bool) -> Result<String, String> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dir = symbols_dir(test, arch, with_dsym);
    let _ = std::fs::remove_dir_all(&dir);
    let file = format!("macho-symbols-{arch}.dylib");
    let dwarf = format!("{file}.dSYM/Contents/Resources/DWARF");
    std::fs::create_dir_all(dir.join(&dwarf)).unwrap();
    std::fs::copy(fixtures.join(&file), dir.join(&file)).unwrap();
    if with_dsym {
        std::fs::copy(
            fixtures.join(&dwarf).join(&file),
            dir.join(&dwarf).join(&file),
        )
        .unwrap();
    }
    let out = vignette_symbols(&dir.join(&file), &dir.join("store"));
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let id = identity(&std::fs::read(dir.join(&file)).unwrap());
    let sym = dir
        .join("store")
        .join(&file)
        .join(id.debug_id().unwrap().as_str())
        .join(format!("{file}.sym"));
    Ok(std::fs::read_to_string(sym).unwrap())
}

/// `vignette symbols` reads a dylib's dSYM beside it and writes the records dump_syms writes
/// from that dSYM (functions, lines, inlines, files), under the dylib's name.
#[test]
fn symbols_from_a_dsym_equal_dump_syms() {
    for arch in ["x86_64", "arm64"] {
        let mine = symbols("dsym", arch, true).unwrap();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let theirs =
            std::fs::read_to_string(fixtures.join(format!("macho-symbols-{arch}.dump_syms.sym")))
                .unwrap();
        // dump_syms was pointed at the bundle, so its MODULE line names the bundle.
        let theirs = theirs.replacen(".dylib.dSYM\n", ".dylib\n", 1);
        assert_eq!(records(&mine), records(&theirs), "{arch}");
        assert!(
            mine.contains("\nFUNC ") && mine.contains(" framed\n"),
            "{mine}"
        );
        // Without the dSYM: the symbol table only.
        let bare = symbols("dsym", arch, false).unwrap();
        assert!(
            !bare.contains("FUNC ") && bare.contains("PUBLIC "),
            "{bare}"
        );
        assert_eq!(
            bare.lines().next(),
            mine.lines().next(),
            "the same MODULE line"
        );
    }
}

/// A dSYM of another build beside a dylib is refused with a message naming both IDs.
#[test]
fn a_dsym_of_another_build_is_refused() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("macho-sym-wrong");
    let _ = std::fs::remove_dir_all(&dir);
    let file = "macho-symbols-x86_64.dylib";
    let dwarf = dir.join(format!("{file}.dSYM/Contents/Resources/DWARF"));
    std::fs::create_dir_all(&dwarf).unwrap();
    // The identity fixture: the same code built without -g, so another UUID.
    std::fs::copy(fixtures.join("macho-identity-x86_64.dylib"), dir.join(file)).unwrap();
    std::fs::copy(
        fixtures.join(format!("{file}.dSYM/Contents/Resources/DWARF/{file}")),
        dwarf.join(file),
    )
    .unwrap();
    let out = vignette_symbols(&dir.join(file), &dir.join("store"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("another build") && err.contains("matching dSYM"),
        "{err}"
    );
}

/// A universal (fat) binary is refused with what to do, not half-read.
#[test]
fn a_universal_binary_is_refused_with_what_to_do() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("macho-universal");
    std::fs::create_dir_all(&dir).unwrap();
    let fat = dir.join("universal.dylib");
    run(Command::new(tool(&["llvm-lipo"]))
        .arg("-create")
        .arg(fixtures.join("macho-identity-x86_64.dylib"))
        .arg(fixtures.join("macho-identity-arm64.dylib"))
        .arg("-output")
        .arg(&fat));
    let out = vignette_symbols(&fat, &dir.join("store"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("universal binary") && err.contains("lipo -thin"),
        "{err}"
    );
}

#[test]
fn every_function_has_the_encoding_llvm_objdump_reads() {
    for (_, path) in dylibs("encodings") {
        let bytes = std::fs::read(&path).unwrap();
        let id = identity(&bytes);
        let info = unwind_info(&bytes, &id);
        let dump = objdump(&["--unwind-info"], &path);
        // Second-level entries: "[k]: function offset=0x..., encoding[i]=0x..." (compressed)
        // or "function offset=0x..., encoding=0x..." (regular).
        let mut entries: Vec<(u32, u32)> = dump
            .lines()
            .skip_while(|l| !l.contains("Second level indices"))
            .filter(|l| l.contains("function offset=") && l.contains("encoding"))
            .map(|l| {
                let f = hex_after(l, "function offset=0x").unwrap();
                let e = hex_after(l, "]=0x")
                    .or_else(|| hex_after(l, "encoding=0x"))
                    .unwrap();
                (f, e)
            })
            .collect();
        entries.sort();
        let end = dump
            .lines()
            .filter(|l| l.contains("2nd level page offset=0x00000000"))
            .find_map(|l| hex_after(l, "function offset=0x"))
            .expect("the sentinel");
        assert!(entries.len() >= 2, "{path:?}: {dump}");
        for (i, &(function, encoding)) in entries.iter().enumerate() {
            let next = entries.get(i + 1).map_or(end, |e| e.0);
            for at in [function, (function + next) / 2, next - 1] {
                let e = info
                    .lookup(at)
                    .unwrap()
                    .unwrap_or_else(|| panic!("{at:#x} covered"));
                assert_eq!(
                    (e.function, e.end, e.encoding),
                    (function, next, encoding),
                    "{path:?} {at:#x}"
                );
            }
        }
        assert_eq!(info.lookup(end).unwrap(), None);
        assert_eq!(info.lookup(entries[0].0 - 1).unwrap(), None);
    }
}

/// Every function's instructions (address, text without comments), from the disassembly.
fn disassembly(path: &Path) -> Vec<(String, Vec<(u64, String)>)> {
    let text = objdump(&["-d", "--no-show-raw-insn"], path);
    let mut out: Vec<(String, Vec<(u64, String)>)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_suffix(':').filter(|l| l.starts_with('_')) {
            out.push((name.to_string(), Vec::new()));
        } else if let (Some(f), Some((addr, insn))) =
            (out.last_mut(), line.trim().split_once(":\t"))
        {
            let insn = insn.split(" ;").next().unwrap().replace('\t', " ");
            f.1.push((
                u64::from_str_radix(addr, 16).unwrap(),
                insn.trim().to_string(),
            ));
        }
    }
    out
}

/// A function's first instructions, from the disassembly.
fn prologues(path: &Path) -> Vec<(String, u64, Vec<String>)> {
    disassembly(path)
        .into_iter()
        .filter(|(_, insns)| !insns.is_empty())
        .map(|(name, insns)| {
            let start = insns[0].0;
            (
                name,
                start,
                insns.into_iter().take(12).map(|i| i.1).collect(),
            )
        })
        .collect()
}

/// x86_64: what a function's prologue says about its frame: frame-pointer based, or the
/// frame's size (return address included) and where rbp was pushed (from the stack
/// pointer after the prologue).
fn x86_64_frame(prologue: &[String]) -> Result<(u64, Option<u64>), ()> {
    if prologue.first().is_some_and(|i| i == "pushq %rbp")
        && prologue.get(1).is_some_and(|i| i == "movq %rsp, %rbp")
    {
        return Err(());
    }
    let mut pushes = Vec::new();
    let mut sub = 0;
    for insn in prologue {
        if let Some(reg) = insn.strip_prefix("pushq %") {
            pushes.push(reg.to_string());
        } else if let Some(n) = insn
            .strip_prefix("subq $")
            .and_then(|r| r.strip_suffix(", %rsp"))
        {
            sub = n.parse::<u64>().unwrap();
            break;
        } else {
            break;
        }
    }
    let n = pushes.len() as u64;
    let rbp = pushes
        .iter()
        .position(|r| r == "rbp")
        .map(|i| sub + 8 * (n - 1 - i as u64));
    Ok((8 + 8 * n + sub, rbp))
}

#[test]
fn rules_unwind_frames_laid_out_as_the_prologues_build_them() {
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    for (arch, path) in dylibs("rules") {
        let bytes = std::fs::read(&path).unwrap();
        let id = identity(&bytes);
        let info = unwind_info(&bytes, &id);
        let image = SliceImage {
            base: 0,
            bytes: &bytes,
        };
        for (name, start, prologue) in prologues(&path) {
            if !prologue.iter().any(|i| !i.starts_with("nop")) || name.starts_with("__") {
                continue;
            }
            let entry = info.lookup(start as u32).unwrap();
            let encoding = entry.map_or(0, |e| e.encoding);
            let rule = if arch == "x86_64" {
                x86_64::decode(encoding)
            } else {
                arm64::decode(encoding)
            }
            .unwrap_or_else(|| panic!("{name}: encoding {encoding:#x} decodes"));
            let what = format!("{path:?} {name} {encoding:#010x} {prologue:?}");
            // A stack of distinct words: each slot holds its own address + 1.
            let base = 0x7000_0000u64;
            let words: Vec<u8> = (0..1024u64)
                .flat_map(|i| (base + 8 * i + 1).to_le_bytes())
                .collect();
            let stack = SliceStack {
                base,
                bytes: &words,
            };
            let regs = CompactRegs {
                ip: start + 4,
                sp: base,
                fp: base + 64,
                lr: 0x1234,
            };
            let mut after = regs;
            let step = rule.apply(
                &mut after,
                &stack,
                &image,
                entry.map_or(0, |e| e.function as u64),
                true,
            );
            match rule {
                CompactRule::FramePointer => {
                    *seen.entry("frame pointer").or_default() += 1;
                    if arch == "x86_64" {
                        assert_eq!(x86_64_frame(&prologue), Err(()), "{what}");
                    } else {
                        assert!(
                            prologue
                                .iter()
                                .take(8)
                                .any(|i| i.starts_with("stp x29, x30")),
                            "{what}"
                        );
                    }
                    assert_eq!(
                        step,
                        Ok(Step::Caller {
                            signal_frame: false
                        })
                    );
                    assert_eq!(
                        after,
                        CompactRegs {
                            ip: base + 72 + 1,
                            sp: base + 80,
                            fp: base + 64 + 1,
                            lr: 0x1234
                        },
                        "{what}"
                    );
                }
                CompactRule::Frameless { .. } | CompactRule::FramelessIndirect { .. } => {
                    *seen.entry("frameless").or_default() += 1;
                    assert_eq!(
                        step,
                        Ok(Step::Caller {
                            signal_frame: false
                        }),
                        "{what}"
                    );
                    if arch == "x86_64" {
                        let (size, rbp) =
                            x86_64_frame(&prologue).unwrap_or_else(|_| panic!("{what}"));
                        if matches!(rule, CompactRule::FramelessIndirect { .. }) {
                            *seen.entry("frameless, size in the code").or_default() += 1;
                        }
                        assert_eq!(after.sp, base + size, "{what}");
                        assert_eq!(after.ip, base + size - 8 + 1, "{what}: the return address");
                        assert_eq!(
                            after.fp,
                            rbp.map_or(regs.fp, |at| base + at + 1),
                            "{what}: rbp"
                        );
                    } else {
                        // A leaf: no frame record, the return address in x30.
                        assert!(!prologue.iter().any(|i| i.contains("x29, x30")), "{what}");
                        let size = prologue
                            .first()
                            .and_then(|i| i.strip_prefix("sub sp, sp, #"))
                            .map_or(0, |n| n.parse::<u64>().unwrap());
                        assert_eq!(
                            (after.sp, after.ip, after.fp),
                            (base + size, 0x1234, regs.fp),
                            "{what}"
                        );
                    }
                }
                CompactRule::Dwarf { .. } | CompactRule::None => {
                    // Left to __eh_frame: an FDE there must cover the function, unless it is
                    // a leaf that touches no stack (x86_64 encodes those as 0).
                    let (eh, eh_len) = id.eh_frame;
                    let section = vignette::unwind::cfi::reader::Section {
                        data: &bytes[eh as usize..(eh + eh_len) as usize],
                        avma: eh,
                    };
                    let fde = vignette::unwind::cfi::cie_fde::scan_for_fde(section, start, 10_000);
                    if let CompactRule::Dwarf { fde_offset } = rule {
                        // The encoding points at that very FDE.
                        let at =
                            vignette::unwind::cfi::cie_fde::parse_fde(section, fde_offset as usize)
                                .unwrap_or_else(|e| panic!("{what}: {e:?}"));
                        assert_eq!(
                            Some(at.pc_begin),
                            fde.as_ref()
                                .ok()
                                .and_then(|f| f.as_ref().map(|f| f.pc_begin)),
                            "{what}"
                        );
                        *seen.entry("DWARF mode").or_default() += 1;
                    }
                    if matches!(fde, Ok(Some(_))) {
                        *seen.entry("in __eh_frame").or_default() += 1;
                    } else {
                        assert_eq!(arch, "x86_64", "{what}: no FDE");
                        assert_eq!(x86_64_frame(&prologue), Ok((8, None)), "{what}: no FDE");
                        *seen.entry("leaf without unwind info").or_default() += 1;
                    }
                }
            }
        }
    }
    eprintln!("functions checked by rule: {seen:?}");
    for kind in [
        "frame pointer",
        "frameless",
        "frameless, size in the code",
        "in __eh_frame",
    ] {
        assert!(
            seen.get(kind).is_some_and(|&n| n > 0),
            "no function of kind {kind}: {seen:?}"
        );
    }
}

/// A small interpreter of the instructions prologues and epilogues are made of, reading the
/// disassembly's text (a decoder independent of vignette's): it lays out stacks as real
/// functions build them.
mod interp {
    use std::collections::HashMap;

    /// What a register or stack word holds when nothing wrote it.
    pub const JUNK: u64 = 0xbad_bad;

    /// Registers by name (`sp`, `x29`, `rbp`, ...) and the stack, word by word.
    #[derive(Clone, Default)]
    pub struct Machine {
        pub regs: HashMap<String, u64>,
        pub mem: HashMap<u64, u64>,
        /// Registers stored to the stack so far.
        pub saved: Vec<String>,
    }

    impl Machine {
        pub fn reg(&self, r: &str) -> u64 {
            self.regs.get(r).copied().unwrap_or(0)
        }
        pub fn set(&mut self, r: &str, v: u64) {
            self.regs.insert(r.to_string(), v);
        }
    }

    fn imm(s: &str) -> i64 {
        let s = s.trim().trim_start_matches(['#', '$']);
        match s.strip_prefix("0x") {
            Some(h) => i64::from_str_radix(h, 16).unwrap(),
            None => s.parse().unwrap(),
        }
    }

    /// arm64: runs `insn` if it is one prologues and epilogues use; `false` if not.
    pub fn arm64_step(m: &mut Machine, insn: &str) -> bool {
        let ops: Vec<&str> = insn
            .split([' ', ',', '[', ']'])
            .filter(|s| !s.is_empty())
            .collect();
        let sp = m.reg("sp");
        let sh = |ops: &[&str]| {
            if ops.ends_with(&["lsl", "#12"]) {
                12
            } else {
                0
            }
        };
        match ops.as_slice() {
            ["pacibsp"] | ["paciasp"] | ["autibsp"] | ["autiasp"] | ["nop"] => {}
            ["stp", a, b, "sp", rest @ ..] => {
                let pre = rest.last().is_some_and(|r| r.ends_with('!'));
                let off = rest.first().map_or(0, |o| imm(o.trim_end_matches('!')));
                let at = sp.wrapping_add_signed(off);
                m.mem.insert(at, m.reg(a));
                m.mem.insert(at + 8, m.reg(b));
                m.saved.extend([a.to_string(), b.to_string()]);
                if pre {
                    m.set("sp", at);
                }
            }
            ["ldp", a, b, "sp", rest @ ..] => {
                // `[sp, #o]` or `[sp], #o` (post-index): the split cannot tell them apart, the
                // text can.
                let post = insn.contains("],");
                let off = rest.first().map_or(0, |o| imm(o));
                let at = if post {
                    sp
                } else {
                    sp.wrapping_add_signed(off)
                };
                let word = |a: u64| m.mem.get(&a).copied().unwrap_or(JUNK);
                let (va, vb) = (word(at), word(at + 8));
                m.set(a, va);
                m.set(b, vb);
                if post {
                    m.set("sp", sp.wrapping_add_signed(off));
                }
            }
            ["sub", "sp", "sp", n, ..] => m.set("sp", sp - ((imm(n) as u64) << sh(&ops))),
            ["add", "sp", "sp", n, ..] => m.set("sp", sp + ((imm(n) as u64) << sh(&ops))),
            ["add", "x29", "sp", n] => m.set("x29", sp + imm(n) as u64),
            ["mov", "x29", "sp"] => m.set("x29", sp),
            _ => return false,
        }
        true
    }

    /// x86_64 (AT&T syntax): as [`arm64_step`].
    pub fn x86_64_step(m: &mut Machine, insn: &str) -> bool {
        let sp = m.reg("rsp");
        match insn
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["pushq", r] => {
                let r = r.trim_start_matches('%');
                m.mem.insert(sp - 8, m.reg(r));
                m.saved.push(r.to_string());
                m.set("rsp", sp - 8);
            }
            ["popq", r] => {
                let v = m.mem.get(&sp).copied().unwrap_or(JUNK);
                m.set(r.trim_start_matches('%'), v);
                m.set("rsp", sp + 8);
            }
            ["subq", n, "%rsp"] => m.set("rsp", sp - imm(n) as u64),
            ["addq", n, "%rsp"] => m.set("rsp", sp + imm(n) as u64),
            ["movq", "%rsp", r @ ("%rbp" | "%rbx")] => m.set(r.trim_start_matches('%'), sp),
            _ => return false,
        }
        true
    }
}

/// The Mach-O walker over real code of the host's architecture (the walker unwinds the
/// host's registers): x86_64 here, arm64 under qemu (`scripts/check-aarch64`).
mod walker {
    use super::interp::{arm64_step, x86_64_step, Machine};
    use super::*;
    use vignette::unwind::cfi::reader::Section;
    #[cfg(target_arch = "x86_64")]
    use vignette::unwind::macho::step;
    use vignette::unwind::macho::{walk, ImageLookup, MachOSections};
    use vignette::unwind::{EndReason, Regs};

    /// Where the tests place the image (the walker must use offsets from it).
    const LOAD: u64 = 0x1_0000_0000;
    /// DWARF number of rbx.
    const RBX: u16 = 3;

    /// One dylib, as if dyld had loaded it at [`LOAD`].
    struct Image {
        bytes: Vec<u8>,
        id: MachOIdentity,
    }

    impl Image {
        fn load(path: &Path) -> Image {
            let bytes = std::fs::read(path).unwrap();
            let id = identity(&bytes);
            Image { bytes, id }
        }

        fn code(&self) -> SliceImage<'_> {
            SliceImage {
                base: LOAD,
                bytes: &self.bytes,
            }
        }

        fn rule(&self, function: u64) -> u32 {
            unwind_info(&self.bytes, &self.id)
                .lookup(function as u32)
                .unwrap()
                .map_or(0, |e| e.encoding)
        }
    }

    impl ImageLookup for Image {
        fn sections(&self, avma: u64) -> Option<MachOSections<'_>> {
            if !(LOAD..LOAD + self.id.text_size).contains(&avma) {
                return None;
            }
            let slice = |(at, len): (u64, u64)| {
                (len > 0).then(|| &self.bytes[at as usize..(at + len) as usize])
            };
            Some(MachOSections {
                load_address: LOAD,
                unwind_info: slice(self.id.unwind_info),
                eh_frame: slice(self.id.eh_frame).map(|data| Section {
                    data,
                    avma: LOAD + self.id.eh_frame.0,
                }),
            })
        }
    }

    /// A stack being laid out, a word per slot, from `BASE` up.
    #[cfg(target_arch = "x86_64")]
    struct Stack(Vec<u64>);
    #[cfg(target_arch = "x86_64")]
    const BASE: u64 = 0x7000_0000;

    #[cfg(target_arch = "x86_64")]
    impl Stack {
        fn new() -> Stack {
            // Every slot not written holds a value no walk should accept.
            Stack(vec![0xdead_beef; 8192])
        }
        fn put(&mut self, at: u64, value: u64) {
            self.0[((at - BASE) / 8) as usize] = value;
        }
        fn bytes(&self) -> Vec<u8> {
            self.0.iter().flat_map(|w| w.to_le_bytes()).collect()
        }
    }

    /// The host's architecture as the dylibs name it.
    const ARCH: &str = if cfg!(target_arch = "x86_64") {
        "x86_64"
    } else {
        "arm64"
    };

    struct Function {
        name: String,
        rule: CompactRule,
        insns: Vec<(u64, String)>,
        /// Index of the first instruction after the prologue (the first the interpreter does
        /// not run).
        body: usize,
    }

    fn step_insn(m: &mut Machine, insn: &str) -> bool {
        if ARCH == "arm64" {
            arm64_step(m, insn)
        } else {
            x86_64_step(m, insn)
        }
    }

    fn functions(image: &Image, path: &Path) -> Vec<Function> {
        let mut out = Vec::new();
        for (name, insns) in disassembly(path) {
            if insns.is_empty() || name.starts_with("__") {
                continue;
            }
            let encoding = image.rule(insns[0].0);
            let rule = if ARCH == "arm64" {
                arm64::decode(encoding)
            } else {
                x86_64::decode(encoding)
            }
            .unwrap();
            let mut scratch = Machine::default();
            scratch.set(if ARCH == "arm64" { "sp" } else { "rsp" }, 0x7000_0000);
            let body = insns
                .iter()
                .position(|(_, i)| !step_insn(&mut scratch, i))
                .unwrap_or(insns.len());
            if body < insns.len() {
                out.push(Function {
                    name,
                    rule,
                    insns,
                    body,
                });
            }
        }
        out
    }

    /// Lays out the frames of `chain` (outermost first, each called from the one before at
    /// the first instruction after its prologue) as their prologues build them (run by the
    /// interpreter), the innermost interrupted there; walks it; returns what the walk gave
    /// and what it should.
    fn lay_out_and_walk(image: &Image, chain: &[&Function]) -> ((Vec<u64>, EndReason), Vec<u64>) {
        let (sp, fp) = if ARCH == "arm64" {
            ("sp", "x29")
        } else {
            ("rsp", "rbp")
        };
        let top = 0x7000_8000u64;
        let mut m = Machine::default();
        m.set(sp, top);
        m.set(fp, 0); // the root's
        let mut ra = 0u64; // the outermost returns to 0: the root
        let mut expected = Vec::new();
        for (i, f) in chain.iter().enumerate() {
            // The call.
            if ARCH == "arm64" {
                m.set("x30", ra);
            } else {
                let at = m.reg(sp) - 8;
                m.mem.insert(at, ra);
                m.set(sp, at);
            }
            let before = m.regs.clone();
            m.saved.clear();
            for (_, insn) in &f.insns[..f.body] {
                assert!(step_insn(&mut m, insn));
            }
            // The function uses the registers it saved for its own ends (but those its
            // prologue set: the frame pointer, a CFA register), and its calls clobber x30.
            for r in m.saved.clone() {
                if before.get(&r) == m.regs.get(&r) {
                    m.set(&r, 0xbad0 + i as u64);
                }
            }
            if i + 1 < chain.len() {
                m.set("x30", 0xbad0);
            }
            let at = LOAD + f.insns[f.body].0;
            ra = at + if ARCH == "arm64" { 4 } else { 1 };
            expected.insert(0, ra - 1);
        }
        // The innermost is interrupted, not calling: its address is exact.
        expected[0] += 1;
        let mut regs = Regs::default();
        regs.set(Regs::IP, expected[0]);
        regs.set(Regs::SP, m.reg(sp));
        regs.set(Regs::FP, m.reg(fp));
        if ARCH == "arm64" {
            regs.set(Regs::RA, m.reg("x30"));
        } else {
            regs.set(RBX, m.reg("rbx"));
        }
        let base = m.reg(sp);
        let bytes: Vec<u8> = (0..(top - base) / 8)
            .flat_map(|i| {
                m.mem
                    .get(&(base + 8 * i))
                    .copied()
                    .unwrap_or(0xdead_beef)
                    .to_le_bytes()
            })
            .collect();
        let mut reader = SliceStack {
            base,
            bytes: &bytes,
        };
        let mut frames = [0u64; 128];
        let (n, end) = walk(&regs, &mut reader, image, &image.code(), &mut frames);
        ((frames[..n].to_vec(), end), expected)
    }

    #[test]
    fn walks_chains_of_real_functions_to_the_root() {
        let mut kinds = std::collections::BTreeSet::new();
        for (arch, path) in dylibs("walker") {
            if arch != ARCH {
                continue;
            }
            let image = Image::load(&path);
            let functions = functions(&image, &path);
            // Every function calls the next; the one that keeps its CFA in rbx calls the
            // leaf (as its source does), which is interrupted. (arm64 leaves keep their
            // return address in x30: only the interrupted one can be one.)
            let (leaf, others): (Vec<&Function>, Vec<&Function>) =
                functions.iter().partition(|f| f.name == "_leaf");
            let (odd, mut chain): (Vec<&Function>, Vec<&Function>) =
                others.into_iter().partition(|f| f.name == "_odd");
            if ARCH == "arm64" {
                chain.retain(|f| !matches!(f.rule, CompactRule::Frameless { .. }));
            }
            chain.extend(odd);
            chain.extend(leaf);
            for f in &chain {
                let rule = format!("{:?}", f.rule);
                kinds.insert(rule.split([' ', '{']).next().unwrap().to_string());
            }
            let names: Vec<&str> = chain.iter().map(|f| f.name.as_str()).collect();
            let ((frames, end), expected) = lay_out_and_walk(&image, &chain);
            assert_eq!(
                (frames, end),
                (expected, EndReason::Root),
                "{path:?}: chain {names:?}"
            );
        }
        // Every kind of rule took part somewhere.
        eprintln!("rules walked: {kinds:?}");
        let want: &[&str] = if ARCH == "arm64" {
            &["Dwarf", "FramePointer", "Frameless"]
        } else {
            &["Dwarf", "FramePointer", "Frameless", "FramelessIndirect"]
        };
        for kind in want {
            assert!(kinds.contains(*kind), "no {kind} frame in {kinds:?}");
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn a_frame_interrupted_at_its_edges_unwinds_as_its_code_has_the_stack() {
        let (_, path) = dylibs("edges")
            .into_iter()
            .find(|(arch, _)| arch == "x86_64")
            .unwrap();
        let image = Image::load(&path);
        let mut checked = 0;
        for f in functions(&image, &path) {
            if !matches!(f.rule, CompactRule::FramePointer) {
                continue;
            }
            let start = LOAD + f.insns[0].0;
            let ret = LOAD
                + f.insns
                    .iter()
                    .find(|i| i.1 == "retq")
                    .unwrap_or_else(|| panic!("{}: a retq", f.name))
                    .0;
            // The caller's frame pointer points elsewhere: a walker that trusted the
            // encoding here would take the caller's return address for this one's.
            let (ra, caller_fp) = (LOAD + 0x4242, BASE + 0x800);
            let mut stack = Stack::new();
            stack.put(caller_fp, 0x1111);
            stack.put(caller_fp + 8, 0x2222);
            let sp = BASE + 0x100;
            for (pc, words, what) in [
                (start, vec![ra], "first instruction"),
                (start + 1, vec![caller_fp, ra], "after push rbp"),
                (ret, vec![ra], "at ret"),
            ] {
                for (i, &w) in words.iter().enumerate() {
                    stack.put(sp + 8 * i as u64, w);
                }
                let bytes = stack.bytes();
                let reader = SliceStack {
                    base: BASE,
                    bytes: &bytes,
                };
                let mut regs = Regs::default();
                regs.set(Regs::IP, pc);
                regs.set(Regs::SP, sp);
                regs.set(Regs::FP, caller_fp);
                let got = step(&mut regs, pc, true, &reader, &image, &image.code());
                assert!(got.is_ok(), "{} {what}: {got:?}", f.name);
                assert_eq!(
                    (regs.ip(), regs.sp(), regs.fp()),
                    (ra, sp + 8 * words.len() as u64, caller_fp),
                    "{} {what}",
                    f.name
                );
                checked += 1;
            }
        }
        assert!(checked >= 6, "{checked} edges checked");
    }
}

/// Frames interrupted in prologues and epilogues, both architectures (the edge analyses
/// build on every host): every instruction of every prologue and epilogue of the dylibs'
/// functions with a compact encoding is run, from its disassembly, by a small interpreter of
/// its own; at each, the rule the walker would take (the function's entry, else
/// `unwind::macho::edge`, else the encoding) must recover the caller's registers.
mod edges {
    use super::interp::{arm64_step, x86_64_step, Machine, JUNK};
    use super::*;
    use std::collections::HashMap;
    use vignette::unwind::macho::edge;
    use vignette::unwind::ImageReader;

    const RA: u64 = 0x1_2345_6789;
    const CALLER_FP: u64 = 0x7fff_1000;
    const CALLER_SP: u64 = 0x7000_8000;

    /// What the walker would take at `pc` (the encoding's function starting at `function`)
    /// applied to `m`: the caller's (ip, sp, fp), or why not.
    fn unwound(
        arch: &str,
        image: &SliceImage<'_>,
        encoding: u32,
        function: u64,
        pc: u64,
        m: &Machine,
    ) -> Result<(u64, u64, u64), String> {
        let (rule, regs) = if arch == "arm64" {
            let rule = if pc == function {
                Some(edge::ARM64_ENTRY)
            } else {
                edge::arm64(pc, |at| {
                    let mut b = [0u8; 4];
                    image.read(at, &mut b).then(|| u32::from_le_bytes(b))
                })
            };
            let regs = (m.reg("sp"), m.reg("x29"), m.reg("x30"));
            (rule.or_else(|| arm64::decode(encoding)), regs)
        } else {
            let body = x86_64::decode(encoding).ok_or("no rule")?;
            let rule = if pc == function {
                Some(edge::X86_64_ENTRY)
            } else {
                let body = body
                    .resolved(image, function)
                    .map_err(|e| format!("{e:?}"))?;
                edge::x86_64(pc, body, |at, buf| image.read(at, buf))
            };
            (rule.or(Some(body)), (m.reg("rsp"), m.reg("rbp"), 0))
        };
        // The stack as the interpreter left it, every word it did not write junk.
        let lo = regs.0.min(CALLER_SP - 0x4000) & !7;
        let words: Vec<u8> = (0..0x1000u64)
            .flat_map(|i| {
                m.mem
                    .get(&(lo + 8 * i))
                    .copied()
                    .unwrap_or(JUNK)
                    .to_le_bytes()
            })
            .collect();
        let stack = SliceStack {
            base: lo,
            bytes: &words,
        };
        let mut c = CompactRegs {
            ip: pc,
            sp: regs.0,
            fp: regs.1,
            lr: regs.2,
        };
        let rule = rule.ok_or("no rule")?;
        rule.apply(&mut c, &stack, image, function, true)
            .map_err(|e| format!("{rule:?}: {e:?}"))?;
        Ok((c.ip, c.sp, c.fp))
    }

    /// Runs `insns` (from the function's first) and checks every prologue and epilogue
    /// position; returns how many it checked.
    fn check_function(
        arch: &str,
        image: &SliceImage<'_>,
        name: &str,
        encoding: u32,
        function: u64,
        insns: &[(u64, String)],
    ) -> usize {
        let step = if arch == "arm64" {
            arm64_step
        } else {
            x86_64_step
        };
        let (sp, fp) = if arch == "arm64" {
            ("sp", "x29")
        } else {
            ("rsp", "rbp")
        };
        let mut m = Machine::default();
        for r in [
            "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28", "d8", "d9",
        ]
        .iter()
        .chain(&["rbx", "r12", "r13", "r14", "r15"])
        {
            m.set(r, 0x5000 + r.len() as u64);
        }
        m.set(fp, CALLER_FP);
        if arch == "arm64" {
            m.set("sp", CALLER_SP);
            m.set("x30", RA);
        } else {
            m.set("rsp", CALLER_SP - 8);
            m.mem.insert(CALLER_SP - 8, RA);
        }
        let frameless_x86 = arch == "x86_64"
            && !matches!(x86_64::decode(encoding), Some(CompactRule::FramePointer));
        let mut checked = 0;
        let mut check = |m: &Machine, pc: u64, what: &str| {
            let got = unwound(arch, image, encoding, function, pc, m);
            assert_eq!(
                got,
                Ok((RA, CALLER_SP, CALLER_FP)),
                "{arch} {name} {what} at {pc:#x} (encoding {encoding:#x})"
            );
            checked += 1;
        };
        // The prologue, and the first instruction after it.
        let mut body = 0;
        for (i, (pc, insn)) in insns.iter().enumerate() {
            check(&m, *pc, &format!("prologue `{insn}`"));
            if !step(&mut m, insn) {
                body = i;
                break;
            }
        }
        if body == 0 {
            return checked;
        }
        // The body may use every register the prologue saved but the frame pointer it set
        // (and calls clobber x30).
        let mut clobbered = m.saved.clone();
        clobbered.push("x30".to_string());
        for r in clobbered {
            if r != fp || frameless_x86 {
                m.set(&r, JUNK);
            }
        }
        // Each epilogue: the instructions before a return that an epilogue is made of.
        for (r, (_, insn)) in insns.iter().enumerate() {
            if !(insn == "ret" || insn == "retq" || insn == "retab") {
                continue;
            }
            let mut start = r;
            while start > body {
                let mut probe = m.clone();
                if !step(&mut probe, &insns[start - 1].1) {
                    break;
                }
                start -= 1;
            }
            let mut e = m.clone();
            let mut ok = true;
            for (pc, insn) in &insns[start..r] {
                check(&e, *pc, &format!("epilogue `{insn}`"));
                ok &= step(&mut e, insn);
            }
            assert!(ok);
            // The interpreter agrees: the return goes where the walker said.
            assert_eq!(
                e.reg(sp) + if arch == "arm64" { 0 } else { 8 },
                CALLER_SP,
                "{name}: epilogue"
            );
            check(&e, insns[r].0, "return");
        }
        checked
    }

    #[test]
    fn frames_interrupted_in_prologues_and_epilogues_unwind_to_their_caller() {
        let mut totals = HashMap::<String, usize>::new();
        for (arch, path) in dylibs("edges-both") {
            let bytes = std::fs::read(&path).unwrap();
            let id = identity(&bytes);
            let info = unwind_info(&bytes, &id);
            let image = SliceImage {
                base: 0,
                bytes: &bytes,
            };
            for (name, insns) in disassembly(&path) {
                if insns.is_empty() || name.starts_with("__") || name == "_odd" {
                    continue;
                }
                let entry = info.lookup(insns[0].0 as u32).unwrap().unwrap();
                let rule = if arch == "arm64" {
                    arm64::decode(entry.encoding)
                } else {
                    x86_64::decode(entry.encoding)
                };
                // DWARF-mode functions are unwound by their FDE; leaves keep no frame.
                let kind = match rule.unwrap() {
                    CompactRule::FramePointer => "frame pointer",
                    CompactRule::Frameless { stack_size: 0, .. }
                    | CompactRule::Dwarf { .. }
                    | CompactRule::None => continue,
                    _ => "frameless",
                };
                *totals.entry(format!("{arch} {kind}")).or_default() += check_function(
                    &arch,
                    &image,
                    &name,
                    entry.encoding,
                    entry.function as u64,
                    &insns,
                );
            }
        }
        eprintln!("positions checked: {totals:?}");
        for kind in [
            "arm64 frame pointer",
            "x86_64 frame pointer",
            "x86_64 frameless",
        ] {
            assert!(
                totals.get(kind).is_some_and(|&t| t > 10),
                "{kind}: {totals:?}"
            );
        }
    }
}

/// A profile taken on macOS (modules of format Mach-O, their UUIDs as debug and code IDs, as
/// the macOS backend records them) resolves with the symbols `vignette symbols` makes from
/// the dylib and its dSYM: the frames get their functions and lines.
#[test]
fn a_macos_profile_resolves_with_the_symbols_vignette_makes() {
    use vignette::{Clock, EndReason, Frame, Lost, Module, Profile, Sample, StackNode, Thread};
    symbols("profile", "x86_64", true).unwrap();
    let dir = symbols_dir("profile", "x86_64", true);
    let file = "macho-symbols-x86_64.dylib";
    let id = identity(&std::fs::read(dir.join(file)).unwrap());
    let load = 0x1_0420_0000u64;
    let module = Module {
        name: file.into(),
        path: String::new(),
        start_avma: load,
        end_avma: load + id.text_size,
        base_avma: load,
        code_id: id.uuid.unwrap().to_vec(),
        debug_id: id.uuid.unwrap(),
        age: 0,
        debug_file: file.into(),
        format: vignette::ObjectFormat::MachO,
    };
    // framed (at 0x520) called from big (at 0x550): the leaf frame exact, the caller's a
    // return address minus one.
    let profile = Profile {
        start_unix_ns: 0,
        duration_ns: 1_000_000,
        clock: Clock::Cpu,
        interval_ns: 1_000_000,
        max_frames: 128,
        modules: vec![module],
        frames: vec![
            Frame {
                module: 1,
                address: 0x560,
            },
            Frame {
                module: 1,
                address: 0x524,
            },
        ],
        stacks: vec![
            StackNode {
                parent: 0,
                frame: 0,
            },
            StackNode {
                parent: 1,
                frame: 1,
            },
        ],
        threads: vec![Thread {
            tid: 0x1503,
            name: "main".into(),
            samples: vec![Sample {
                dt_us: 10,
                stack: 1,
                weight: 1,
                end: EndReason::Root,
                labels: 0,
            }],
        }],
        lost: Lost::default(),
        chunk: Default::default(),
        labels: Default::default(),
        backend: vignette::Backend::Suspension,
        metadata: Vec::new(),
        system: Vec::new(),
        process_cpu_ns: 0,
        pid: 0,
        rates: Vec::new(),
        jit: Vec::new(),
        heap: None,
    };
    let at = dir.join("mac.vignette");
    std::fs::write(&at, profile.encode()).unwrap();
    let out = dir.join("mac.collapsed");
    let status = Command::new(env!("CARGO_BIN_EXE_vignette"))
        .args(["convert", "--to", "collapsed", "--symbols"])
        .arg(dir.join("store"))
        .arg("-o")
        .arg(&out)
        .arg(&at)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let collapsed = std::fs::read_to_string(&out).unwrap();
    assert!(
        collapsed.contains("big;framed 1"),
        "resolved stacks: {collapsed}"
    );
}
