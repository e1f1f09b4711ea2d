//! aarch64: registers by DWARF number, and the compact unwind rules nearly all compiled code
//! fits (a leaf whose return address is still in `x30`, or `x29`/`x30` saved as a pair).

use super::cfi::{CfaRule, Fde, RegRule, Row};
use super::{Regs, StackReader};

/// Registers tracked, by DWARF number: 0-30 `x0`-`x30`, 31 `sp`; 32 holds `pc`, which DWARF
/// leaves without a number.
pub const COUNT: usize = 33;
/// The frame pointer, `x29`.
pub const FP: u16 = 29;
/// The link register `x30`: the return-address column of CIEs.
pub const RA: u16 = 30;
/// The stack pointer, `sp`.
pub const SP: u16 = 31;
/// Where `pc` is kept.
pub const IP: u16 = 32;

/// A return address as code can be found at: pointer-authentication bits (code built with
/// `-mbranch-protection=pac-ret` signs the return addresses it saves) cleared, keeping the
/// 48-bit user address.
pub fn return_address(ra: u64) -> u64 {
    ra & 0x0000_ffff_ffff_ffff
}

/// Where the interrupted registers are, from the stack pointer of the kernel's signal
/// trampoline (`__kernel_rt_sigreturn`): Linux's `rt_sigframe` starts with a 128-byte
/// `siginfo`, then the `ucontext`, whose `uc_mcontext` (at offset 176) holds `fault_address`
/// and then x0-x30, sp and pc.
pub const SIGFRAME_REGS: u64 = 128 + 176 + 8;

/// Unwinds the kernel's signal trampoline from its signal frame: every register of the
/// interrupted code, which the vDSO's CFI cannot describe (it gives only x29 and x30, from the
/// frame record). `Some(Some(step))` when done, `Some(None)` if the frame could not be read,
/// `None` if what it holds cannot be an interrupted context (the CFI is used then).
///
/// # Signal safety
/// Async-signal-safe: 33 reads through `mem`.
pub fn signal_frame_step<M: StackReader + ?Sized>(
    regs: &mut Regs,
    mem: &M,
) -> Option<Option<super::Step>> {
    let read = |i: u64| {
        regs.sp()
            .checked_add(SIGFRAME_REGS + 8 * i)
            .and_then(|a| mem.read_u64(a))
    };
    let mut caller = Regs::default();
    for i in 0..33u16 {
        let Some(v) = read(i as u64) else {
            return Some(None);
        };
        // x0-x30, then sp (31), then pc (32): Regs' own numbering.
        caller.set(i, v);
    }
    // Not Linux's frame after all (another runtime's signal-frame FDE): leave it to the CFI.
    if caller.sp() == 0 || caller.ip() == 0 || !caller.sp().is_multiple_of(16) {
        return None;
    }
    *regs = caller;
    Some(Some(super::Step::Caller { signal_frame: true }))
}

/// How to unwind one frame, for the shapes nearly all compiled code has. Offsets are in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// CFA = sp + `cfa`; the return address is still in `x30`; `x29` unchanged (a leaf, or
    /// a prologue before it saves them).
    Leaf {
        /// CFA offset from sp.
        cfa: u16,
    },
    /// CFA = sp + `cfa`; `x29` saved at CFA - `fp` and `x30` just above it.
    SpPair {
        /// CFA offset from sp.
        cfa: u16,
        /// Where x29 is saved, below the CFA.
        fp: u16,
    },
    /// CFA = x29 + `cfa`; `x29` saved at CFA - `fp` and `x30` just above it.
    FpPair {
        /// CFA offset from x29.
        cfa: u16,
        /// Where x29 is saved, below the CFA.
        fp: u16,
    },
    /// The outermost frame.
    Root,
}

/// # Signal safety
/// Every method is async-signal-safe: arithmetic and reads through the given `StackReader`.
impl Rule {
    /// The compact form of `row`, if it has one (not for signal frames or expressions).
    pub fn from_row(fde: &Fde<'_>, row: &Row) -> Option<Rule> {
        if fde.cie.signal_frame || fde.cie.ra_register != Regs::RA {
            return None;
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
        let below = |o: i32| {
            u16::try_from(-o)
                .ok()
                .filter(|&o| o <= super::MAX_RULE_OFFSET)
        };
        match (row.reg(Regs::RA), row.reg(Regs::FP), reg) {
            (RegRule::Undefined, _, _) => Some(Rule::Root),
            (RegRule::SameValue, RegRule::SameValue, Regs::SP) => Some(Rule::Leaf { cfa }),
            (RegRule::Offset(lr), RegRule::Offset(fp), reg) if lr == fp + 8 && fp < 0 => {
                let fp = below(fp)?;
                match reg {
                    Regs::SP => Some(Rule::SpPair { cfa, fp }),
                    Regs::FP => Some(Rule::FpPair { cfa, fp }),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Turns `regs` into the caller's (pc, sp, x29 and x30 are recovered); `false`, leaving
    /// `regs` unchanged, for the root or a failed read.
    ///
    /// # Signal safety
    /// Async-signal-safe.
    pub fn apply<M: StackReader + ?Sized>(self, regs: &mut Regs, mem: &M) -> bool {
        let caller = match self {
            Rule::Leaf { cfa } => regs
                .sp()
                .checked_add(cfa as u64)
                .zip(regs.get(Regs::RA))
                .map(|(sp, lr)| (lr, sp, regs.fp())),
            Rule::SpPair { cfa, fp } => pair(regs.sp(), cfa, fp, regs, mem),
            Rule::FpPair { cfa, fp } => pair(regs.fp(), cfa, fp, regs, mem),
            Rule::Root => None,
        };
        match caller {
            Some((ra, sp, fp)) => {
                let ra = Regs::return_address(ra);
                regs.set(Regs::IP, ra);
                regs.set(Regs::RA, ra);
                regs.set(Regs::SP, sp);
                regs.set(Regs::FP, fp);
                true
            }
            None => false,
        }
    }

    /// The rule in 32 bits (for [`super::RuleCache`]); [`Rule::unpack`] reverses it.
    pub fn pack(self) -> u32 {
        let (kind, a, b) = match self {
            Rule::Leaf { cfa } => (1, cfa, 0),
            Rule::SpPair { cfa, fp } => (2, cfa, fp),
            Rule::FpPair { cfa, fp } => (3, cfa, fp),
            Rule::Root => (0, 0, 0),
        };
        super::pack_rule(kind, a, b)
    }

    /// The rule [`Rule::pack`] packed into `v`.
    pub fn unpack(v: u32) -> Rule {
        let (kind, a, b) = super::unpack_rule(v);
        match kind {
            1 => Rule::Leaf { cfa: a },
            2 => Rule::SpPair { cfa: a, fp: b },
            3 => Rule::FpPair { cfa: a, fp: b },
            _ => Rule::Root,
        }
    }
}

/// The caller's (return address, sp, x29) for a frame whose CFA is `base + cfa` with the
/// x29/x30 pair saved at CFA - `fp`. A pair slot below the stack pointer was popped already
/// (an epilogue that keeps the prologue's rule): the registers hold the caller's values.
fn pair<M: StackReader + ?Sized>(
    base: u64,
    cfa: u16,
    fp: u16,
    regs: &Regs,
    mem: &M,
) -> Option<(u64, u64, u64)> {
    let cfa = base.checked_add(cfa as u64)?;
    let slot = cfa.checked_sub(fp as u64)?;
    if slot < regs.sp() {
        return Some((regs.get(Regs::RA)?, cfa, regs.fp()));
    }
    Some((
        mem.read_u64(slot.checked_add(8)?)?,
        cfa,
        mem.read_u64(slot)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unwind::SliceStack;

    #[test]
    fn rules_pack_and_unpack() {
        let rules = [
            Rule::Leaf { cfa: 0 },
            Rule::SpPair {
                cfa: 0x7fff,
                fp: 16,
            },
            Rule::FpPair { cfa: 16, fp: 16 },
            Rule::Root,
        ];
        for r in rules {
            assert_eq!(Rule::unpack(r.pack()), r);
        }
    }

    #[test]
    fn the_signal_frame_layout_is_linuxs() {
        let mcontext = core::mem::offset_of!(libc::ucontext_t, uc_mcontext);
        let regs = core::mem::offset_of!(libc::mcontext_t, regs);
        let (sp, pc) = (
            core::mem::offset_of!(libc::mcontext_t, sp),
            core::mem::offset_of!(libc::mcontext_t, pc),
        );
        assert_eq!(core::mem::size_of::<libc::siginfo_t>(), 128);
        assert_eq!((mcontext + regs) as u64 + 128, SIGFRAME_REGS);
        assert_eq!((sp - regs, pc - regs), (31 * 8, 32 * 8));
    }

    #[test]
    fn a_signal_frame_gives_back_every_register() {
        let base = 0x8000u64;
        let mut words = vec![0u64; (SIGFRAME_REGS / 8) as usize + 33];
        let at = (SIGFRAME_REGS / 8) as usize;
        for i in 0..31 {
            words[at + i] = 0x100 + i as u64;
        }
        words[at + 31] = 0x7_0000; // sp
        words[at + 32] = 0x40_1234; // pc
        let bytes: std::vec::Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mem = SliceStack {
            base,
            bytes: &bytes,
        };
        let mut regs = Regs::new(0x9999, base, 0);
        let step = signal_frame_step(&mut regs, &mem);
        assert_eq!(
            step,
            Some(Some(crate::unwind::Step::Caller { signal_frame: true }))
        );
        assert_eq!(
            (regs.ip(), regs.sp(), regs.fp()),
            (0x40_1234, 0x7_0000, 0x100 + 29)
        );
        assert_eq!(regs.get(Regs::RA), Some(0x100 + 30));
        // A frame that runs past the readable memory: the walk ends, nothing is made up.
        let short = SliceStack {
            base,
            bytes: &bytes[..bytes.len() - 8],
        };
        let mut regs = Regs::new(0x9999, base, 0);
        assert_eq!(signal_frame_step(&mut regs, &short), Some(None));
    }

    #[test]
    fn applying_rules() {
        let base = 0x7000u64;
        // A frame record at base: saved x29, then x30 (signed: PAC bits in the top byte).
        let words: std::vec::Vec<u8> = [0x7100u64, 0x5a00_0000_0000_4242]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        let mem = SliceStack {
            base,
            bytes: &words,
        };
        let mut regs = Regs::new(0x1000, base, base);
        regs.set(Regs::RA, 0x2000);
        let apply = |rule: Rule| {
            let mut r = regs;
            rule.apply(&mut r, &mem).then_some((r.ip(), r.sp(), r.fp()))
        };
        // A leaf: the return address is in x30.
        assert_eq!(apply(Rule::Leaf { cfa: 0 }), Some((0x2000, base, base)));
        // stp x29, x30, [sp, #-16]!; mov x29, sp: CFA = x29 + 16, pair at CFA - 16.
        assert_eq!(
            apply(Rule::FpPair { cfa: 16, fp: 16 }),
            Some((0x4242, base + 16, 0x7100)),
            "the return address loses its authentication bits"
        );
        assert_eq!(
            apply(Rule::SpPair { cfa: 16, fp: 16 }),
            Some((0x4242, base + 16, 0x7100))
        );
        assert_eq!(apply(Rule::Root), None);
    }
}
