//! Resolving a profile's frames to functions, files, lines and inline frames.

use std::collections::BTreeSet;

use super::store::SymbolStore;
use super::sym_file::Location;
use super::{ErrorKind, ToolError};
use crate::Profile;

/// Every frame of a profile, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// Per profile frame: its (inline) frames, innermost first; never empty. A frame without
    /// symbols reads `module+0xoffset`.
    pub frames: Vec<Vec<Location>>,
    /// Modules (name, debug id) that had frames but no symbols.
    pub missing: Vec<(String, String)>,
    /// Why each module in `missing` has no symbols (none given, a damaged, mismatched or
    /// unreadable symbol file, symbols that cover none of its frames, an unsafe module name),
    /// and files that could not be used; not kept in a resolved profile.
    pub warnings: Vec<String>,
}

impl Resolution {
    /// The locations of stack node `node`, outermost (root) first, inline frames expanded.
    pub fn stack<'a>(&'a self, profile: &Profile, node: u32) -> Vec<&'a Location> {
        let mut out = Vec::new();
        let mut next = Some(node);
        while let Some(n) = next.and_then(|n| profile.stacks.get(n as usize)) {
            if let Some(frames) = self.frames.get(n.frame as usize) {
                out.extend(frames.iter());
            }
            next = n.parent.checked_sub(1);
        }
        out.reverse();
        out
    }
}

/// The name a frame without symbols gets: `module+0xoffset`, or `0xaddress` outside modules;
/// `[no stack]` for address 0 outside modules, which stands for a sample kept without its
/// stack (a heap sample that could not be walked, see `HeapLost`).
pub fn fallback_name(profile: &Profile, f: &crate::Frame) -> String {
    match f
        .module
        .checked_sub(1)
        .and_then(|m| profile.modules.get(m as usize))
    {
        Some(m) => format!("{}+{:#x}", m.name, f.address),
        None if f.address == 0 => "[no stack]".to_string(),
        None => format!("{:#x}", f.address),
    }
}

impl Resolution {
    /// How many frames were resolved to a function (a frame named only by the section it is
    /// in, such as a PLT stub's, does not count).
    pub fn resolved_count(&self, profile: &Profile) -> usize {
        self.frames
            .iter()
            .zip(&profile.frames)
            .filter(|(locs, f)| {
                locs.len() > 1
                    || locs.first().is_some_and(|l| {
                        l.function != fallback_name(profile, f) && !is_section_record(l)
                    })
            })
            .count()
    }
}

/// Whether `l` only names the section an address is in (`<.text ELF section in libfoo.so>`,
/// what dump_syms writes where no symbol starts), not a function.
fn is_section_record(l: &Location) -> bool {
    l.file.is_none() && l.function.starts_with('<') && l.function.contains(" ELF section in ")
}

/// Whether `found` names nothing but the code section (`<.text ELF section in …>`, a stripped
/// binary's code outside its few exported symbols): the frame's offset says more.
fn only_text_section(found: &[Location]) -> bool {
    found
        .iter()
        .all(|l| is_section_record(l) && l.function.starts_with("<.text "))
}

/// Per frame, the name the JIT's perf map gives it (frames outside every module only): the
/// last entry of [`Profile::jit`] that covers its address. Each frame is named once, entries
/// taken newest first, so the cost is linear in frames and entries (and a log).
fn jit_names(profile: &Profile) -> Vec<Option<&str>> {
    let mut names = vec![None; profile.frames.len()];
    if profile.jit.is_empty() {
        return names;
    }
    // Frames outside every module, by address.
    let mut order: Vec<(u64, usize)> = (profile.frames.iter().enumerate())
        .filter(|(_, f)| f.module == 0)
        .map(|(i, f)| (f.address, i))
        .collect();
    order.sort_unstable();
    // next[k]: the first position at or after k not yet named (path-halving union-find).
    let mut next: Vec<usize> = (0..=order.len()).collect();
    fn find(next: &mut [usize], mut k: usize) -> usize {
        while next[k] != k {
            next[k] = next[next[k]];
            k = next[k];
        }
        k
    }
    for j in profile.jit.iter().rev() {
        let lo = order.partition_point(|&(a, _)| a < j.start);
        let hi = order.partition_point(|&(a, _)| a < j.start.saturating_add(j.size));
        let mut k = find(&mut next, lo);
        while k < hi {
            names[order[k].1] = Some(j.name.as_str());
            next[k] = k + 1;
            k = find(&mut next, k + 1);
        }
    }
    names
}

/// Resolves every frame of `profile` with the symbols in `store`. Frames of modules without
/// symbols keep a readable `module+0xoffset` name; no frame or sample is dropped. A bad symbol
/// file costs its module only: the reason is in [`Resolution::warnings`].
pub fn resolve(profile: &Profile, store: &mut SymbolStore) -> Result<Resolution, ToolError> {
    let mut missing = BTreeSet::new();
    // Only modules that have frames are looked up.
    let mut used = vec![false; profile.modules.len()];
    for f in &profile.frames {
        if let Some(u) = (f.module as usize)
            .checked_sub(1)
            .and_then(|m| used.get_mut(m))
        {
            *u = true;
        }
    }
    // Each used module's symbols, and whether the store already said why it has none.
    let tables: Vec<_> = profile
        .modules
        .iter()
        .zip(&used)
        .map(|(m, &used)| {
            let before = store.warnings.len();
            let table = used
                .then(|| store.find(&m.debug_file, &m.debug_id_string()))
                .flatten();
            (table, store.warnings.len() > before)
        })
        .collect();
    // Per frame, what its module's symbols say; per module, how many frames they name (a
    // record that only names a section, as dump_syms writes for code outside every symbol,
    // does not count).
    let mut coverage = vec![(0usize, 0usize); profile.modules.len()];
    let found: Vec<Vec<Location>> = profile
        .frames
        .iter()
        .map(|f| {
            let i = (f.module as usize).checked_sub(1)?;
            let found = tables.get(i)?.0.as_ref()?.lookup(f.address);
            let c = coverage.get_mut(i)?;
            c.1 += found.iter().any(|l| !is_section_record(l)) as usize;
            Some(found)
        })
        .map(Option::unwrap_or_default)
        .collect();
    for f in &profile.frames {
        if let Some(c) = (f.module as usize)
            .checked_sub(1)
            .and_then(|i| coverage.get_mut(i))
        {
            c.0 += 1;
        }
    }
    // Symbols that name none of a module's frames are no symbols (a stripped binary's).
    let jit = jit_names(profile);
    let frames = profile
        .frames
        .iter()
        .zip(found)
        .zip(jit)
        .map(|((f, found), jit)| {
            if let Some(name) = jit {
                return vec![Location {
                    function: name.to_string(),
                    file: None,
                    line: 0,
                }];
            }
            let useful = (f.module as usize)
                .checked_sub(1)
                .and_then(|i| coverage.get(i))
                .is_some_and(|&(_, named)| named > 0);
            if useful && !found.is_empty() && !only_text_section(&found) {
                found
            } else {
                vec![Location {
                    function: fallback_name(profile, f),
                    file: None,
                    line: 0,
                }]
            }
        })
        .collect();
    // Every module left without symbols gets one line that says why.
    let mut warnings = std::mem::take(&mut store.warnings);
    for ((m, (table, warned)), &(total, resolved)) in
        profile.modules.iter().zip(&tables).zip(&coverage)
    {
        let (name, id) = (&m.name, m.debug_id_string());
        match table {
            None if total > 0 => {
                if !warned && store.is_empty() {
                    warnings.push(format!(
                        "no symbols for {name} (debug ID {id}): no symbols were given (--symbols)"
                    ));
                } else if !warned && is_vdso(name) {
                    warnings.push(format!(
                        "no symbols for {name} (debug ID {id}): the kernel's vDSO has no file \
                         to make symbols from; its frames keep their offsets"
                    ));
                } else if !warned {
                    warnings.push(format!(
                        "no symbols for {name} (debug ID {id}): none in the symbols given (a \
                         store holds them as {name}/{id}/{name}.sym, which `vignette symbols \
                         BINARY --store DIR` writes from the unstripped build)"
                    ));
                }
                missing.insert((name.clone(), id));
            }
            Some(t) if total > 0 && resolved == 0 => {
                warnings.push(format!(
                    "no symbols for {name} (debug ID {id}): {} names none of its {total} \
                     frames (made from a stripped binary? Make symbols from the unstripped \
                     build or its debug file)",
                    t.source
                ));
                missing.insert((name.clone(), id));
            }
            _ => {}
        }
    }
    Ok(Resolution {
        frames,
        missing: missing.into_iter().collect(),
        warnings,
    })
}

/// The eight bytes a resolved profile starts with.
pub const RESOLVED_MAGIC: [u8; 8] = *b"VIGNRSLV";
/// The resolved-profile layout version (2: the profile inside uses the version-2 sample stream;
/// 3: the same layout, with profile format 3's end reasons; 4: the profile inside as format 8
/// has it; 5: as format 11 has it, with the rates, the JIT's names and the heap). Bumped with
/// every change of [`Profile`]'s fields: the profile inside is written as the struct is, so an
/// older layout cannot be read (resolve again).
const RESOLVED_VERSION: u16 = 5;

/// A profile together with its resolution: what `vignette resolve -o` writes and `vignette
/// convert` reads without needing symbols again. postcard, after [`RESOLVED_MAGIC`] and a
/// version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResolvedProfile {
    /// The profile.
    pub profile: Profile,
    /// Its frames, resolved (see [`Resolution::frames`]).
    pub frames: Vec<Vec<Location>>,
    /// Modules without symbols.
    pub missing: Vec<(String, String)>,
}

impl ResolvedProfile {
    /// Bundles `profile` with `res`.
    pub fn new(profile: Profile, res: Resolution) -> Self {
        ResolvedProfile {
            profile,
            frames: res.frames,
            missing: res.missing,
        }
    }

    /// Splits into the profile and its resolution.
    pub fn into_parts(self) -> (Profile, Resolution) {
        (
            self.profile,
            Resolution {
                frames: self.frames,
                missing: self.missing,
                warnings: Vec::new(),
            },
        )
    }

    /// The encoded bytes.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(&(RESOLVED_MAGIC, RESOLVED_VERSION, self)).unwrap_or_default()
    }

    /// Decodes a resolved profile; `None` if `bytes` are not one (then try a plain profile).
    pub fn decode(bytes: &[u8], source: &str) -> Option<Result<Self, ToolError>> {
        let rest = bytes.strip_prefix(&RESOLVED_MAGIC)?;
        Some(
            (|| {
                let (version, rest) =
                    postcard::take_from_bytes::<u16>(rest).map_err(|e| e.to_string())?;
                if version != RESOLVED_VERSION {
                    let what = if version > RESOLVED_VERSION {
                        "upgrade vignette"
                    } else {
                        "run `vignette resolve` on the original profile again"
                    };
                    return Err(format!(
                        "resolved-profile version {version} is not supported; {what}"
                    ));
                }
                let r: ResolvedProfile =
                    postcard::from_bytes(rest).map_err(|e| format!("damaged: {e}"))?;
                r.profile
                    .validate()
                    .map_err(|e| format!("damaged profile inside: {e}"))?;
                if r.frames.len() != r.profile.frames.len() || r.frames.iter().any(|f| f.is_empty())
                {
                    return Err("damaged: frames and resolution do not match".into());
                }
                Ok(r)
            })()
            .map_err(|e| ToolError::new(ErrorKind::Profile, format!("{source}: {e}"))),
        )
    }
}

/// Whether `name` is the kernel's vDSO, which has no file on disk.
pub(crate) fn is_vdso(name: &str) -> bool {
    name.starts_with("linux-vdso") || name.starts_with("linux-gate")
}
