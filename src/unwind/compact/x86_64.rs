//! x86_64 compact unwind encodings (`UNWIND_X86_64_*`).

use super::{CompactRule, ReturnAddress};

/// `UNWIND_X86_64_MODE_MASK` and its modes.
const MODE_MASK: u32 = 0x0f00_0000;
const MODE_RBP_FRAME: u32 = 0x0100_0000;
const MODE_STACK_IMMD: u32 = 0x0200_0000;
const MODE_STACK_IND: u32 = 0x0300_0000;
const MODE_DWARF: u32 = 0x0400_0000;

/// `UNWIND_X86_64_REG_RBP`: the register numbering of the frameless permutation.
const REG_RBP: u32 = 6;

/// Decodes `encoding`; `None` for a mode this version does not know.
///
/// # Signal safety
/// Async-signal-safe: arithmetic.
pub fn decode(encoding: u32) -> Option<CompactRule> {
    let field = |mask: u32| (encoding & mask) >> mask.trailing_zeros();
    match encoding & MODE_MASK {
        0 => Some(CompactRule::None),
        // The frame pointer chain; the other saved registers are below rbp (not needed to
        // find the caller's rip, rsp and rbp).
        MODE_RBP_FRAME => Some(CompactRule::FramePointer),
        MODE_STACK_IMMD | MODE_STACK_IND => {
            let size = field(0x00ff_0000);
            let saved = field(0x0000_1c00);
            let fp_index = saved_registers(saved, field(0x0000_03ff))?
                .iter()
                .take(saved as usize)
                .position(|&r| r == REG_RBP)
                .map(|i| i as u32);
            if encoding & MODE_MASK == MODE_STACK_IMMD {
                let stack_size = size * 8;
                // The registers were pushed just below the return address.
                let fp_at = match fp_index {
                    Some(i) => Some(stack_size.checked_sub(8 + 8 * saved)? + 8 * i),
                    None => None,
                };
                Some(CompactRule::Frameless {
                    stack_size,
                    ra: ReturnAddress::BelowCallerSp,
                    fp_at,
                })
            } else {
                Some(CompactRule::FramelessIndirect {
                    sub_offset: size,
                    adjust: field(0x0000_e000) * 8,
                    saved,
                    fp_index,
                })
            }
        }
        MODE_DWARF => Some(CompactRule::Dwarf {
            fde_offset: encoding & 0x00ff_ffff,
        }),
        _ => None,
    }
}

/// The registers a frameless function saved, in push order reversed (lowest address first),
/// from their count (at most 6) and the permutation number that encodes their order.
fn saved_registers(count: u32, permutation: u32) -> Option<[u32; 6]> {
    // The permutation is a number in a mixed radix: each register's rank among those not
    // yet placed (6 choices, then 5, ...).
    let radices: &[u32] = match count {
        0 => &[],
        1 => &[1],
        2 => &[5, 1],
        3 => &[20, 4, 1],
        4 => &[60, 12, 3, 1],
        5 => &[120, 24, 6, 2, 1],
        6 => &[120, 24, 6, 2, 1, 1],
        _ => return None,
    };
    let mut rest = permutation;
    let mut regs = [0u32; 6];
    // Bit r: register r placed.
    let mut used = 0u32;
    for (slot, &radix) in regs.iter_mut().zip(radices) {
        let rank = rest / radix;
        rest -= rank * radix;
        // The rank-th register (1 rbx, 2 r12, 3 r13, 4 r14, 5 r15, 6 rbp) not yet used.
        let reg = (1..7u32)
            .filter(|&r| used & 1 << r == 0)
            .nth(rank as usize)?;
        used |= 1 << reg;
        *slot = reg;
    }
    Some(regs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutations_decode_as_libunwind_numbers_them() {
        // One register: its number minus one.
        assert_eq!(saved_registers(1, 5).unwrap()[0], REG_RBP);
        // Two: rbx then rbp is 0 * 5 + 4.
        assert_eq!(saved_registers(2, 4).unwrap()[..2], [1, 6]);
        // Six in order rbx..rbp: every rank 0.
        assert_eq!(saved_registers(6, 0).unwrap(), [1, 2, 3, 4, 5, 6]);
        // Six reversed: 5*120 + 4*24 + 3*6 + 2*2 + 1.
        assert_eq!(saved_registers(6, 719).unwrap(), [6, 5, 4, 3, 2, 1]);
        assert_eq!(saved_registers(7, 0), None);
        // Out-of-range ranks are refused, not wrapped.
        assert_eq!(saved_registers(1, 6), None);
    }

    #[test]
    fn modes_decode() {
        assert_eq!(decode(0), Some(CompactRule::None));
        assert_eq!(decode(0x0101_0001), Some(CompactRule::FramePointer));
        assert_eq!(
            decode(0x0400_1234),
            Some(CompactRule::Dwarf { fde_offset: 0x1234 })
        );
        // 16 bytes (8 * 2): the return address and one pushed rbp (permutation 5).
        assert_eq!(
            decode(0x0202_0405),
            Some(CompactRule::Frameless {
                stack_size: 16,
                ra: ReturnAddress::BelowCallerSp,
                fp_at: Some(0),
            })
        );
        assert_eq!(decode(0x0500_0000), None);
    }
}
