//! The module map: every executable, shared library and vDSO mapped into the process, with the
//! identifiers symbol stores use to find their symbols.
//!
//! Built outside the signal handler (from `dl_iterate_phdr` on Linux, the loader's module list
//! on Windows) into fixed-size tables, and append-only during a session: a module that is
//! unloaded stays listed (marked unloaded), so frames captured while it was mapped keep their
//! meaning.
//!
//! Identifiers follow Breakpad's `dump_syms` exactly, so that any Breakpad symbol store serves.
//! ELF: the *code id* is the GNU build ID; the *debug id* is its first 16 bytes as a GUID (the
//! first three fields byte-swapped) plus age 0; without a build ID, the first page of `.text`
//! XORed in 16-byte blocks stands in; module-relative addresses use Breakpad's base, the lowest
//! `PT_LOAD` address. PE ([`pe`]): the debug id is the PDB GUID and age from the CodeView
//! record, the debug file the PDB's name, the code id the time stamp and image size; addresses
//! are relative to the image base.
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

#[cfg(any(target_os = "linux", target_os = "android"))]
mod elf;
mod ids;
pub mod macho;
pub mod pe;

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use elf::extent;
#[cfg(any(target_os = "linux", target_os = "android"))]
use elf::{build_id_of, text_hash};
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use elf::{file_section, object_path, FileSection};
pub use ids::{gnu_build_id, guid_order};

use crate::error::Result;
#[cfg(any(target_os = "linux", target_os = "android"))]
use crate::sys::dl::LoadedObject;
use crate::sys::mem::{Region, Zeroed};

pub use crate::profile::ObjectFormat;

/// Longest build ID kept (GNU build IDs are 20 bytes for SHA-1, 16 for MD5/UUID).
pub const MAX_BUILD_ID: usize = 32;

#[derive(Clone, Copy)]
struct ModuleRec {
    start: u64,
    end: u64,
    base: u64,
    eh_frame_hdr: u64,
    build_id: [u8; MAX_BUILD_ID],
    build_id_len: u32,
    debug_id: [u8; 16],
    age: u32,
    format: u8,
    loaded: u32,
    path: (u32, u32),
    name: (u32, u32),
    /// The debug file's name (a PE module's PDB); empty when it is the module's own name.
    debug_file: (u32, u32),
    /// The code map epochs in which the module was listed: `first..=last` (`u32::MAX` while
    /// loaded).
    first_epoch: u32,
    last_epoch: u32,
}
// SAFETY: integers and byte arrays only; all-zero is a valid (empty) record.
unsafe impl Zeroed for ModuleRec {}

/// Whether two records are the same file mapped at the same place (a library loaded again):
/// the same range, base, debug id and build ID.
fn same_file(a: &ModuleRec, b: &ModuleRec) -> bool {
    (a.start, a.end, a.base, a.debug_id, a.build_id_len)
        == (b.start, b.end, b.base, b.debug_id, b.build_id_len)
        && a.build_id == b.build_id
}

/// One module as stored in the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Module<'a> {
    /// File name, e.g. `libc.so.6`.
    pub name: &'a str,
    /// Full path as the loader knows it (the executable's from `/proc/self/exe`).
    pub path: &'a str,
    /// First mapped address (actual, in this process).
    pub start_avma: u64,
    /// One past the last mapped address.
    pub end_avma: u64,
    /// Breakpad's base: module-relative address = avma - base.
    pub base_avma: u64,
    /// GNU build ID bytes (the code id); empty if the module has none.
    pub build_id: &'a [u8],
    /// Breakpad debug id GUID bytes, in the order they are printed.
    pub debug_id: [u8; 16],
    /// Breakpad debug id age (0 for ELF).
    pub age: u32,
    /// The file its symbols are made from and stored under: its own name for ELF, the PDB's
    /// name for PE.
    pub debug_file: &'a str,
    /// ELF or PE.
    pub format: ObjectFormat,
    /// Address of `.eh_frame_hdr` in memory, 0 if none.
    pub eh_frame_hdr_avma: u64,
    /// Whether the module is still mapped.
    pub loaded: bool,
}

/// A fixed-capacity, append-only list of modules.
pub struct ModuleMap {
    recs: Region<ModuleRec>,
    len: usize,
    strings: Region<u8>,
    strings_len: usize,
    /// Bit i: module i was seen in the current pass.
    seen: [u64; 16],
    seen_overflow: bool,
    listed: usize,
}

impl ModuleMap {
    /// Room for `capacity` modules and `string_bytes` bytes of names and paths.
    pub fn new(capacity: usize, string_bytes: usize) -> Result<Self> {
        Ok(ModuleMap {
            recs: Region::new(capacity)?,
            len: 0,
            strings: Region::new(string_bytes)?,
            strings_len: 0,
            seen: [0; 16],
            seen_overflow: false,
            listed: 0,
        })
    }

    /// Forgets every module (a new session starts from what is loaded now).
    pub fn clear(&mut self) {
        self.len = 0;
        self.strings_len = 0;
    }

    /// Number of modules listed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no module is listed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes mapped for the map.
    pub fn mapped_bytes(&self) -> usize {
        self.recs.mapped_bytes() + self.strings.mapped_bytes()
    }

    /// Module `i`.
    pub fn get(&self, i: usize) -> Option<Module<'_>> {
        let r = self.recs.get(..self.len)?.get(i)?;
        let s = |(off, len): (u32, u32)| {
            self.strings
                .get(off as usize..(off + len) as usize)
                .and_then(|b| core::str::from_utf8(b).ok())
                .unwrap_or("")
        };
        let name = s(r.name);
        Some(Module {
            name,
            path: s(r.path),
            debug_file: if r.debug_file.1 == 0 {
                name
            } else {
                s(r.debug_file)
            },
            age: r.age,
            format: match r.format {
                f if f == ObjectFormat::Pe as u8 => ObjectFormat::Pe,
                f if f == ObjectFormat::MachO as u8 => ObjectFormat::MachO,
                _ => ObjectFormat::Elf,
            },
            start_avma: r.start,
            end_avma: r.end,
            base_avma: r.base,
            build_id: r.build_id.get(..r.build_id_len as usize).unwrap_or(&[]),
            debug_id: r.debug_id,
            eh_frame_hdr_avma: r.eh_frame_hdr,
            loaded: r.loaded != 0,
        })
    }

    /// Iterates over all listed modules.
    pub fn iter(&self) -> impl Iterator<Item = Module<'_>> + '_ {
        (0..self.len).filter_map(|i| self.get(i))
    }

    /// The earliest code map epoch a listed module was listed in (`u32::MAX` when none is).
    pub fn first_epoch(&self) -> u32 {
        let recs = self.recs.get(..self.len).unwrap_or_default();
        recs.iter().map(|r| r.first_epoch).min().unwrap_or(u32::MAX)
    }

    /// The module mapped at `avma` when a sample was taken with the code map's table of
    /// `epoch`, as (index, module-relative address); `None` when no module was, or when it
    /// cannot be known (a library unloaded right after that table and another file loaded at
    /// the same address: which one ran is not recorded; the same file loaded again is the same
    /// code).
    pub fn attribute(&self, avma: u64, epoch: u32) -> Option<(u32, u64)> {
        let recs = self.recs.get(..self.len)?;
        let holds = |r: &ModuleRec| r.start <= avma && avma < r.end;
        let at = recs
            .iter()
            .position(|r| holds(r) && r.first_epoch <= epoch && epoch <= r.last_epoch);
        let index = match at {
            // Listed at the sample's epoch and still (or later) listed: it was mapped then.
            Some(i) if recs[i].last_epoch > epoch => i,
            // Unloaded right after that epoch: only if no other file took its place.
            Some(i) => {
                let replaced = (recs.iter())
                    .any(|r| holds(r) && r.first_epoch > epoch && !same_file(r, &recs[i]));
                if replaced {
                    return None;
                }
                i
            }
            // Loaded after the table the handler used was published, but before the sample
            // (it was running code there): the next epoch's module.
            None => recs.iter().position(|r| {
                holds(r) && r.first_epoch == epoch.wrapping_add(1) && r.first_epoch != 0
            })?,
        };
        Some((index as u32, avma - recs[index].base))
    }

    /// The module mapped at `avma` for a sample whose handler found there another object
    /// than the table of epoch `epoch` lists: the first module loaded there after that epoch,
    /// or `None` when none was, or other files were too (which one ran is not recorded).
    pub fn attribute_after(&self, avma: u64, epoch: u32) -> Option<(u32, u64)> {
        let recs = self.recs.get(..self.len)?;
        let after = |r: &ModuleRec| {
            r.start <= avma && avma < r.end && r.first_epoch > epoch && r.first_epoch != 0
        };
        let index = recs.iter().position(after)?;
        let first = &recs[index];
        if !recs
            .iter()
            .filter(|r| after(r))
            .all(|r| same_file(r, first))
        {
            return None;
        }
        Some((index as u32, avma - first.base))
    }

    /// Starts a pass over the loader's list (see [`crate::code_map::CodeMap::refresh`]).
    pub(crate) fn begin_pass(&mut self) {
        self.seen = [0; 16];
        self.seen_overflow = false;
        self.listed = self.len;
    }

    /// Notes that `o` is loaded in `epoch`: the module already listed at its address with the
    /// same identity, or a new one (as many as fit).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(crate) fn observe(&mut self, o: &LoadedObject<'_>, epoch: u32) {
        let Some((start, end, base)) = extent(o) else {
            return;
        };
        self.note(start, end, build_id_of(o), None, |m| {
            m.append(o, start, end, base, epoch)
        });
    }

    /// Notes that the PE image `m` (whose identity is `id`) is loaded in `epoch`, as
    /// [`ModuleMap::observe`] does for ELF.
    #[cfg(windows)]
    pub(crate) fn observe_pe(
        &mut self,
        m: &crate::sys::loader::LoadedModule<'_>,
        id: &pe::PeIdentity,
        epoch: u32,
    ) {
        let code_id = pe_code_id(id);
        let (start, end) = (m.base, m.base.saturating_add(m.size));
        self.note(start, end, &code_id, Some(m.path), |map| {
            let mut rec = new_rec(start, end, start, epoch);
            rec.format = ObjectFormat::Pe as u8;
            rec.build_id[..8].copy_from_slice(&code_id);
            rec.build_id_len = 8;
            rec.path = map.intern_str(m.path);
            let name = m
                .path
                .rsplit(|&b| b == b'\\' || b == b'/')
                .next()
                .unwrap_or(m.path);
            rec.name = map.intern_str(name);
            if let Some(cv) = &id.codeview {
                rec.debug_id = cv.guid;
                rec.age = cv.age;
                rec.debug_file = map.intern_str(cv.pdb_file_name());
            }
            map.push(rec)
        });
    }

    /// Notes that the Mach-O image `m` (whose identity is `id`) is loaded in `epoch`, as
    /// `observe` does for ELF: its `__TEXT` range, its UUID as code id and (in order, age 0)
    /// debug id.
    #[cfg(target_os = "macos")]
    pub(crate) fn observe_macho(
        &mut self,
        m: &crate::sys::loader::LoadedModule<'_>,
        id: &macho::MachOIdentity,
        epoch: u32,
    ) {
        let uuid = id.uuid.unwrap_or_default();
        let code_id: &[u8] = if id.uuid.is_some() { &uuid } else { &[] };
        let (start, end) = (m.base, m.base.saturating_add(id.text_size));
        self.note(start, end, code_id, Some(m.path), |map| {
            let mut rec = new_rec(start, end, start, epoch);
            rec.format = ObjectFormat::MachO as u8;
            rec.build_id[..code_id.len()].copy_from_slice(code_id);
            rec.build_id_len = code_id.len() as u32;
            rec.debug_id = uuid;
            rec.path = map.intern_str(m.path);
            let name = m.path.rsplit(|&b| b == b'/').next().unwrap_or(m.path);
            rec.name = map.intern_str(name);
            map.push(rec)
        });
    }

    /// Marks the module at `start..end` with code id `code_id` (and, if given, file `path`) as
    /// seen in this pass, appending it with `append` if it is not listed yet.
    fn note(
        &mut self,
        start: u64,
        end: u64,
        code_id: &[u8],
        path: Option<&[u8]>,
        append: impl FnOnce(&mut Self) -> Option<usize>,
    ) {
        let strings = &self.strings;
        let existing = self.recs.get(..self.listed).and_then(|recs| {
            recs.iter().position(|r| {
                let (at, len) = (r.path.0 as usize, r.path.1 as usize);
                r.loaded != 0
                    && r.start == start
                    && r.end == end
                    && r.build_id.get(..r.build_id_len as usize) == Some(code_id)
                    && path.is_none_or(|p| strings.get(at..at + len) == Some(p))
            })
        });
        let index = match existing {
            Some(i) => i,
            None => match append(self) {
                Some(i) => i,
                None => return,
            },
        };
        match self.seen.get_mut(index / 64) {
            Some(word) => *word |= 1 << (index % 64),
            None => self.seen_overflow = true,
        }
    }

    /// Appends `rec`, if there is room; returns its index.
    fn push(&mut self, rec: ModuleRec) -> Option<usize> {
        let index = self.len;
        *self.recs.get_mut(index)? = rec;
        self.len += 1;
        Some(index)
    }

    /// Ends a pass: modules listed before but not seen in `epoch` are unloaded.
    pub(crate) fn end_pass(&mut self, epoch: u32) {
        if self.seen_overflow {
            return;
        }
        let seen = self.seen;
        for (i, r) in self.recs.iter_mut().enumerate().take(self.listed) {
            if r.loaded != 0 && seen[i / 64] & (1 << (i % 64)) == 0 {
                r.loaded = 0;
                r.last_epoch = epoch.wrapping_sub(1);
            }
        }
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn append(
        &mut self,
        o: &LoadedObject<'_>,
        start: u64,
        end: u64,
        base: u64,
        epoch: u32,
    ) -> Option<usize> {
        if self.len >= self.recs.len() {
            return None;
        }
        let mut rec = new_rec(start, end, base, epoch);
        let id = build_id_of(o);
        rec.build_id[..id.len()].copy_from_slice(id);
        rec.build_id_len = id.len() as u32;
        for ph in o.phdrs {
            if ph.p_type == libc::PT_GNU_EH_FRAME {
                rec.eh_frame_hdr = o.bias.wrapping_add(ph.p_vaddr);
            }
        }
        let mut buf = [0u8; 1024];
        let path = object_path(o, &mut buf);
        rec.path = self.intern_str(path);
        let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
        rec.name = self.intern_str(name);
        let identifier = if rec.build_id_len > 0 {
            let mut id = [0u8; 16];
            let n = (rec.build_id_len as usize).min(16);
            id[..n].copy_from_slice(&rec.build_id[..n]);
            id
        } else {
            text_hash(path).unwrap_or([0; 16])
        };
        rec.debug_id = guid_order(identifier);
        self.push(rec)
    }

    /// Starts this (cleared) map as the continuation of `prev` for a new chunk of the same
    /// session: the modules still loaded, and those unloaded by the latest change (a sample
    /// taken just before it may still be on its way), with their epochs.
    pub(crate) fn carry_from(&mut self, prev: &ModuleMap) {
        self.clear();
        let Some(recs) = prev.recs.get(..prev.len) else {
            return;
        };
        let after = |r: &ModuleRec| match r.loaded {
            0 => r.last_epoch.wrapping_add(1),
            _ => r.first_epoch,
        };
        let newest = recs.iter().map(after).max().unwrap_or(0);
        for i in 0..recs.len() {
            if recs
                .get(i)
                .is_some_and(|r| r.loaded != 0 || after(r) == newest)
            {
                self.adopt(prev, i);
            }
        }
    }

    /// Module `i` of `from` in this map: the same record if listed, else a copy (`None` when
    /// this map is full).
    pub(crate) fn adopt(&mut self, from: &ModuleMap, i: usize) -> Option<usize> {
        let r = *from.recs.get(..from.len)?.get(i)?;
        let text = |(at, len): (u32, u32)| {
            from.strings
                .get(at as usize..(at as usize).saturating_add(len as usize))
                .unwrap_or(&[])
        };
        let strings = &self.strings;
        let found = self.recs.get(..self.len)?.iter().position(|m| {
            let mine = |(at, len): (u32, u32)| {
                strings
                    .get(at as usize..(at as usize).saturating_add(len as usize))
                    .unwrap_or(&[])
            };
            m.start == r.start
                && m.end == r.end
                && m.first_epoch == r.first_epoch
                && m.build_id == r.build_id
                && mine(m.path) == text(r.path)
        });
        if found.is_some() {
            return found;
        }
        if self.len >= self.recs.len() {
            return None;
        }
        let mut rec = r;
        rec.path = self.intern_str(text(r.path));
        rec.name = self.intern_str(text(r.name));
        rec.debug_file = self.intern_str(text(r.debug_file));
        self.push(rec)
    }

    fn intern_str(&mut self, s: &[u8]) -> (u32, u32) {
        let s = match core::str::from_utf8(s) {
            Ok(s) => s.as_bytes(),
            Err(e) => &s[..e.valid_up_to()],
        };
        let start = self.strings_len;
        match self.strings.get_mut(start..start + s.len()) {
            Some(dst) => {
                dst.copy_from_slice(s);
                self.strings_len += s.len();
                (start as u32, s.len() as u32)
            }
            None => (0, 0),
        }
    }
}

/// A loaded module's record with its range and first epoch, identity still blank.
fn new_rec(start: u64, end: u64, base: u64, epoch: u32) -> ModuleRec {
    ModuleRec {
        start,
        end,
        base,
        eh_frame_hdr: 0,
        build_id: [0; MAX_BUILD_ID],
        build_id_len: 0,
        debug_id: [0; 16],
        age: 0,
        format: ObjectFormat::Elf as u8,
        loaded: 1,
        path: (0, 0),
        name: (0, 0),
        debug_file: (0, 0),
        first_epoch: epoch,
        last_epoch: u32::MAX,
    }
}

/// A PE module's code id as stored: time stamp and image size, big-endian.
#[cfg(windows)]
fn pe_code_id(id: &pe::PeIdentity) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&id.timestamp.to_be_bytes());
    b[4..].copy_from_slice(&id.size_of_image.to_be_bytes());
    b
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
pub(crate) mod tests {
    use super::*;
    use crate::code_map::CodeMap;

    /// Held by unit tests that load libraries or expect the loader's list not to change.
    pub(crate) static LOADER: std::sync::Mutex<()> = std::sync::Mutex::new(());

    pub(crate) fn loader_lock() -> std::sync::MutexGuard<'static, ()> {
        LOADER.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[test]
    fn debug_id_matches_breakpad_byte_order() {
        let build_id: [u8; 16] =
            *b"\xb7\xe2\xd4\x7d\x9b\xad\x63\x62\x74\x16\x2f\x3b\xe1\x73\x7b\xaf";
        assert_eq!(
            guid_order(build_id),
            *b"\x7d\xd4\xe2\xb7\xad\x9b\x62\x63\x74\x16\x2f\x3b\xe1\x73\x7b\xaf"
        );
    }

    #[test]
    fn parses_build_id_notes() {
        let mut notes = std::vec::Vec::new();
        // An unrelated note first (ABI tag), then the build id.
        notes.extend_from_slice(&4u32.to_ne_bytes());
        notes.extend_from_slice(&16u32.to_ne_bytes());
        notes.extend_from_slice(&1u32.to_ne_bytes());
        notes.extend_from_slice(b"GNU\0");
        notes.extend_from_slice(&[0; 16]);
        notes.extend_from_slice(&4u32.to_ne_bytes());
        notes.extend_from_slice(&3u32.to_ne_bytes());
        notes.extend_from_slice(&3u32.to_ne_bytes());
        notes.extend_from_slice(b"GNU\0");
        notes.extend_from_slice(&[1, 2, 3, 0]);
        assert_eq!(gnu_build_id(&notes), Some(&[1u8, 2, 3][..]));
        assert_eq!(gnu_build_id(&notes[..40]), None);
        assert_eq!(gnu_build_id(&[0xff; 12]), None);
    }

    #[test]
    fn lists_this_process_with_build_ids() {
        let _g = loader_lock();
        let mut map = ModuleMap::new(256, 64 * 1024).unwrap();
        let code = CodeMap::new(256).unwrap();
        assert!(code.refresh(&mut map, false));
        assert!(
            !code.refresh(&mut map, false),
            "nothing was loaded in between"
        );
        let epoch = code.epoch();
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let main = map
            .iter()
            .find(|m| m.path == exe.to_str().unwrap())
            .expect("executable listed");
        let here = lists_this_process_with_build_ids as *const () as u64;
        let (i, rel) = map
            .attribute(here, epoch)
            .expect("this function is in a module");
        assert_eq!(map.get(i as usize).unwrap().path, main.path);
        assert_eq!(rel, here - main.base_avma);
        assert!(!main.build_id.is_empty(), "rustc links with --build-id");
        let mut first16 = [0u8; 16];
        first16.copy_from_slice(&main.build_id[..16]);
        assert_eq!(main.debug_id, guid_order(first16));
        assert!(main.eh_frame_hdr_avma != 0);
        let libc = map
            .iter()
            .find(|m| m.name.starts_with("libc.so"))
            .expect("libc listed");
        assert!(libc.build_id.len() == 20);
        // SAFETY: getauxval has no preconditions. (qemu-user gives its guests no vDSO.)
        if unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } != 0 {
            assert!(
                map.iter().any(|m| m.name.starts_with("linux-vdso")),
                "the vDSO is listed"
            );
        }
        assert!(map.attribute(0x10, epoch).is_none());
    }

    #[test]
    fn follows_dlopen_and_dlclose() {
        let _g = loader_lock();
        let mut map = ModuleMap::new(256, 64 * 1024).unwrap();
        let code = CodeMap::new(256).unwrap();
        code.refresh(&mut map, false);
        let listed = |map: &ModuleMap| {
            map.iter()
                .find(|m| m.name == "libresolv.so.2")
                .map(|m| m.loaded)
        };
        assert_eq!(listed(&map), None);
        // SAFETY: loading and unloading a system library with no constructors we depend on.
        let lib = unsafe { libc::dlopen(c"libresolv.so.2".as_ptr(), libc::RTLD_NOW) };
        assert!(!lib.is_null());
        assert!(code.refresh(&mut map, false));
        assert_eq!(listed(&map), Some(true));
        let loaded_in = code.epoch();
        // SAFETY: lib came from dlopen and is closed once.
        unsafe { libc::dlclose(lib) };
        assert!(code.refresh(&mut map, false));
        assert_eq!(
            listed(&map),
            Some(false),
            "kept in the list, marked unloaded"
        );
        let gone = map.iter().find(|m| m.name == "libresolv.so.2").unwrap();
        let name_at = |epoch| {
            map.attribute(gone.start_avma, epoch)
                .map(|(i, _)| map.get(i as usize).unwrap().name)
        };
        // A sample taken while it was loaded is its; one taken after, not.
        assert_eq!(name_at(loaded_in), Some("libresolv.so.2"));
        assert_eq!(
            name_at(loaded_in - 1),
            Some("libresolv.so.2"),
            "loaded just after"
        );
        assert!(name_at(code.epoch()).is_none_or(|n| n != "libresolv.so.2"));
    }

    #[test]
    fn text_hash_reads_the_executable() {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let id = text_hash(exe.as_os_str().as_encoded_bytes()).expect(".text found");
        assert_ne!(id, [0; 16]);
        assert!(text_hash(b"/proc/self/status").is_none());
        let eh = file_section(exe.as_os_str().as_encoded_bytes(), b".eh_frame").unwrap();
        assert!(eh.size > 0 && eh.addr > 0);
        assert!(file_section(exe.as_os_str().as_encoded_bytes(), b".no_such").is_none());
    }
}
