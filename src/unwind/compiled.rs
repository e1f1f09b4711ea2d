//! Unwind rules compiled ahead, per module: once a sample needs a module, the sampler thread
//! runs every FDE's CFA program of its copied unwind sections once and writes, for each address
//! range, the
//! compact [`Rule`] in force there (or that only the interpreter can tell, or that no FDE
//! covers it). The handler then finds a frame's rule by one binary search instead of finding
//! its FDE, parsing its CIE and running its program.
//!
//! An entry is a `u64`: the range's start as an offset from the module's base in the high 32
//! bits, the packed rule (or [`INTERPRET`], [`NO_FDE`]) in the low 32. Entries are sorted by
//! start and a range lasts until the next entry's start; the rule at an address is the last
//! entry starting at or before it, exactly as [`super::cfi::program::row_at`] finds the row.

use super::cfi::cie_fde::parse_fde;
use super::cfi::eh_frame_hdr::EhFrameHdr;
use super::cfi::program::{for_each_row, row_at};
use super::cfi::{find_fde, ModuleSections};
use super::Rule;

/// Only the interpreter can tell (a signal frame, a rule no compact [`Rule`] holds, or
/// unwind information it would reject): look the FDE up and run its program.
pub const INTERPRET: u32 = 1 << 15;
/// No FDE covers the address: unwind by frame pointers.
pub const NO_FDE: u32 = 2 << 15;

/// A module's compiled rules, as the handler reads them.
#[derive(Debug, Clone, Copy)]
pub struct Compiled<'a> {
    /// The address offsets count from.
    pub base: u64,
    /// The entries, sorted by start.
    pub entries: &'a [u64],
}

impl Compiled<'_> {
    /// The packed rule (or [`INTERPRET`], [`NO_FDE`]) at `pc`, or `None` before the first
    /// FDE and outside the module.
    ///
    /// # Signal safety
    /// Async-signal-safe: a binary search.
    pub fn lookup(&self, pc: u64) -> Option<u32> {
        let offset = u32::try_from(pc.checked_sub(self.base)?).ok()?;
        let i = self.entries.partition_point(|e| (e >> 32) as u32 <= offset);
        Some(*self.entries.get(i.checked_sub(1)?)? as u32)
    }
}

/// The packed rule (or [`INTERPRET`], [`NO_FDE`]) interpreting `m`'s FDE for `pc` gives: what
/// the compiled entry for `pc` must say (the tests' and the fuzz target's oracle).
pub fn interpreted(m: &ModuleSections<'_>, pc: u64) -> u32 {
    let plain = ModuleSections {
        compiled: None,
        ..*m
    };
    match find_fde(&plain, pc) {
        Ok(None) => NO_FDE,
        Ok(Some(fde)) if fde.cie.signal_frame => INTERPRET,
        Ok(Some(fde)) => match plain.eh_frame.map(|eh| row_at(eh, &fde, pc)) {
            Some(Ok(row)) => Rule::from_row(&fde, &row).map_or(INTERPRET, Rule::pack),
            _ => INTERPRET,
        },
        Err(_) => INTERPRET,
    }
}

/// Writes a module's entries: a pending one is held back so that a later row starting at the
/// same address replaces it and an equal neighbour merges into it.
#[derive(Debug, Clone, Copy)]
struct Emitter {
    base: u64,
    pending: Option<(u32, u32)>,
    ok: bool,
}

impl Emitter {
    fn put(&mut self, start: u64, packed: u32, emit: &mut dyn FnMut(u64)) {
        let Some(offset) = start
            .checked_sub(self.base)
            .and_then(|o| u32::try_from(o).ok())
        else {
            self.ok = false;
            return;
        };
        match self.pending {
            Some((at, _)) if offset < at => self.ok = false,
            Some((at, _)) if offset == at => self.pending = Some((at, packed)),
            Some((_, rule)) if rule == packed => {}
            _ => {
                self.flush(emit);
                self.pending = Some((offset, packed));
            }
        }
    }

    fn flush(&mut self, emit: &mut dyn FnMut(u64)) {
        if let (true, Some((at, rule))) = (self.ok, self.pending.take()) {
            emit((at as u64) << 32 | rule as u64);
        }
    }
}

/// A module's compilation, a slice of its FDEs at a time, so that the sampler thread never
/// stops for long (a large module has 10⁵ FDEs): every [`Compiler::step`] is given the same
/// sections and continues where the last one stopped.
#[derive(Debug, Clone, Copy)]
pub struct Compiler {
    out: Emitter,
    /// The next `.eh_frame_hdr` table entry.
    next: usize,
    /// Where the last FDE compiled ends.
    prev_end: Option<u64>,
}

impl Compiler {
    /// A compilation of the module whose offsets count from `base`.
    pub fn new(base: u64) -> Self {
        Compiler {
            out: Emitter {
                base,
                pending: None,
                ok: true,
            },
            next: 0,
            prev_end: None,
        }
    }

    /// Compiles up to `fdes` more FDEs of `m`, calling `emit` with each entry in order.
    /// Returns `None` while FDEs remain, then whether the module could be compiled: `false`
    /// when there is no sorted table in `.eh_frame_hdr`, FDEs are out of order or overlap,
    /// or the module is over 4 GiB; then the entries given mean nothing and the module is
    /// interpreted.
    ///
    /// # Signal safety
    /// Not called from the handler: the sampler thread compiles modules once samples need them.
    pub fn step(
        &mut self,
        m: &ModuleSections<'_>,
        fdes: usize,
        emit: &mut dyn FnMut(u64),
    ) -> Option<bool> {
        let (Some(hdr), Some(eh_frame)) = (m.eh_frame_hdr, m.eh_frame) else {
            return Some(false);
        };
        let Ok(hdr) = EhFrameHdr::parse(hdr) else {
            return Some(false);
        };
        if !hdr.has_table() {
            return Some(false);
        }
        let end = hdr.entry_count().min(self.next.saturating_add(fdes));
        for i in self.next..end {
            let Ok((start, fde_avma)) = hdr.entry(i) else {
                return Some(false);
            };
            let fde = eh_frame
                .offset_of(fde_avma)
                .and_then(|offset| parse_fde(eh_frame, offset).ok())
                .filter(|fde| fde.pc_begin == start);
            let Some(fde) = fde else {
                // The interpreter rejects this entry for every address it is found for.
                self.out.put(start, INTERPRET, emit);
                self.prev_end = None;
                continue;
            };
            if let Some(end) = self.prev_end.filter(|&end| fde.pc_begin > end) {
                self.out.put(end, NO_FDE, emit);
            }
            if fde.cie.signal_frame {
                self.out.put(fde.pc_begin, INTERPRET, emit);
            } else {
                let out = &mut self.out;
                for_each_row(eh_frame, &fde, &mut |at, row| {
                    if at >= fde.pc_end {
                        return;
                    }
                    let packed = row
                        .and_then(|row| Rule::from_row(&fde, row))
                        .map_or(INTERPRET, Rule::pack);
                    out.put(at, packed, emit);
                });
            }
            self.prev_end = Some(fde.pc_end);
        }
        self.next = end;
        if end < hdr.entry_count() {
            return None;
        }
        if let Some(end) = self.prev_end.take() {
            self.out.put(end, NO_FDE, emit);
        }
        self.out.flush(emit);
        Some(self.out.ok)
    }
}

/// Compiles the module whose sections are `m` and whose offsets count from `base` in one go,
/// calling `emit` with each entry in order; returns what the last [`Compiler::step`] does.
///
/// # Signal safety
/// Not called from the handler.
pub fn compile(m: &ModuleSections<'_>, base: u64, emit: &mut dyn FnMut(u64)) -> bool {
    let mut c = Compiler::new(base);
    loop {
        if let Some(ok) = c.step(m, usize::MAX, emit) {
            return ok;
        }
    }
}
