//! x86_64: registers by DWARF number, and the compact unwind rules nearly all compiled code
//! fits.

use super::cfi::{CfaRule, Fde, RegRule, Row};
use super::{Regs, StackReader};

/// Registers tracked, by DWARF number: 0 `rax`, 1 `rdx`, 2 `rcx`, 3 `rbx`, 4 `rsi`, 5 `rdi`,
/// 6 `rbp`, 7 `rsp`, 8-15 `r8`-`r15`, 16 the return address / `rip`.
pub const COUNT: usize = 17;
/// The frame pointer, `rbp`.
pub const FP: u16 = 6;
/// The stack pointer, `rsp`.
pub const SP: u16 = 7;
/// The instruction pointer, `rip`, which is also the return-address column of CIEs.
pub const IP: u16 = 16;
/// The return-address column compact rules expect.
pub const RA: u16 = 16;

/// A return address as code can be found at: unchanged on x86_64.
pub fn return_address(ra: u64) -> u64 {
    ra
}

/// Unwinding a signal trampoline by its frame layout: not needed on x86_64, where glibc's
/// `__restore_rt` carries CFI that describes every register (`None`: use the CFI).
///
/// # Signal safety
/// Async-signal-safe.
pub fn signal_frame_step<M: StackReader + ?Sized>(
    _regs: &mut Regs,
    _mem: &M,
) -> Option<Option<super::Step>> {
    None
}

/// How to unwind one frame, for the shapes nearly all compiled code has: the return address
/// just below the CFA, the CFA at a fixed offset from `rsp` or `rbp`, and `rbp` either kept or
/// saved at a fixed offset below the CFA. Offsets are in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// CFA = rsp + `cfa`; rbp unchanged.
    Sp {
        /// CFA offset from rsp.
        cfa: u16,
    },
    /// CFA = rsp + `cfa`; rbp saved at CFA - `bp`.
    SpSavedBp {
        /// CFA offset from rsp.
        cfa: u16,
        /// Where rbp is saved, below the CFA.
        bp: u16,
    },
    /// CFA = rbp + `cfa`; rbp saved at CFA - `bp`.
    BpSavedBp {
        /// CFA offset from rbp.
        cfa: u16,
        /// Where rbp is saved, below the CFA.
        bp: u16,
    },
    /// The outermost frame.
    Root,
}

/// # Signal safety
/// Every method is async-signal-safe: arithmetic and reads through the given `StackReader`.
impl Rule {
    /// The compact form of `row`, if it has one (not for signal frames or expressions).
    pub fn from_row(fde: &Fde<'_>, row: &Row) -> Option<Rule> {
        let ra_reg = fde.cie.ra_register;
        if fde.cie.signal_frame || ra_reg != Regs::RA {
            return None;
        }
        match row.reg(ra_reg) {
            RegRule::Undefined => return Some(Rule::Root),
            RegRule::Offset(-8) => {}
            _ => return None,
        }
        if row.reg(Regs::SP) != RegRule::SameValue {
            return None;
        }
        let CfaRule::RegOffset { reg, offset } = row.cfa else {
            return None;
        };
        let cfa = u16::try_from(offset)
            .ok()
            .filter(|&o| o <= super::MAX_RULE_OFFSET)?;
        let bp = match row.reg(Regs::FP) {
            RegRule::SameValue => None,
            RegRule::Offset(o) if o < 0 => Some(
                u16::try_from(-o)
                    .ok()
                    .filter(|&o| o <= super::MAX_RULE_OFFSET)?,
            ),
            _ => return None,
        };
        match (reg, bp) {
            (Regs::SP, None) => Some(Rule::Sp { cfa }),
            (Regs::SP, Some(bp)) => Some(Rule::SpSavedBp { cfa, bp }),
            (Regs::FP, Some(bp)) => Some(Rule::BpSavedBp { cfa, bp }),
            _ => None,
        }
    }

    /// Turns `regs` into the caller's (only rip, rsp and rbp are recovered); `false`, leaving
    /// `regs` unchanged, for the root or a failed read.
    ///
    /// # Signal safety
    /// Async-signal-safe.
    pub fn apply<M: StackReader + ?Sized>(self, regs: &mut Regs, mem: &M) -> bool {
        match self.caller(regs, mem) {
            Some((ip, sp, bp)) => {
                regs.set(Regs::IP, ip);
                regs.set(Regs::SP, sp);
                regs.set(Regs::FP, bp);
                true
            }
            None => false,
        }
    }

    fn caller<M: StackReader + ?Sized>(self, regs: &Regs, mem: &M) -> Option<(u64, u64, u64)> {
        let (base, cfa_off, bp_off) = match self {
            Rule::Sp { cfa } => (regs.sp(), cfa, None),
            Rule::SpSavedBp { cfa, bp } => (regs.sp(), cfa, Some(bp)),
            Rule::BpSavedBp { cfa, bp } => (regs.fp(), cfa, Some(bp)),
            Rule::Root => return None,
        };
        let cfa = base.checked_add(cfa_off as u64)?;
        let ra = mem.read_u64(cfa.checked_sub(8)?)?;
        let bp = match bp_off.and_then(|off| cfa.checked_sub(off as u64)) {
            // A save slot below the stack pointer was popped already (LLVM's epilogues keep
            // the prologue's rule): the register holds the caller's value.
            Some(slot) if slot >= regs.sp() => mem.read_u64(slot)?,
            _ => regs.fp(),
        };
        Some((ra, cfa, bp))
    }

    /// The rule in 32 bits (for [`super::RuleCache`]); [`Rule::unpack`] reverses it.
    pub fn pack(self) -> u32 {
        let (kind, a, b) = match self {
            Rule::Sp { cfa } => (1, cfa, 0),
            Rule::SpSavedBp { cfa, bp } => (2, cfa, bp),
            Rule::BpSavedBp { cfa, bp } => (3, cfa, bp),
            Rule::Root => (0, 0, 0),
        };
        super::pack_rule(kind, a, b)
    }

    /// The rule [`Rule::pack`] packed into `v`.
    pub fn unpack(v: u32) -> Rule {
        let (kind, a, b) = super::unpack_rule(v);
        match kind {
            1 => Rule::Sp { cfa: a },
            2 => Rule::SpSavedBp { cfa: a, bp: b },
            3 => Rule::BpSavedBp { cfa: a, bp: b },
            _ => Rule::Root,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_pack_and_unpack() {
        let rules = [
            Rule::Sp { cfa: 8 },
            Rule::SpSavedBp {
                cfa: 0x7fff,
                bp: 16,
            },
            Rule::BpSavedBp { cfa: 16, bp: 16 },
            Rule::Root,
        ];
        for r in rules {
            assert_eq!(Rule::unpack(r.pack()), r);
        }
    }

    #[test]
    fn applying_rules() {
        use crate::unwind::SliceStack;
        let base = 0x7000u64;
        let words: std::vec::Vec<u8> = [0xb0u64, 0x4242, 0x60, 0x4343]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        let mem = SliceStack {
            base,
            bytes: &words,
        };
        let regs = Regs::new(0x1000, base, base + 16);
        let apply = |rule: Rule| {
            let mut r = regs;
            rule.apply(&mut r, &mem).then_some((r.ip(), r.sp(), r.fp()))
        };
        // CFA = rsp + 16: return address at rsp + 8.
        assert_eq!(
            apply(Rule::Sp { cfa: 16 }),
            Some((0x4242, base + 16, base + 16))
        );
        // CFA = rsp + 16, rbp saved at CFA - 16.
        assert_eq!(
            apply(Rule::SpSavedBp { cfa: 16, bp: 16 }),
            Some((0x4242, base + 16, 0xb0))
        );
        // CFA = rbp + 16.
        assert_eq!(
            apply(Rule::BpSavedBp { cfa: 16, bp: 16 }),
            Some((0x4343, base + 32, 0x60))
        );
        // At `ret` after `pop rbp`: CFA = rsp + 8 and the rule still says rbp at CFA - 16,
        // below rsp. The pop restored rbp already: keep it (reading there would fail).
        assert_eq!(
            apply(Rule::SpSavedBp { cfa: 8, bp: 16 }),
            Some((0xb0, base + 8, base + 16))
        );
        assert_eq!(apply(Rule::Root), None);
        assert_eq!(apply(Rule::Sp { cfa: 0x7000 }), None);
    }
}
