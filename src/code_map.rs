//! Each loaded module's unwind sections, copied into vignette's own memory and published to
//! the signal handler.
//!
//! Built on the sampler thread from `dl_iterate_phdr` (never in the handler): for every module,
//! its address range, its `.eh_frame_hdr` (from `PT_GNU_EH_FRAME`) and `.eh_frame` (from the
//! header, or from the file's section headers when there is no header), each bounded by the
//! readable `PT_LOAD` segment holding it. Both are **copied** into an anonymous mapping of
//! vignette's while the loader lock is held (so the module cannot be unloaded during the copy),
//! as Gecko's LUL does: the handler parses only the copies, so a library unloaded, replaced or
//! `mprotect`ed at any moment can never make it fault. The parser still sees the sections at
//! their addresses in the process (pc-relative encodings resolve as in the module). The main
//! program's sections are the exception, read where they are: the loader never unmaps the
//! main program (libgcc's unwinder reads them there at every C++ `throw`), and a Rust or
//! browser-sized executable holds megabytes of them, which a copy would double in memory.
//!
//! Rules are compiled from a copy ([`crate::unwind::compiled`]) only once samples need the
//! module enough to pay for it: the handler interprets the copy until then, counting the
//! frames it interprets there, and marks the module as wanted when they would have paid for
//! compiling it; the sampler thread compiles it over its next looks, about a millisecond at each
//! ([`CodeMap::compile_wanted`]), off the sampled threads, without republishing the table and
//! without stalling its other work (finding new threads) for long. A process pays at start
//! only for the copies.
//!
//! The table is republished when the loader reports a change, checked before every drain
//! of the ring (and every tick). Copies are reused while no module was unloaded; a copy is
//! unmapped once neither of the snapshot's two tables refers to it (the snapshot guarantees no
//! reader has the table being rewritten pinned).
//!
//! Each published table carries an *epoch*, which the handler stores with its sample; the
//! module map ([`crate::modules::ModuleMap`]), filled in the same pass, records the epochs
//! during which each module was listed, so every frame is attributed to the module that was
//! mapped at its address when the sample was taken.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::SeqCst};

use crate::error::Result;
use crate::modules::{extent, file_section, object_path, ModuleMap};
use crate::ring::{NEWER_MODULE_FRAME, NO_MODULE_FRAME};
use crate::snapshot::Snapshot;
use crate::sys::dl::{self, FindObject, LoadedObject};
use crate::sys::mem::{Region, Zeroed};
use crate::sys::pages::{map_anonymous, remap};
use crate::sys::time;
use crate::unwind::cfi::eh_frame_hdr::EhFrameHdr;
use crate::unwind::cfi::{ModuleSections, Section};
use crate::unwind::compiled::{Compiled, Compiler};
use crate::unwind::CodeLookup;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CodeEntry {
    start: u64,
    end: u64,
    /// `.eh_frame_hdr` and `.eh_frame`: address in the process and length.
    hdr: [u64; 2],
    eh_frame: [u64; 2],
    /// Where the handler reads `hdr` and `eh_frame`: in a copy, or where the main program
    /// has them; `[0, 0]`: nowhere.
    at: [u64; 2],
    /// The copy's index in [`CodeMap`]'s per-copy tables (its compiled rules, its wanted flag).
    slot: u64,
    /// The loader's `link_map` for the module when listed (see [`CodeTable::mark_unlisted`]);
    /// 0: never checked (no lookup in this C library); [`NOT_YET_FOUND`]: not in the loader's
    /// lookup yet.
    link_map: u64,
    /// Where the loader's mappings of the module end, one per `PT_LOAD` segment at most
    /// (glibc reports a main program whose segments are not contiguous, such as Node's, per
    /// segment); 0 past the last.
    map_ends: [u64; MAX_SEGMENTS],
}

/// The most `PT_LOAD` segments whose mapping ends a [`CodeEntry`] keeps.
const MAX_SEGMENTS: usize = 8;
// SAFETY: integers only; zero is valid.
unsafe impl Zeroed for CodeEntry {}

/// One anonymous mapping holding a module's copied sections, or the main program's own
/// sections, read where they are (writer-side bookkeeping).
#[derive(Debug, Clone, Copy)]
struct CopyRec {
    /// The mapping, or (in place) the address of the first section read; 0: slot unused.
    addr: u64,
    /// The mapping's length; 0 in place.
    bytes: u64,
    /// Where the handler reads `hdr` and `eh_frame`.
    at: [u64; 2],
    /// The module's range and sections when copied.
    key: [u64; 6],
    /// The loader's unload count when copied: the copy serves while it is unchanged.
    subs: u64,
    /// Bit i: table i of the snapshot refers to this copy.
    tables: u8,
    /// The rules compiled from the copy: their mapping's address and entry count (address
    /// 0: not compiled yet; count 0: the module could not be compiled).
    rules: [u64; 2],
}
// SAFETY: integers only; zero (no mapping, no table) is valid.
unsafe impl Zeroed for CopyRec {}

/// The unwind sections of every loaded module.
pub struct CodeMap {
    entries: Snapshot<CodeEntry>,
    /// Touched only inside `entries.publish` or `entries.exclusive` (one writer at a time).
    copies: UnsafeCell<Region<CopyRec>>,
    /// Per copy slot, for the handler: the compiled rules' address and entry count (address
    /// 0: not compiled; [`NOT_COMPILABLE`]: tried, none), the count stored first.
    rules: Region<[AtomicU64; 2]>,
    /// Per copy slot: a sample needed the module's rules before they were compiled.
    wanted: Region<AtomicBool>,
    /// Per copy slot: frames interpreted in the module since it was copied (lookups the rule
    /// cache missed), counted until its rules are compiled.
    misses: Region<AtomicU32>,
    any_wanted: AtomicBool,
    /// The module being compiled, a slice per look (touched like `copies`).
    job: UnsafeCell<Option<Job>>,
    /// When the next slice may start (monotonic ns): see [`COMPILE_DUTY`].
    compile_after: AtomicU64,
    adds_subs: [AtomicU64; 2],
    epoch: AtomicUsize,
    copied: AtomicUsize,
    /// The loader's own lookup, to tell a module unloaded since the table was published.
    find: Option<FindObject>,
}

// SAFETY: `copies` is only accessed by the single writer inside `Snapshot::publish`, which
// excludes concurrent writers; everything else is atomics or a Sync snapshot.
unsafe impl Sync for CodeMap {}

/// Readable, file-backed `[start, end)` of the `PT_LOAD` segment holding `avma`.
fn readable_segment(o: &LoadedObject<'_>, avma: u64) -> Option<(u64, u64)> {
    o.phdrs.iter().find_map(|p| {
        let start = o.bias.wrapping_add(p.p_vaddr);
        let end = start.wrapping_add(p.p_filesz);
        (p.p_type == libc::PT_LOAD && p.p_flags & dl::PF_R != 0 && start <= avma && avma < end)
            .then_some((start, end))
    })
}

/// The module's range and where its sections are (not yet copied).
fn entry(o: &LoadedObject<'_>) -> Option<CodeEntry> {
    // The lowest PT_LOAD address (not page-rounded) to the end of the highest.
    let (_, end, start) = extent(o)?;
    let within = |avma: u64| readable_segment(o, avma).map(|(_, seg_end)| [avma, seg_end - avma]);
    let mut e = CodeEntry {
        start,
        end,
        hdr: [0; 2],
        eh_frame: [0; 2],
        at: [0; 2],
        slot: 0,
        link_map: 0,
        map_ends: [0; MAX_SEGMENTS],
    };
    if let Some(ph) = o.phdrs.iter().find(|p| p.p_type == libc::PT_GNU_EH_FRAME) {
        let avma = o.bias.wrapping_add(ph.p_vaddr);
        if let Some([at, max]) = within(avma) {
            e.hdr = [at, ph.p_filesz.min(max)];
            let bytes = o.segment(ph);
            if let Ok(h) = EhFrameHdr::parse(Section { data: bytes, avma }) {
                e.eh_frame = within(h.eh_frame_avma).unwrap_or([0; 2]);
            }
        }
    }
    if e.eh_frame[1] == 0 {
        // No header: find .eh_frame in the file's section headers.
        let mut buf = [0u8; 1024];
        if let Some(s) = file_section(object_path(o, &mut buf), b".eh_frame") {
            let avma = o.bias.wrapping_add(s.addr);
            if let Some([at, max]) = within(avma) {
                e.eh_frame = [at, s.size.min(max)];
            }
        }
    }
    Some(e)
}

impl CodeMap {
    /// Room for `capacity` modules.
    pub fn new(capacity: usize) -> Result<Self> {
        Ok(CodeMap {
            entries: Snapshot::new(capacity)?,
            copies: UnsafeCell::new(Region::new(capacity.saturating_mul(2))?),
            rules: Region::new(capacity.saturating_mul(2))?,
            wanted: Region::new(capacity.saturating_mul(2))?,
            misses: Region::new(capacity.saturating_mul(2))?,
            any_wanted: AtomicBool::new(false),
            job: UnsafeCell::new(None),
            compile_after: AtomicU64::new(0),
            adds_subs: [AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX)],
            epoch: AtomicUsize::new(0),
            copied: AtomicUsize::new(0),
            find: FindObject::resolve(),
        })
    }

    /// The epoch of the last table published.
    pub fn epoch(&self) -> u32 {
        self.epoch.load(SeqCst) as u32
    }

    /// Re-reads the loader's list if it changed since the last refresh (or `force`), copies
    /// the sections of modules not copied yet, publishes the table under a new epoch and
    /// records in `modules`, in the same pass, which modules that epoch lists. Returns whether
    /// a new table was published.
    pub fn refresh(&self, modules: &mut ModuleMap, force: bool) -> bool {
        let mut counts = (0, 0);
        dl::for_each_object(|o| counts = o.adds_subs);
        let known = (
            self.adds_subs[0].load(SeqCst),
            self.adds_subs[1].load(SeqCst),
        );
        if !force && counts == known && counts != (0, 0) {
            return false;
        }
        let epoch = self.epoch.load(SeqCst).wrapping_add(1) as u32;
        let published = self.entries.publish(epoch as usize, |slots, table| {
            // SAFETY: we are inside `publish`, the only place `copies` is touched.
            let copies = unsafe { &mut *self.copies.get() };
            let bit = 1u8 << table;
            for c in copies.iter_mut() {
                c.tables &= !bit;
            }
            let mut n = 0;
            // The first object listed is the main program (named "" by the loader).
            let mut main = true;
            modules.begin_pass();
            dl::for_each_object(|o| {
                counts = o.adds_subs;
                modules.observe(o, epoch);
                let is_main = main && o.name.is_empty();
                main = false;
                let (Some(slot), Some(mut e)) = (slots.get_mut(n), entry(o)) else {
                    return;
                };
                // Listed but not yet in the loader's lookup: `dlopen` is still under way.
                (e.link_map, e.map_ends) = match self.find {
                    Some(find) => match find.find(e.start) {
                        Some(found) => (found.link_map as u64, map_ends(o, find)),
                        None => (NOT_YET_FOUND, [0; MAX_SEGMENTS]),
                    },
                    None => (0, [0; MAX_SEGMENTS]),
                };
                (e.at, e.slot) = copy_sections(copies, o, &e, counts.1, bit, is_main);
                *slot = e;
                n += 1;
            });
            modules.end_pass(epoch);
            // Copies neither table refers to: no reader can reach them any more.
            // SAFETY: inside `publish`, like `copies`.
            let job = unsafe { &mut *self.job.get() };
            for (i, (c, ((rules, wanted), misses))) in copies
                .iter_mut()
                .zip((self.rules.iter().zip(self.wanted.iter())).zip(self.misses.iter()))
                .enumerate()
            {
                if c.addr != 0 && c.tables == 0 {
                    if let Some(j) = job.take_if(|j| j.slot == i) {
                        j.abandon();
                    }
                    if c.bytes > 0 {
                        // SAFETY: the mapping was made by `copy_sections` and no table refers
                        // to it; the table that did is this spare one, which no reader has
                        // pinned.
                        unsafe {
                            libc::munmap(c.addr as usize as *mut libc::c_void, c.bytes as usize)
                        };
                    }
                    if c.rules[1] > 0 {
                        // SAFETY: as above, for the rules compiled from that copy.
                        unsafe { munmap_entries(c.rules) };
                    }
                    *c = CopyRec {
                        addr: 0,
                        bytes: 0,
                        at: [0; 2],
                        key: [0; 6],
                        subs: 0,
                        tables: 0,
                        rules: [0; 2],
                    };
                    rules[0].store(0, SeqCst);
                    rules[1].store(0, SeqCst);
                    wanted.store(false, SeqCst);
                    misses.store(0, SeqCst);
                }
            }
            self.count_copied(copies);
            slots.get_mut(..n)?.sort_unstable_by_key(|e| e.start);
            Some(n)
        });
        if published {
            self.epoch.store(epoch as usize, SeqCst);
            self.adds_subs[0].store(counts.0, SeqCst);
            self.adds_subs[1].store(counts.1, SeqCst);
        }
        published
    }

    /// Compiles the rules of the modules samples needed since the last call (see the module
    /// docs), for about [`COMPILE_SLICE_NS`] at most, and no more than [`COMPILE_DUTY`] of
    /// the caller's time: a large module is compiled over several calls, the handler
    /// interpreting it meanwhile, and the sampler thread's ticks and looks stay on time.
    /// Returns how many modules were finished. For the sampler thread, at every look.
    pub fn compile_wanted(&self) -> usize {
        let now = time::monotonic_ns();
        if now < self.compile_after.load(SeqCst) || !self.any_wanted.load(SeqCst) {
            return 0;
        }
        let compiled = self.compile_slice();
        let spent = time::monotonic_ns().saturating_sub(now);
        (self.compile_after).store(
            now.saturating_add(spent.saturating_mul(COMPILE_DUTY)),
            SeqCst,
        );
        compiled
    }

    /// One slice of [`Self::compile_wanted`], whenever called.
    fn compile_slice(&self) -> usize {
        if !self.any_wanted.swap(false, SeqCst) {
            return 0;
        }
        let compiled = self.entries.exclusive(|| {
            // SAFETY: `exclusive` makes us the only writer, the only one touching `copies`
            // and `job`.
            let (copies, job) = unsafe { (&mut *self.copies.get(), &mut *self.job.get()) };
            let deadline = time::monotonic_ns().saturating_add(COMPILE_SLICE_NS);
            let mut compiled = 0;
            loop {
                if job.is_none() {
                    *job = self.next_job(copies);
                }
                let Some(j) = job.as_mut() else {
                    break;
                };
                let slot = j.slot;
                let Some(c) = copies.get_mut(slot) else {
                    break;
                };
                let Some(rules) = j.run(c, deadline) else {
                    // Out of time: go on at the next look.
                    self.any_wanted.store(true, SeqCst);
                    break;
                };
                *job = None;
                c.rules = rules;
                if let Some(published) = self.rules.get(slot) {
                    // The count first: a reader that sees the address sees its count.
                    published[1].store(rules[1], SeqCst);
                    published[0].store(rules[0], SeqCst);
                }
                compiled += 1;
            }
            self.count_copied(copies);
            compiled
        });
        compiled.unwrap_or_else(|| {
            // A refresh is under way: try again at the next look.
            self.any_wanted.store(true, SeqCst);
            0
        })
    }

    /// A job for the next module a sample wanted whose copy has no rules yet; clears the
    /// wanted marks it passes.
    fn next_job(&self, copies: &[CopyRec]) -> Option<Job> {
        (copies.iter().zip(self.wanted.iter()).enumerate()).find_map(|(slot, (c, wanted))| {
            (wanted.swap(false, SeqCst) && c.addr != 0 && c.rules == [0; 2])
                .then(|| Job::new(slot, c))
        })
    }

    /// Marks every module of the current table as wanted and compiles them all, as a long
    /// session ends up doing (for benchmarks and tests of compiled unwinding).
    pub fn compile_all(&self) -> usize {
        for w in self.wanted.iter() {
            w.store(true, SeqCst);
        }
        self.any_wanted.store(true, SeqCst);
        let mut n = 0;
        while self.any_wanted.load(SeqCst) {
            n += self.compile_slice();
        }
        n
    }

    fn count_copied(&self, copies: &[CopyRec]) {
        let bytes = copies.iter().map(|c| c.bytes + c.rules[1] * 8).sum::<u64>();
        self.copied.store(bytes as usize, SeqCst);
    }

    /// Runs `f` with a [`CodeLookup`] over the current table.
    ///
    /// # Signal safety
    /// Async-signal-safe: see [`Snapshot::read`].
    pub fn read<R>(&self, f: impl FnOnce(&CodeTable<'_>) -> R) -> Option<R> {
        self.entries.read(|entries, epoch| {
            f(&CodeTable {
                entries,
                epoch: epoch as u32,
                find: self.find,
                map: self,
            })
        })
    }

    /// Bytes mapped for the table (not counting the copied sections).
    pub fn mapped_bytes(&self) -> usize {
        self.entries.mapped_bytes()
    }

    /// Bytes of copied unwind sections and the rules compiled from them, mapped after the last
    /// refresh.
    pub fn copied_bytes(&self) -> usize {
        self.copied.load(SeqCst)
    }
}

impl Drop for CodeMap {
    fn drop(&mut self) {
        if let Some(job) = self.job.get_mut().take() {
            job.abandon();
        }
        for c in self.copies.get_mut().iter() {
            if c.rules[1] > 0 {
                // SAFETY: as below, for the rules compiled from the copy.
                unsafe { munmap_entries(c.rules) };
            }
            if c.bytes > 0 {
                // SAFETY: our own mapping; the profiler drops the code map only once no handler
                // can run with it.
                unsafe { libc::munmap(c.addr as usize as *mut libc::c_void, c.bytes as usize) };
            }
        }
    }
}

/// Where the handler reads `e`'s sections (`[hdr, eh_frame]`) and the slot of their record,
/// marked as used by table `bit`: a copy (one made while no module was unloaded since is
/// reused), or, for the main program (`main`), the sections where they are, since the
/// loader never unmaps it (and a C++ `throw` reads them there too); `[0, 0]` if there is
/// nothing to read or no room.
fn copy_sections(
    copies: &mut [CopyRec],
    o: &LoadedObject<'_>,
    e: &CodeEntry,
    subs: u64,
    bit: u8,
    main: bool,
) -> ([u64; 2], u64) {
    let key = [
        e.start,
        e.end,
        e.hdr[0],
        e.hdr[1],
        e.eh_frame[0],
        e.eh_frame[1],
    ];
    // A record made while no module was unloaded since, or (an address range may now hold
    // another module) one whose bytes are still the module's: compiling its rules again costs
    // far more than comparing.
    if let Some((i, c)) = copies.iter_mut().enumerate().find(|(_, c)| {
        c.addr != 0
            && c.key == key
            && (c.bytes == 0) == main
            && (c.subs == subs || main || same_bytes(c.addr, o, e))
    }) {
        c.subs = subs;
        c.tables |= bit;
        return (c.at, i as u64);
    }
    let bytes = e.hdr[1] + e.eh_frame[1];
    let Some((i, slot)) = copies.iter_mut().enumerate().find(|(_, c)| c.addr == 0) else {
        return ([0; 2], 0);
    };
    if bytes == 0 {
        return ([0; 2], 0);
    }
    let (addr, bytes, at) = if main {
        // Where the sections are: inside readable, file-backed PT_LOAD segments (see `entry`).
        let at = [e.hdr[0], e.eh_frame[0]];
        (at[0].max(at[1]), 0, at)
    } else {
        let Ok(addr) = map_anonymous(bytes as usize, 0) else {
            return ([0; 2], 0);
        };
        let dst = addr.cast::<u8>();
        for (at, [avma, len]) in [(0, e.hdr), (e.hdr[1], e.eh_frame)] {
            if len == 0 {
                continue;
            }
            // The section lies inside a readable, file-backed PT_LOAD segment of `o` (see
            // `entry`), which stays mapped while the loader lock (held during this callback)
            // is ours.
            let src = o.slice(avma, len);
            // SAFETY: `dst + at .. + len` lies inside the fresh mapping of `bytes` bytes.
            unsafe {
                core::ptr::copy_nonoverlapping(src.as_ptr(), dst.add(at as usize), src.len())
            };
        }
        let addr = addr as u64;
        (addr, bytes, [addr, addr + e.hdr[1]])
    };
    *slot = CopyRec {
        addr,
        bytes,
        at,
        key,
        subs,
        tables: bit,
        rules: [0; 2],
    };
    (at, i as u64)
}

/// Whether the copy at `addr` holds what `o` has now at `e`'s sections.
fn same_bytes(addr: u64, o: &LoadedObject<'_>, e: &CodeEntry) -> bool {
    [(0, e.hdr), (e.hdr[1], e.eh_frame)]
        .iter()
        .all(|&(at, [avma, len])| {
            // As in `copy_sections`: the module's sections stay mapped while the loader lock is
            // held, and the copy is vignette's own mapping of hdr + eh_frame bytes.
            let live = o.slice(avma, len);
            // SAFETY: `at .. at + len` lies inside the copy (see `copy_sections`).
            let copy = unsafe {
                core::slice::from_raw_parts((addr + at) as usize as *const u8, len as usize)
            };
            live == copy
        })
}

/// Where the loader's mappings of `o` end, as its lookup reports them for each `PT_LOAD`
/// segment (one value for a contiguous object; one per segment for a main program glibc
/// maps piecewise), distinct, at most [`MAX_SEGMENTS`].
fn map_ends(o: &LoadedObject<'_>, find: FindObject) -> [u64; MAX_SEGMENTS] {
    let mut ends = [0u64; MAX_SEGMENTS];
    let mut n = 0;
    for p in o.phdrs.iter().filter(|p| p.p_type == libc::PT_LOAD) {
        let Some(found) = find.find(o.bias.wrapping_add(p.p_vaddr)) else {
            continue;
        };
        let end = found.map_end as u64;
        if !ends.get(..n).is_some_and(|seen| seen.contains(&end)) {
            if let Some(slot) = ends.get_mut(n) {
                *slot = end;
                n += 1;
            }
        }
    }
    ends
}

/// [`CodeEntry::link_map`] of a module the loader listed before its own lookup had it (a
/// `dlopen` under way): it is still loaded while anything is found at its addresses.
const NOT_YET_FOUND: u64 = u64::MAX;

/// [`CodeMap::rules`]' address of a copy whose rules could not be compiled (no mapping has it).
const NOT_COMPILABLE: u64 = 1;

/// A pinned table of modules' unwind sections (see [`CodeMap::read`]).
pub struct CodeTable<'a> {
    entries: &'a [CodeEntry],
    /// The epoch this table was published under.
    pub epoch: u32,
    find: Option<FindObject>,
    map: &'a CodeMap,
}

impl CodeTable<'_> {
    /// The module listed at `avma`, if any.
    ///
    /// # Signal safety
    /// Async-signal-safe: a binary search.
    fn entry_at(&self, avma: u64) -> Option<&CodeEntry> {
        let i = self.entries.partition_point(|e| e.end <= avma);
        self.entries.get(i).filter(|e| e.start <= avma)
    }

    /// Marks each of `frames` whose address the loader holds differently now than this table
    /// lists it: [`NO_MODULE_FRAME`] where no object is loaded (`dlclose` returned since the
    /// table was published, perhaps with other code mapped in its place, or JIT code),
    /// [`NEWER_MODULE_FRAME`] where an object this table does not list is. Each of the table's
    /// modules is looked up once; nothing is marked where the C library has no
    /// `_dl_find_object`.
    ///
    /// # Signal safety
    /// Async-signal-safe: binary searches and glibc's `_dl_find_object` (AS-Safe, lock-free).
    ///
    /// The loader's `link_map` may be reused for the next library at the same address: a
    /// library replaced by another of the same size can pass as listed. The drain's
    /// attribution ([`crate::modules::ModuleMap::attribute`]) settles that case by epochs.
    pub fn mark_unlisted(&self, frames: &mut [u64]) {
        let Some(find) = self.find else {
            return;
        };
        let mut last: Option<(u64, u64, u64)> = None;
        for f in frames.iter_mut() {
            let avma = *f;
            let mark = match last {
                Some((start, end, mark)) if start <= avma && avma < end => mark,
                _ => {
                    let listed = self.entry_at(avma);
                    let mark = match (listed, find.find(avma)) {
                        (_, None) => NO_MODULE_FRAME,
                        (None, Some(_)) => NEWER_MODULE_FRAME,
                        (Some(e), Some(now)) => {
                            let same = e.link_map == NOT_YET_FOUND
                                || (now.link_map as u64 == e.link_map
                                    && e.map_ends.contains(&(now.map_end as u64)));
                            if same {
                                0
                            } else {
                                NEWER_MODULE_FRAME
                            }
                        }
                    };
                    if let Some(e) = listed {
                        last = Some((e.start, e.end, mark));
                    }
                    mark
                }
            };
            *f |= mark;
        }
    }
}

impl CodeTable<'_> {
    /// The compiled rules of `e`'s copy (whose sections are `sections`), or `None`: the
    /// caller interprets a frame, which is counted, and the module is marked as wanted once
    /// its frames interpreted would have paid for compiling it (see [`MISSES_PER_FDE`]).
    ///
    /// # Signal safety
    /// Async-signal-safe: atomics, and the copied header's FDE count.
    fn compiled(&self, e: &CodeEntry, sections: &ModuleSections<'_>) -> Option<Compiled<'_>> {
        let slot = e.slot as usize;
        let rules = self.map.rules.get(slot)?;
        let addr = rules[0].load(SeqCst);
        if addr == 0 {
            let misses = self
                .map
                .misses
                .get(slot)?
                .fetch_add(1, SeqCst)
                .saturating_add(1);
            let fdes = (sections.eh_frame_hdr)
                .and_then(|hdr| EhFrameHdr::parse(hdr).ok())
                .map_or(0, |hdr| hdr.entry_count());
            let wanted = self.map.wanted.get(slot)?;
            if misses as usize >= fdes.saturating_mul(MISSES_PER_FDE).max(1) && !wanted.load(SeqCst)
            {
                wanted.store(true, SeqCst);
                self.map.any_wanted.store(true, SeqCst);
            }
            return None;
        }
        let count = rules[1].load(SeqCst);
        (addr != NOT_COMPILABLE && count > 0).then(|| Compiled {
            base: e.start,
            // SAFETY: the rules are vignette's own mapping of `count` entries, written before
            // their address was stored (after the count) and unmapped only with their copy,
            // once no published table refers to it.
            entries: unsafe {
                core::slice::from_raw_parts(addr as usize as *const u64, count as usize)
            },
        })
    }
}

impl CodeLookup for CodeTable<'_> {
    /// # Signal safety
    /// Async-signal-safe: a binary search and atomics.
    fn sections(&self, avma: u64) -> Option<ModuleSections<'_>> {
        let e = self.entry_at(avma)?;
        if e.at == [0; 2] {
            return Some(ModuleSections {
                eh_frame_hdr: None,
                eh_frame: None,
                compiled: None,
            });
        }
        // SAFETY: `at` is a copy, vignette's own mapping of hdr + eh_frame bytes, never
        // written after it was made and unmapped only once no published table (so no pinned
        // reader) refers to it; or the main program's sections, never unmapped.
        let sections = unsafe { copied_sections(e.at, e.hdr, e.eh_frame) };
        let compiled = self.compiled(e, &sections);
        Some(ModuleSections {
            compiled,
            ..sections
        })
    }
}

/// The sections `hdr` and `eh_frame` as the handler reads them, at `at`.
///
/// # Safety
/// `at` must be where a live record (made by `copy_sections`) has those sections.
///
/// # Signal safety
/// Async-signal-safe: builds slices.
unsafe fn copied_sections<'a>(
    at: [u64; 2],
    hdr: [u64; 2],
    eh_frame: [u64; 2],
) -> ModuleSections<'a> {
    let section = |at: u64, [avma, len]: [u64; 2]| {
        (len > 0).then(|| Section {
            // SAFETY: the caller's contract: `len` bytes of the section are readable at `at`.
            data: unsafe { core::slice::from_raw_parts(at as usize as *const u8, len as usize) },
            avma,
        })
    };
    ModuleSections {
        eh_frame_hdr: section(at[0], hdr),
        eh_frame: section(at[1], eh_frame),
        compiled: None,
    }
}

/// Frames interpreted in a module, per FDE it has, before its rules are compiled: compiling
/// costs about 0.6 µs per FDE (Node's 76 000 FDEs: 45 ms), and a compiled rule saves about
/// 0.28 µs over interpreting a frame (BENCHMARKS.md), so by then interpreting has cost about
/// what compiling does (rent until the rent paid would have bought: never more than twice
/// the better of the two). A short process never pays for its large modules' rules, a long
/// one compiles those its samples keep going through.
const MISSES_PER_FDE: usize = 2;

/// How long [`CodeMap::compile_wanted`] compiles at a time, at most (plus one step).
pub const COMPILE_SLICE_NS: u64 = 1_000_000;

/// A slice that took `t` is followed by at least `(COMPILE_DUTY - 1) * t` without one: the
/// sampler thread spends at most a tenth of its time compiling (the sampler-thread backend
/// ticks every interval, and a tick late by a slice each time would fall behind).
pub const COMPILE_DUTY: u64 = 10;

/// FDEs compiled between two looks at the clock.
const FDES_PER_STEP: usize = 64;

/// A module's rules being compiled (see [`CodeMap::compile_wanted`]).
struct Job {
    /// The copy slot compiled.
    slot: usize,
    compiler: Compiler,
    entries: Entries,
}

impl Job {
    fn new(slot: usize, c: &CopyRec) -> Self {
        Job {
            slot,
            compiler: Compiler::new(c.key[0]),
            entries: Entries {
                addr: 0,
                room: 0,
                len: 0,
                failed: false,
            },
        }
    }

    /// Compiles copy `c` (the one the job was made for) until it is done, returning its rules
    /// (`[address, count]`, or `[NOT_COMPILABLE, 0]` if it cannot be compiled), or until
    /// `deadline` has passed (`None`).
    fn run(&mut self, c: &CopyRec, deadline: u64) -> Option<[u64; 2]> {
        let [_, _, hdr_at, hdr_len, eh_at, eh_len] = c.key;
        // SAFETY: `c` is a live record (its address is non-zero: a job is abandoned when its
        // copy is unmapped) of the sections its key names.
        let sections = unsafe { copied_sections(c.at, [hdr_at, hdr_len], [eh_at, eh_len]) };
        let entries = &mut self.entries;
        loop {
            let done = (self.compiler).step(&sections, FDES_PER_STEP, &mut |e| entries.push(e));
            if let Some(ok) = done {
                return Some(entries.finish(ok));
            }
            if time::monotonic_ns() >= deadline {
                return None;
            }
        }
    }

    /// Gives up the job (its copy is going away, or the map is).
    fn abandon(mut self) {
        self.entries.unmap();
    }
}

/// Compiled entries being written: a mapping with room for `room`, holding `len`.
struct Entries {
    addr: u64,
    room: usize,
    len: usize,
    /// A mapping could not be made or grown: the module cannot be compiled.
    failed: bool,
}

impl Entries {
    fn push(&mut self, entry: u64) {
        if self.failed {
            return;
        }
        if self.len == self.room {
            let room = self.room.saturating_mul(2).max(512);
            let grown = if self.addr == 0 {
                map_anonymous(room * 8, 0).ok()
            } else {
                // SAFETY: our own mapping of `room` entries, which no reader knows of yet.
                unsafe {
                    remap(
                        self.addr as usize as *mut libc::c_void,
                        self.room * 8,
                        room * 8,
                        true,
                    )
                }
            };
            let Some(p) = grown else {
                self.unmap();
                self.failed = true;
                return;
            };
            (self.addr, self.room) = (p as u64, room);
        }
        // SAFETY: len < room entries of our mapping.
        unsafe { (self.addr as usize as *mut u64).add(self.len).write(entry) };
        self.len += 1;
    }

    /// The entries as rules, `[address, count]` (the mapping trimmed to them), or
    /// `[NOT_COMPILABLE, 0]` (unmapped) unless `ok`.
    fn finish(&mut self, ok: bool) -> [u64; 2] {
        if !ok || self.failed || self.len == 0 {
            self.unmap();
            return [NOT_COMPILABLE, 0];
        }
        // SAFETY: shrinking our own mapping in place (the kernel keeps the pages holding
        // `len` entries) before any reader knows of it.
        let p = unsafe {
            remap(
                self.addr as usize as *mut libc::c_void,
                self.room * 8,
                self.len * 8,
                false,
            )
        };
        if p.is_none() {
            self.unmap();
            return [NOT_COMPILABLE, 0];
        }
        let rules = [self.addr, self.len as u64];
        *self = Entries {
            addr: 0,
            room: 0,
            len: 0,
            failed: false,
        };
        rules
    }

    fn unmap(&mut self) {
        if self.addr != 0 {
            // SAFETY: our own mapping of `room` entries, which no reader knows of.
            unsafe { libc::munmap(self.addr as usize as *mut libc::c_void, self.room * 8) };
            self.addr = 0;
        }
    }
}

/// Unmaps compiled rules `[address, count]`.
///
/// # Safety
/// The mapping must be one a [`Job`] made and no table may refer to it any more.
unsafe fn munmap_entries([addr, count]: [u64; 2]) {
    // SAFETY: the caller's contract.
    unsafe { libc::munmap(addr as usize as *mut libc::c_void, count as usize * 8) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sections_for_code_in_this_process() {
        let _g = crate::modules::tests::loader_lock();
        let map = CodeMap::new(512).unwrap();
        let mut modules = ModuleMap::new(512, 65536).unwrap();
        assert!(map.refresh(&mut modules, false));
        assert!(!map.refresh(&mut modules, false), "nothing changed");
        assert!(map.copied_bytes() > 0);
        let here = finds_sections_for_code_in_this_process as *const () as u64;
        let found = map
            .read(|t| {
                let s = t.sections(here).unwrap();
                let fde = crate::unwind::cfi::find_fde(&s, here).unwrap().unwrap();
                (
                    s.eh_frame_hdr.is_some(),
                    fde.pc_begin <= here && here < fde.pc_end,
                )
            })
            .unwrap();
        assert_eq!(found, (true, true));
        // The main program's (this test binary's) sections are read where they are; a
        // library's from a copy.
        let in_place = |avma: u64| {
            map.read(|t| {
                let eh = t.sections(avma).unwrap().eh_frame.unwrap();
                eh.data.as_ptr() as u64 == eh.avma
            })
            .unwrap()
        };
        let libc_fn = libc::qsort as *const () as u64;
        assert!(in_place(here));
        assert!(!in_place(libc_fn));
        assert!(map.read(|t| t.sections(0x10).is_none()).unwrap());
    }

    /// A module's rules are compiled once the frames interpreted in it would have paid for
    /// it ([`MISSES_PER_FDE`] per FDE), and only that module's.
    #[test]
    fn rules_are_compiled_for_the_modules_samples_need_and_no_others() {
        let _g = crate::modules::tests::loader_lock();
        let map = CodeMap::new(512).unwrap();
        let mut modules = ModuleMap::new(512, 65536).unwrap();
        map.refresh(&mut modules, true);
        let copied = map.copied_bytes();
        assert_eq!(map.compile_wanted(), 0, "nothing wanted yet");
        let here = rules_are_compiled_for_the_modules_samples_need_and_no_others as *const ();
        // One frame interpreted here (a lookup of its sections); whether compiled rules came.
        let look = |map: &CodeMap| {
            map.read(|t| t.sections(here as u64).unwrap().compiled.is_some())
                .unwrap()
        };
        let fdes = map
            .read(|t| {
                let hdr = t.sections(here as u64).unwrap().eh_frame_hdr.unwrap();
                EhFrameHdr::parse(hdr).unwrap().entry_count()
            })
            .unwrap();
        assert!(fdes > 1000, "a test binary has many FDEs: {fdes}");
        // Reading the FDE count was one look; one short of paying for the compile:
        for _ in 2..fdes * MISSES_PER_FDE {
            assert!(!look(&map));
        }
        assert!(!map.any_wanted.load(SeqCst), "not paid for yet");
        assert!(!look(&map), "interpreted until compiled");
        assert!(map.any_wanted.load(SeqCst), "paid for: wanted");
        // A slice at a time (this debug test binary takes several), interpreted meanwhile,
        // the job surviving a republished table.
        // The sampler looks every few milliseconds; a slice waits for nine times its length.
        // Until compiled, with a generous deadline: the lib's test binary is large (the tools'
        // dependencies too), and under qemu its rules take seconds to compile.
        let (mut looks, deadline) = (
            0,
            std::time::Instant::now() + std::time::Duration::from_secs(300),
        );
        let finished = loop {
            let finished = map.compile_wanted();
            looks += 1;
            if finished > 0 || std::time::Instant::now() > deadline {
                break finished;
            }
            assert!(!look(&map));
            if looks == 1 {
                map.refresh(&mut modules, true);
                assert_eq!(map.compile_wanted(), 0, "too soon after a slice");
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        };
        assert_eq!(finished, 1, "only this executable, in {looks} looks");
        assert!(look(&map));
        assert!(map.copied_bytes() > copied, "the rules are counted");
        assert_eq!(map.compile_wanted(), 0);
        // A republished table keeps the compiled rules of a copy it reuses.
        map.refresh(&mut modules, true);
        assert!(look(&map));
    }

    /// For every module of this process, at both ends and the middle of every range of its
    /// compiled rules, the compiled rule is what interpreting the FDE gives.
    #[test]
    fn compiled_rules_equal_the_interpreter_everywhere() {
        use crate::unwind::compiled::interpreted;
        let _g = crate::modules::tests::loader_lock();
        let map = CodeMap::new(512).unwrap();
        let mut modules = ModuleMap::new(512, 65536).unwrap();
        map.refresh(&mut modules, true);
        assert!(map.compile_all() >= 2);
        let (compiled_modules, checked) = map
            .read(|t| {
                let (mut compiled_modules, mut checked) = (0, 0);
                for e in t.entries {
                    let Some(s) = t.sections(e.start) else {
                        continue;
                    };
                    let Some(c) = s.compiled else { continue };
                    compiled_modules += 1;
                    let ends = c.entries.iter().map(|x| c.base + (x >> 32));
                    let nexts = ends.clone().skip(1).chain([e.end]);
                    for (lo, hi) in ends.zip(nexts) {
                        for pc in [lo, lo + (hi - lo) / 2, hi.saturating_sub(1).max(lo)] {
                            let want = interpreted(&s, pc);
                            assert_eq!(
                                c.lookup(pc),
                                Some(want),
                                "at {pc:#x} in [{lo:#x}, {hi:#x})"
                            );
                            checked += 1;
                        }
                    }
                }
                (compiled_modules, checked)
            })
            .unwrap();
        eprintln!("{compiled_modules} modules compiled, {checked} addresses checked");
        assert!(
            compiled_modules >= 2,
            "this executable and libc are compiled"
        );
        assert!(checked > 10_000, "{checked} addresses checked");
    }
}
