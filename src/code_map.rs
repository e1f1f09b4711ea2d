//! Where each loaded module's unwind sections are in memory, published to the signal handler.
//!
//! Built on the sampler thread from `dl_iterate_phdr` (never in the handler): for every module,
//! its address range, its `.eh_frame_hdr` (from `PT_GNU_EH_FRAME`) and `.eh_frame` (from the
//! header, or from the file's section headers when there is no header), each with the length
//! that stays inside the readable `PT_LOAD` segment holding it. The handler reads only there.
//!
//! The table is refreshed when the loader reports a change (checked every 10 ms while
//! sampling). A library unloaded with `dlclose` in the moment before that is the one case
//! where a handler could read unmapped section memory: only if a sampled stack still held an
//! address inside the library, which after `dlclose` would be a bug in the application.

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

use crate::error::Result;
use crate::modules::{extent, file_section, object_path};
use crate::snapshot::Snapshot;
use crate::sys::linux::dl::{self, LoadedObject};
use crate::sys::linux::mem::{mapped_slice, Zeroed};
use crate::unwind::cfi::eh_frame_hdr::EhFrameHdr;
use crate::unwind::cfi::{ModuleSections, Section};
use crate::unwind::CodeLookup;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CodeEntry {
    start: u64,
    end: u64,
    hdr: [u64; 2],
    eh_frame: [u64; 2],
}
// SAFETY: integers only; zero is valid.
unsafe impl Zeroed for CodeEntry {}

/// The unwind sections of every loaded module.
pub struct CodeMap {
    entries: Snapshot<CodeEntry>,
    adds_subs: [AtomicU64; 2],
}

/// Readable, file-backed `[start, end)` of the `PT_LOAD` segment holding `avma`.
fn readable_segment(o: &LoadedObject<'_>, avma: u64) -> Option<(u64, u64)> {
    o.phdrs.iter().find_map(|p| {
        let start = o.bias.wrapping_add(p.p_vaddr);
        let end = start.wrapping_add(p.p_filesz);
        (p.p_type == libc::PT_LOAD && p.p_flags & libc::PF_R != 0 && start <= avma && avma < end)
            .then_some((start, end))
    })
}

fn entry(o: &LoadedObject<'_>) -> Option<CodeEntry> {
    // The lowest PT_LOAD address (not page-rounded) to the end of the highest.
    let (_, end, start) = extent(o)?;
    let within = |avma: u64| readable_segment(o, avma).map(|(_, seg_end)| [avma, seg_end - avma]);
    let mut e = CodeEntry {
        start,
        end,
        hdr: [0; 2],
        eh_frame: [0; 2],
    };
    if let Some(ph) = o.phdrs.iter().find(|p| p.p_type == libc::PT_GNU_EH_FRAME) {
        let avma = o.bias.wrapping_add(ph.p_vaddr);
        if let Some(hdr) = within(avma) {
            e.hdr = hdr;
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
            adds_subs: [AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX)],
        })
    }

    /// Re-reads the loader's list if it changed since the last refresh and publishes it.
    /// Returns whether a new table was published.
    pub fn refresh(&self) -> bool {
        let mut counts = (0, 0);
        dl::for_each_object(|o| counts = o.adds_subs);
        let known = (
            self.adds_subs[0].load(SeqCst),
            self.adds_subs[1].load(SeqCst),
        );
        if counts == known && counts != (0, 0) {
            return false;
        }
        let published = self.entries.publish(|slots| {
            let mut n = 0;
            dl::for_each_object(|o| {
                if let (Some(slot), Some(e)) = (slots.get_mut(n), entry(o)) {
                    *slot = e;
                    n += 1;
                }
            });
            slots.get_mut(..n)?.sort_unstable_by_key(|e| e.start);
            Some(n)
        });
        if published {
            self.adds_subs[0].store(counts.0, SeqCst);
            self.adds_subs[1].store(counts.1, SeqCst);
        }
        published
    }

    /// Runs `f` with a [`CodeLookup`] over the current table.
    ///
    /// # Signal safety
    /// Async-signal-safe: see [`Snapshot::read`].
    pub fn read<R>(&self, f: impl FnOnce(&CodeTable<'_>) -> R) -> Option<R> {
        self.entries.read(|entries| f(&CodeTable { entries }))
    }

    /// Bytes mapped for the table.
    pub fn mapped_bytes(&self) -> usize {
        self.entries.mapped_bytes()
    }
}

/// A pinned table of modules' unwind sections (see [`CodeMap::read`]).
pub struct CodeTable<'a> {
    entries: &'a [CodeEntry],
}

impl CodeLookup for CodeTable<'_> {
    /// # Signal safety
    /// Async-signal-safe: a binary search.
    fn sections(&self, avma: u64) -> Option<ModuleSections<'_>> {
        let i = self.entries.partition_point(|e| e.end <= avma);
        let e = self.entries.get(i).filter(|e| e.start <= avma)?;
        let section = |[at, len]: [u64; 2]| {
            if len == 0 {
                return None;
            }
            // SAFETY: [at, at + len) lies inside a readable, file-backed PT_LOAD segment of a
            // module that was loaded when this (current, pinned) table was published; sections
            // are never written. (A module unloaded since the last refresh is the one case not
            // covered: see the module docs.)
            let data = unsafe { mapped_slice(at, len) };
            Some(Section { data, avma: at })
        };
        Some(ModuleSections {
            eh_frame_hdr: section(e.hdr),
            eh_frame: section(e.eh_frame),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sections_for_code_in_this_process() {
        let map = CodeMap::new(512).unwrap();
        assert!(map.refresh());
        assert!(!map.refresh(), "nothing changed");
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
        let libc_fn = libc::qsort as *const () as u64;
        assert!(map.read(|t| t.sections(libc_fn).is_some()).unwrap());
        assert!(map.read(|t| t.sections(0x10).is_none()).unwrap());
    }
}
