//! The `.eh_frame` unwinder: find the FDE for an address, run its CFA program, recover the
//! caller's registers. Safe code over section slices and a [`StackReader`]; no allocation.

pub mod cie_fde;
pub mod eh_frame_hdr;
pub mod expr;
pub mod program;
pub mod reader;

pub use cie_fde::{Cie, Fde};
pub use program::{CfaRule, RegRule, Row};
pub use reader::Section;

use crate::unwind::{Regs, StackReader, Step};

/// What went wrong reading unwind information. Every one ends the stack walk with
/// [`crate::EndReason::BadUnwindInfo`] (or `OutOfBounds` for [`CfiError::BadRead`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CfiError {
    /// A section ended in the middle of an entry.
    Truncated,
    /// A LEB128 number longer than 10 bytes.
    BadLeb128,
    /// An unknown or unsupported pointer encoding.
    BadPointerEncoding,
    /// A malformed CIE or FDE.
    BadEntry,
    /// A malformed `.eh_frame_hdr`.
    BadEhFrameHdr,
    /// An unknown or malformed CFA instruction.
    BadInstruction,
    /// `DW_CFA_remember_state` nested deeper than supported.
    RememberOverflow,
    /// An unknown or malformed DWARF expression.
    BadExpression,
    /// A rule needed stack memory that could not be read.
    BadRead,
}

impl From<CfiError> for crate::unwind::EndReason {
    /// How a walk ends on `e`: stack memory out of reach, or bad unwind information.
    fn from(e: CfiError) -> Self {
        match e {
            CfiError::BadRead => crate::unwind::EndReason::OutOfBounds,
            _ => crate::unwind::EndReason::BadUnwindInfo,
        }
    }
}

/// A module's unwind sections, as mapped in memory.
#[derive(Debug, Clone, Copy)]
pub struct ModuleSections<'a> {
    /// `.eh_frame_hdr`, if the module has one (`PT_GNU_EH_FRAME`).
    pub eh_frame_hdr: Option<Section<'a>>,
    /// `.eh_frame`.
    pub eh_frame: Option<Section<'a>>,
    /// The rules compiled from them when the module was copied, if they could be.
    pub compiled: Option<crate::unwind::compiled::Compiled<'a>>,
}

/// Most FDEs a linear scan looks at (modules without `.eh_frame_hdr`).
pub const MAX_SCAN: usize = 200_000;

/// The FDE covering `pc`, or `None` if no FDE does.
///
/// # Signal safety
/// Async-signal-safe: a binary search in `.eh_frame_hdr`, or a bounded scan of `.eh_frame`.
pub fn find_fde<'a>(m: &ModuleSections<'a>, pc: u64) -> Result<Option<Fde<'a>>, CfiError> {
    let Some(eh_frame) = m.eh_frame else {
        return Ok(None);
    };
    if let Some(hdr) = m.eh_frame_hdr {
        let hdr = eh_frame_hdr::EhFrameHdr::parse(hdr)?;
        if hdr.has_table() {
            let Some(fde_avma) = hdr.lookup(pc)? else {
                return Ok(None);
            };
            let offset = eh_frame
                .offset_of(fde_avma)
                .ok_or(CfiError::BadEhFrameHdr)?;
            let fde = cie_fde::parse_fde(eh_frame, offset)?;
            return Ok((fde.pc_begin <= pc && pc < fde.pc_end).then_some(fde));
        }
    }
    cie_fde::scan_for_fde(eh_frame, pc, MAX_SCAN)
}

/// Applies `row` (from `fde`, at the current frame) to `regs`, which then hold the caller's
/// registers; memory is read through `mem`.
///
/// # Signal safety
/// Async-signal-safe.
pub fn apply_row<M: StackReader + ?Sized>(
    eh_frame: Section<'_>,
    fde: &Fde<'_>,
    row: &Row,
    regs: &mut Regs,
    mem: &M,
) -> Result<Step, CfiError> {
    let old = *regs;
    let cfa = match row.cfa {
        CfaRule::RegOffset { reg, offset } => old
            .get(reg)
            .ok_or(CfiError::BadInstruction)?
            .wrapping_add_signed(offset as i64),
        CfaRule::Expression(at) => expr::evaluate(eh_frame, at, &old, mem, None)?,
    };
    let ra_reg = fde.cie.ra_register;
    if row.reg(ra_reg) == RegRule::Undefined {
        return Ok(Step::Root);
    }
    let read = |addr: u64| mem.read_u64(addr).ok_or(CfiError::BadRead);
    // The caller's stack pointer is the CFA unless a rule says otherwise.
    regs.set(Regs::SP, cfa);
    for r in 0..Regs::COUNT as u16 {
        let value = match row.reg(r) {
            RegRule::SameValue => continue,
            RegRule::Undefined => 0,
            // A save slot below the stack pointer was popped already (LLVM's epilogues keep
            // the prologue's rules): the register holds the caller's value.
            RegRule::Offset(o) if r != ra_reg && cfa.wrapping_add_signed(o as i64) < old.sp() => {
                continue
            }
            RegRule::Offset(o) => read(cfa.wrapping_add_signed(o as i64))?,
            RegRule::ValOffset(o) => cfa.wrapping_add_signed(o as i64),
            RegRule::Register(from) => old.get(from).ok_or(CfiError::BadInstruction)?,
            RegRule::Expression(at) => read(expr::evaluate(eh_frame, at, &old, mem, Some(cfa))?)?,
            RegRule::ValExpression(at) => expr::evaluate(eh_frame, at, &old, mem, Some(cfa))?,
        };
        regs.set(r, value);
    }
    let ra = regs.get(ra_reg).ok_or(CfiError::BadInstruction)?;
    regs.set(Regs::IP, Regs::return_address(ra));
    Ok(Step::Caller {
        signal_frame: fde.cie.signal_frame,
    })
}

#[cfg(test)]
mod tests;
