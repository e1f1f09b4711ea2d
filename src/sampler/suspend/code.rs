//! Each loaded module's function table (`.pdata`), copied into vignette's own memory, for the
//! x64 unwinder ([`crate::unwind::pe`]).
//!
//! Refreshed on the sampler thread, never while a thread is suspended (listing modules takes
//! the loader lock), and used only by whoever holds the sampler's job, one at a time: a
//! refresh and a walk never overlap. The unwind info and code the tables point to are read
//! from the live modules with `ReadProcessMemory`, which fails instead of faulting if a module
//! was unloaded meanwhile.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::*};

use crate::error::Result;
use crate::modules::{pe, ModuleMap};
use crate::sys::loader;
use crate::sys::mem::{Region, Zeroed};
use crate::sys::memory::ProcessMemory;
use crate::unwind::pe::{FunctionTable, TableLookup};

/// Bytes of `.pdata` copies kept (a module's table is 12 bytes per function: system DLLs have
/// 1 000 to 10 000 functions, large applications a few hundred thousand).
const PDATA_BYTES: usize = 16 << 20;

#[derive(Debug, Clone, Copy)]
struct Entry {
    start: u64,
    end: u64,
    pdata_at: usize,
    pdata_len: usize,
}
// SAFETY: integers only; zero is valid.
unsafe impl Zeroed for Entry {}

/// The function tables of the modules loaded at the last refresh.
pub(crate) struct Tables {
    entries: Region<Entry>,
    len: usize,
    pool: Region<u8>,
    /// A hash of the loader's list (ranges and paths) when the tables were made.
    fingerprint: u64,
}

impl TableLookup for Tables {
    fn table(&self, avma: u64) -> Option<FunctionTable<'_>> {
        let entries = self.entries.get(..self.len)?;
        let i = entries.partition_point(|e| e.end <= avma);
        let e = entries.get(i).filter(|e| e.start <= avma)?;
        Some(FunctionTable {
            base: e.start,
            pdata: self.pool.get(e.pdata_at..e.pdata_at + e.pdata_len)?,
        })
    }
}

/// The tables, behind a flag that keeps their single user single.
pub(crate) struct PeCodeMap {
    busy: AtomicBool,
    tables: UnsafeCell<Tables>,
    epoch: AtomicU32,
    /// The loader's change count ([`loader::changes`]) the tables were made after.
    seen_changes: AtomicU64,
}

// SAFETY: `tables` is only reached through `with`, which the `busy` flag makes exclusive.
unsafe impl Sync for PeCodeMap {}

fn mix(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(0x0100_0000_01b3)
}

/// The fingerprint of one listed module: its range and path.
fn mix_module(h: u64, m: &loader::LoadedModule<'_>) -> u64 {
    m.path
        .iter()
        .fold(mix(mix(h, m.base), m.size), |h, &b| mix(h, b as u64))
}

impl PeCodeMap {
    /// Room for `capacity` modules.
    pub fn new(capacity: usize) -> Result<Self> {
        Ok(PeCodeMap {
            busy: AtomicBool::new(false),
            tables: UnsafeCell::new(Tables {
                entries: Region::new(capacity)?,
                len: 0,
                pool: Region::new(PDATA_BYTES)?,
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
            let (mut n, mut used, mut listed) = (0, 0, 0xcbf2_9ce4_8422_2325u64);
            modules.begin_pass();
            loader::for_each_module(|m| {
                listed = mix_module(listed, m);
                let Some(id) = pe::identity(&ProcessMemory, m.base) else {
                    return;
                };
                modules.observe_pe(m, &id, epoch);
                let (rva, size) = (id.exception.0 as usize, id.exception.1 as usize / 12 * 12);
                let Some(slot) = t.entries.get_mut(n) else {
                    return;
                };
                let copied = t
                    .pool
                    .get_mut(used..used + size)
                    .is_some_and(|dst| crate::sys::memory::read(m.base + rva as u64, dst));
                *slot = Entry {
                    start: m.base,
                    end: m.base + m.size,
                    pdata_at: used,
                    pdata_len: if copied { size } else { 0 },
                };
                if copied {
                    used += size;
                }
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
