//! The CFA program: runs a CIE's and an FDE's instructions up to an address, giving the row
//! of rules that recovers the caller's registers there.

use arrayvec::ArrayVec;

use super::cie_fde::Fde;
use super::reader::{Bases, Cursor, Section};
use super::CfiError;
use crate::unwind::Regs;

type R<T> = Result<T, CfiError>;

/// How to compute the Canonical Frame Address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CfaRule {
    /// `register + offset`.
    RegOffset {
        /// DWARF register.
        reg: u16,
        /// Offset in bytes.
        offset: i32,
    },
    /// A DWARF expression; the section offset of its LEB128 length.
    Expression(u32),
}

/// How to recover one register of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegRule {
    /// Unchanged (the default for registers no instruction mentions).
    #[default]
    SameValue,
    /// Not recoverable (for the return address: the outermost frame).
    Undefined,
    /// Saved at `CFA + offset`.
    Offset(i32),
    /// Is `CFA + offset`.
    ValOffset(i32),
    /// Is in another register.
    Register(u16),
    /// Saved at the address an expression computes (section offset of its length).
    Expression(u32),
    /// Is the value an expression computes.
    ValExpression(u32),
}

/// The rules in force at one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// The CFA rule.
    pub cfa: CfaRule,
    /// A rule per tracked register (see [`Regs`]).
    pub regs: [RegRule; Regs::COUNT],
}

/// # Signal safety
/// Every method is async-signal-safe: reads of a fixed array.
impl Row {
    /// The rule for `reg` (`SameValue` for untracked registers).
    pub fn reg(&self, reg: u16) -> RegRule {
        self.regs.get(reg as usize).copied().unwrap_or_default()
    }

    fn set(&mut self, reg: u16, rule: RegRule) {
        // Registers beyond those tracked (vector registers) do not matter for unwinding.
        if let Some(r) = self.regs.get_mut(reg as usize) {
            *r = rule;
        }
    }
}

/// Depth of `DW_CFA_remember_state` nesting supported.
pub const REMEMBER_DEPTH: usize = 4;

fn factored(v: i64, align: i64) -> R<i32> {
    v.checked_mul(align)
        .and_then(|v| i32::try_from(v).ok())
        .ok_or(CfiError::BadInstruction)
}

fn leb_u16(c: &mut Cursor<'_>) -> R<u16> {
    u16::try_from(c.uleb()?).map_err(|_| CfiError::BadInstruction)
}

/// Skips an expression block (LEB128 length, bytes) and returns the offset of its length.
fn expression(c: &mut Cursor<'_>) -> R<u32> {
    let at = u32::try_from(c.pos()).map_err(|_| CfiError::BadInstruction)?;
    let len = usize::try_from(c.uleb()?).map_err(|_| CfiError::BadInstruction)?;
    c.skip(len)?;
    Ok(at)
}

/// What receives the rows of a whole program: `(start, Some(row))`, or `(start, None)` from
/// where only the interpreter can tell (see [`for_each_row`]).
pub type RowSink<'a> = dyn FnMut(u64, Option<&Row>) + 'a;

struct Machine<'a> {
    /// Called with each row and the location it starts at, before the location moves on
    /// (when compiling a whole FDE).
    on_row: Option<&'a mut RowSink<'a>>,
    row: Row,
    initial: Row,
    /// Remembered rows (left uninitialised until used: most programs remember none).
    stack: ArrayVec<Row, REMEMBER_DEPTH>,
    loc: u64,
    fde: &'a Fde<'a>,
}

impl<'a> Machine<'a> {
    /// A machine at the start of `fde`, its CIE's initial instructions run.
    fn after_cie(eh_frame: Section<'_>, fde: &'a Fde<'a>) -> R<Self> {
        let empty = Row {
            cfa: CfaRule::RegOffset {
                reg: Regs::SP,
                offset: 0,
            },
            regs: [RegRule::SameValue; Regs::COUNT],
        };
        let mut m = Machine {
            on_row: None,
            row: empty,
            initial: empty,
            stack: ArrayVec::new(),
            loc: fde.pc_begin,
            fde,
        };
        let cie = &fde.cie;
        m.run(
            eh_frame,
            cie.instructions_offset,
            cie.instructions_offset + cie.instructions.len(),
            None,
        )?;
        m.initial = m.row;
        Ok(m)
    }

    /// Runs instructions from `start` to `end` of the section. Returns `true` if execution
    /// stopped because the location passed `pc`.
    fn run(&mut self, sec: Section<'_>, start: usize, end: usize, pc: Option<u64>) -> R<bool> {
        let mut c = sec.at(start);
        let (code_align, data_align) = (self.fde.cie.code_align, self.fde.cie.data_align);
        while c.pos() < end {
            let op = c.u8()?;
            let advance = |loc: u64, delta: u64| -> R<u64> {
                delta
                    .checked_mul(code_align)
                    .and_then(|d| loc.checked_add(d))
                    .ok_or(CfiError::BadInstruction)
            };
            let new_loc = match op >> 6 {
                1 => Some(advance(self.loc, (op & 0x3f) as u64)?),
                2 => {
                    let off = factored(c.uleb()? as i64, data_align)?;
                    self.row.set((op & 0x3f) as u16, RegRule::Offset(off));
                    None
                }
                3 => {
                    let reg = (op & 0x3f) as u16;
                    self.row.set(reg, self.initial.reg(reg));
                    None
                }
                _ => match op {
                    0x00 => None,
                    0x01 => Some(c.pointer(self.fde.cie.fde_encoding, &Bases::default())?),
                    0x02 => Some(advance(self.loc, c.u8()? as u64)?),
                    0x03 => Some(advance(self.loc, c.u16()? as u64)?),
                    0x04 => Some(advance(self.loc, c.u32()? as u64)?),
                    _ => {
                        self.operation(op, &mut c)?;
                        None
                    }
                },
            };
            if let Some(loc) = new_loc {
                if pc.is_some_and(|pc| loc > pc) {
                    return Ok(true);
                }
                if let Some(f) = self.on_row.as_mut() {
                    f(self.loc, Some(&self.row));
                }
                self.loc = loc;
            }
        }
        Ok(false)
    }

    /// The instructions that change rules (all but the location ones).
    fn operation(&mut self, op: u8, c: &mut Cursor<'_>) -> R<()> {
        let data_align = self.fde.cie.data_align;
        match op {
            0x05 => {
                let reg = leb_u16(c)?;
                let off = factored(c.uleb()? as i64, data_align)?;
                self.row.set(reg, RegRule::Offset(off));
            }
            0x06 => {
                let reg = leb_u16(c)?;
                self.row.set(reg, self.initial.reg(reg));
            }
            0x07 => self.row.set(leb_u16(c)?, RegRule::Undefined),
            0x08 => self.row.set(leb_u16(c)?, RegRule::SameValue),
            0x09 => {
                let reg = leb_u16(c)?;
                let from = leb_u16(c)?;
                self.row.set(reg, RegRule::Register(from));
            }
            0x0a => self
                .stack
                .try_push(self.row)
                .map_err(|_| CfiError::RememberOverflow)?,
            // Like libgcc, the remembered state includes the CFA rule.
            0x0b => self.row = self.stack.pop().ok_or(CfiError::BadInstruction)?,
            0x0c => {
                let reg = leb_u16(c)?;
                let offset = i32::try_from(c.uleb()?).map_err(|_| CfiError::BadInstruction)?;
                self.row.cfa = CfaRule::RegOffset { reg, offset };
            }
            0x0d => {
                let reg = leb_u16(c)?;
                match &mut self.row.cfa {
                    CfaRule::RegOffset { reg: r, .. } => *r = reg,
                    CfaRule::Expression(_) => return Err(CfiError::BadInstruction),
                }
            }
            0x0e | 0x13 => {
                let offset = if op == 0x0e {
                    i32::try_from(c.uleb()?).map_err(|_| CfiError::BadInstruction)?
                } else {
                    factored(c.sleb()?, data_align)?
                };
                match &mut self.row.cfa {
                    CfaRule::RegOffset { offset: o, .. } => *o = offset,
                    CfaRule::Expression(_) => return Err(CfiError::BadInstruction),
                }
            }
            0x0f => self.row.cfa = CfaRule::Expression(expression(c)?),
            0x10 => {
                let reg = leb_u16(c)?;
                self.row.set(reg, RegRule::Expression(expression(c)?));
            }
            0x11 => {
                let reg = leb_u16(c)?;
                let off = factored(c.sleb()?, data_align)?;
                self.row.set(reg, RegRule::Offset(off));
            }
            0x12 => {
                let reg = leb_u16(c)?;
                let offset = factored(c.sleb()?, data_align)?;
                self.row.cfa = CfaRule::RegOffset { reg, offset };
            }
            0x14 => {
                let reg = leb_u16(c)?;
                let off = factored(c.uleb()? as i64, data_align)?;
                self.row.set(reg, RegRule::ValOffset(off));
            }
            0x15 => {
                let reg = leb_u16(c)?;
                let off = factored(c.sleb()?, data_align)?;
                self.row.set(reg, RegRule::ValOffset(off));
            }
            0x16 => {
                let reg = leb_u16(c)?;
                self.row.set(reg, RegRule::ValExpression(expression(c)?));
            }
            // DW_CFA_AARCH64_negate_ra_state: the return address is signed from here on; return
            // addresses are always stripped of their authentication bits on aarch64
            // (`Regs::return_address`), so this changes nothing.
            #[cfg(target_arch = "aarch64")]
            0x2d => {}
            0x2e => {
                c.uleb()?; // DW_CFA_GNU_args_size: no effect on unwinding
            }
            0x2f => {
                let reg = leb_u16(c)?;
                let off = factored(-(c.uleb()? as i64), data_align)?;
                self.row.set(reg, RegRule::Offset(off));
            }
            _ => return Err(CfiError::BadInstruction),
        }
        Ok(())
    }
}

/// The row of rules in force at `pc` (which must lie in the FDE's range).
///
/// # Signal safety
/// Async-signal-safe: fixed-size state (a remember stack of [`REMEMBER_DEPTH`] rows), bounded
/// by the instruction bytes.
pub fn row_at(eh_frame: Section<'_>, fde: &Fde<'_>, pc: u64) -> R<Row> {
    let mut m = Machine::after_cie(eh_frame, fde)?;
    m.run(
        eh_frame,
        fde.instructions_offset,
        fde.instructions_offset + fde.instructions.len(),
        Some(pc),
    )?;
    Ok(m.row)
}

/// Runs `fde`'s whole program, calling `f(start, Some(row))` for each row in order (a row
/// holds from its start to the next one's, the last to the FDE's end). An instruction that
/// cannot be run ends it with `f(start, None)`: from there on only the interpreter can tell
/// (rows given before hold: looking up an earlier address stops before that instruction).
///
/// # Signal safety
/// Not called from the handler (the sampler thread compiles modules as they load).
pub fn for_each_row<'a>(eh_frame: Section<'_>, fde: &'a Fde<'a>, f: &'a mut RowSink<'a>) {
    let Ok(mut m) = Machine::after_cie(eh_frame, fde) else {
        f(fde.pc_begin, None);
        return;
    };
    m.on_row = Some(f);
    let body = m.run(
        eh_frame,
        fde.instructions_offset,
        fde.instructions_offset + fde.instructions.len(),
        None,
    );
    let (loc, row) = (m.loc, m.row);
    if let Some(f) = m.on_row {
        f(loc, body.is_ok().then_some(&row));
    }
}
