//! Each loaded module's unwind tables, copied into vignette's own memory: `.pdata` for the
//! Windows x64 unwinder ([`crate::unwind::pe`]); `__unwind_info` and `__eh_frame` for the
//! Mach-O walker ([`crate::unwind::macho`]).
//!
//! Refreshed on the sampler thread, never while a thread is suspended (listing modules takes
//! the loader's lock), and used only by whoever holds the sampler's job, one at a time: a
//! refresh and a walk never overlap. Whatever else the walks read of the live modules (unwind
//! codes, instructions) is read without faulting (`ReadProcessMemory`,
//! `mach_vm_read_overwrite`), which fails instead if a module was unloaded meanwhile.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::*};

use crate::error::Result;
use crate::modules::ModuleMap;
use crate::sys::loader::{self, LoadedModule};
use crate::sys::mem::{Region, Zeroed};
use crate::sys::memory::ProcessMemory;
use crate::unwind::{EndReason, ImageReader, Regs, StackReader};

/// Bytes of table copies kept. Windows: `.pdata` is 12 bytes per function (system DLLs have
/// 1 000 to 10 000 functions, large applications a few hundred thousand). macOS: a system
/// framework's `__unwind_info` is 10 KB to 1 MB; an image whose tables no longer fit is
/// walked by frame pointers (which macOS code keeps).
const TABLE_BYTES: usize = if cfg!(windows) { 16 << 20 } else { 64 << 20 };

/// A section copied into the pool: its address in the module, and where the copy is.
#[derive(Debug, Clone, Copy)]
struct Copied {
    /// Where the section is in the module (the Mach-O walker reads `__eh_frame`'s pointers
    /// relative to it; `.pdata` holds offsets from the image base).
    #[cfg_attr(windows, allow(dead_code))]
    avma: u64,
    at: usize,
    len: usize,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    start: u64,
    end: u64,
    sections: [Copied; 2],
}
// SAFETY: integers only; zero is valid.
unsafe impl Zeroed for Entry {}

/// What the tables keep of one module: the range it covers and up to two sections to copy
/// (address and length; 0 for none).
struct Described {
    start: u64,
    end: u64,
    sections: [(u64, usize); 2],
}

/// The tables of the modules loaded at the last refresh.
pub(crate) struct Tables {
    entries: Region<Entry>,
    len: usize,
    pool: Region<u8>,
    /// A hash of the loader's list (ranges and paths) when the tables were made.
    fingerprint: u64,
}

impl Tables {
    /// The entry of the module containing `avma`.
    fn entry(&self, avma: u64) -> Option<&Entry> {
        let entries = self.entries.get(..self.len)?;
        let i = entries.partition_point(|e| e.end <= avma);
        entries.get(i).filter(|e| e.start <= avma)
    }

    /// The copy of section `s` of `e`, if it has one.
    fn copy(&self, e: &Entry, s: usize) -> Option<&[u8]> {
        let c = e.sections.get(s)?;
        self.pool.get(c.at..c.at + c.len).filter(|b| !b.is_empty())
    }
}

/// The tables, behind a flag that keeps their single user single.
pub(crate) struct CodeMap {
    busy: AtomicBool,
    tables: UnsafeCell<Tables>,
    epoch: AtomicU32,
    /// The loader's change count ([`loader::changes`]) the tables were made after.
    seen_changes: AtomicU64,
}

// SAFETY: `tables` is only reached through `with`, which the `busy` flag makes exclusive.
unsafe impl Sync for CodeMap {}

fn mix(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(0x0100_0000_01b3)
}

/// The fingerprint of one listed module.
fn mix_module(h: u64, m: &LoadedModule<'_>) -> u64 {
    let (base, size, path) = m.key();
    path.iter()
        .fold(mix(mix(h, base), size), |h, &b| mix(h, b as u64))
}

impl CodeMap {
    /// Room for `capacity` modules.
    pub fn new(capacity: usize) -> Result<Self> {
        Ok(CodeMap {
            busy: AtomicBool::new(false),
            tables: UnsafeCell::new(Tables {
                entries: Region::new(capacity)?,
                len: 0,
                pool: Region::new(TABLE_BYTES)?,
                fingerprint: 0,
            }),
            epoch: AtomicU32::new(0),
            seen_changes: AtomicU64::new(u64::MAX),
        })
    }

    /// Whether the loader has loaded or unloaded anything since the tables were made (`false`
    /// when its notifications are not available: the sampler's periodic scan then finds it).
    pub fn loader_changed(&self) -> bool {
        loader::changes().is_some_and(|c| c != self.seen_changes.load(Acquire))
    }

    /// Runs `f` on the tables; `None` if they are in use (which the engine never lets happen).
    pub fn with<R>(&self, f: impl FnOnce(&mut Tables) -> R) -> Option<R> {
        if self.busy.swap(true, Acquire) {
            return None;
        }
        // SAFETY: the flag was clear and is now ours: no other reference to the tables exists
        // until we clear it.
        let r = f(unsafe { &mut *self.tables.get() });
        self.busy.store(false, Release);
        Some(r)
    }

    /// The epoch of the tables (see [`ModuleMap::attribute`]).
    pub fn epoch(&self) -> u32 {
        self.epoch.load(Acquire)
    }

    /// Bytes mapped for the tables.
    pub fn mapped_bytes(&self) -> usize {
        self.with(|t| t.entries.mapped_bytes() + t.pool.mapped_bytes())
            .unwrap_or(0)
    }

    /// Re-reads the loader's list if it changed since the last refresh (or `force`): the
    /// tables are rebuilt under a new epoch, and `modules` records which modules that epoch
    /// lists. Returns whether the tables changed. Not while a thread is suspended.
    pub fn refresh(&self, modules: &mut ModuleMap, force: bool) -> bool {
        self.with(|t| {
            // Read before listing: a change while listing makes the next call list again.
            let changes = loader::changes();
            let mut seen = 0xcbf2_9ce4_8422_2325u64;
            loader::for_each_module(|m| seen = mix_module(seen, m));
            if let Some(c) = changes {
                self.seen_changes.store(c, Release);
            }
            if !force && seen == t.fingerprint {
                return false;
            }
            let epoch = self.epoch.load(Acquire).wrapping_add(1);
            let (mut n, mut used, mut listed) = (0, 0usize, 0xcbf2_9ce4_8422_2325u64);
            modules.begin_pass();
            loader::for_each_module(|m| {
                listed = mix_module(listed, m);
                let Some(d) = describe(m, modules, epoch) else {
                    return;
                };
                let Some(slot) = t.entries.get_mut(n) else {
                    return;
                };
                let mut sections = [Copied {
                    avma: 0,
                    at: 0,
                    len: 0,
                }; 2];
                for (c, &(avma, len)) in sections.iter_mut().zip(d.sections.iter()) {
                    let copied = t
                        .pool
                        .get_mut(used..used.saturating_add(len))
                        .is_some_and(|dst| ProcessMemory.read(avma, dst));
                    *c = Copied {
                        avma,
                        at: used,
                        len: if copied { len } else { 0 },
                    };
                    if copied {
                        used += len;
                    }
                }
                *slot = Entry {
                    start: d.start,
                    end: d.end,
                    sections,
                };
                n += 1;
            });
            modules.end_pass(epoch);
            if let Some(entries) = t.entries.get_mut(..n) {
                entries.sort_unstable_by_key(|e| e.start);
            }
            t.len = n;
            t.fingerprint = listed;
            self.epoch.store(epoch, Release);
            true
        })
        .unwrap_or(false)
    }
}

/// A PE module: its `.pdata`, whole entries only.
#[cfg(windows)]
fn describe(m: &LoadedModule<'_>, modules: &mut ModuleMap, epoch: u32) -> Option<Described> {
    let id = crate::modules::pe::identity(&ProcessMemory, m.base)?;
    modules.observe_pe(m, &id, epoch);
    let (rva, size) = (id.exception.0 as u64, id.exception.1 as usize / 12 * 12);
    Some(Described {
        start: m.base,
        end: m.base.saturating_add(m.size),
        sections: [(m.base + rva, size), (0, 0)],
    })
}

/// A Mach-O image: its `__TEXT`, with `__unwind_info` and `__eh_frame`. The header and load
/// commands are read in one call (the identity reader's many small reads are served from
/// that copy).
#[cfg(target_os = "macos")]
fn describe(m: &LoadedModule<'_>, modules: &mut ModuleMap, epoch: u32) -> Option<Described> {
    let mut head = [0u8; 16 * 1024];
    let mut len = head.len();
    // The image may be smaller than the buffer (then read what there is, page by page).
    while len >= 4096 && !ProcessMemory.read(m.base, head.get_mut(..len)?) {
        len /= 2;
    }
    let image = Prefix {
        base: m.base,
        bytes: head.get(..len).filter(|_| len >= 4096).unwrap_or(&[]),
    };
    let id = crate::modules::macho::identity(&image, m.base)?;
    modules.observe_macho(m, &id, epoch);
    let section = |(off, len): (u64, u64)| (m.base.saturating_add(off), len as usize);
    Some(Described {
        start: m.base,
        end: m.base.saturating_add(id.text_size),
        sections: [section(id.unwind_info), section(id.eh_frame)],
    })
}

/// Module memory read from a copy of its first bytes where it can be, else from the process.
#[cfg(target_os = "macos")]
struct Prefix<'a> {
    base: u64,
    bytes: &'a [u8],
}

#[cfg(target_os = "macos")]
impl ImageReader for Prefix<'_> {
    fn read(&self, avma: u64, buf: &mut [u8]) -> bool {
        let copied = crate::unwind::SliceImage {
            base: self.base,
            bytes: self.bytes,
        };
        copied.read(avma, buf) || ProcessMemory.read(avma, buf)
    }
}

#[cfg(windows)]
impl crate::unwind::pe::TableLookup for Tables {
    fn table(&self, avma: u64) -> Option<crate::unwind::pe::FunctionTable<'_>> {
        let e = self.entry(avma)?;
        Some(crate::unwind::pe::FunctionTable {
            base: e.start,
            pdata: self.copy(e, 0).unwrap_or(&[]),
        })
    }
}

#[cfg(target_os = "macos")]
impl crate::unwind::macho::ImageLookup for Tables {
    fn sections(&self, avma: u64) -> Option<crate::unwind::macho::MachOSections<'_>> {
        let e = self.entry(avma)?;
        Some(crate::unwind::macho::MachOSections {
            load_address: e.start,
            unwind_info: self.copy(e, 0),
            eh_frame: self.copy(e, 1).map(|data| crate::unwind::cfi::Section {
                data,
                avma: e.sections[1].avma,
            }),
        })
    }
}

impl Tables {
    /// Unwinds from `regs` into `frames` with these tables, reading module memory through
    /// `image` (see [`crate::unwind::pe::walk`], [`crate::unwind::macho::walk`]).
    pub fn walk<S: StackReader + ?Sized, I: ImageReader + ?Sized>(
        &self,
        regs: &Regs,
        stack: &mut S,
        image: &I,
        frames: &mut [u64],
    ) -> (usize, EndReason) {
        #[cfg(windows)]
        return crate::unwind::pe::walk(regs, stack, self, image, frames);
        #[cfg(target_os = "macos")]
        return crate::unwind::macho::walk(regs, stack, self, image, frames);
    }
}
