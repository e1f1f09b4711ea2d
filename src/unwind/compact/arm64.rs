//! arm64 compact unwind encodings (`UNWIND_ARM64_*`).

use super::{CompactRule, ReturnAddress};

/// `UNWIND_ARM64_MODE_MASK` and its modes.
const MODE_MASK: u32 = 0x0f00_0000;
const MODE_FRAMELESS: u32 = 0x0200_0000;
const MODE_DWARF: u32 = 0x0300_0000;
const MODE_FRAME: u32 = 0x0400_0000;

/// Decodes `encoding`; `None` for a mode this version does not know. Return addresses read
/// by the rule may carry pointer-authentication bits: strip them before use.
///
/// # Signal safety
/// Async-signal-safe: arithmetic.
pub fn decode(encoding: u32) -> Option<CompactRule> {
    match encoding & MODE_MASK {
        0 => Some(CompactRule::None),
        // x29/x30 as a pair at x29; the other saved pairs (x19-x28, d8-d15) are below it.
        MODE_FRAME => Some(CompactRule::FramePointer),
        // A leaf: the return address is still in x30, the frame `16 * size` bytes.
        MODE_FRAMELESS => Some(CompactRule::Frameless {
            stack_size: ((encoding >> 12) & 0xfff) * 16,
            ra: ReturnAddress::InLinkRegister,
            fp_at: None,
        }),
        MODE_DWARF => Some(CompactRule::Dwarf {
            fde_offset: encoding & 0x00ff_ffff,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_decode() {
        assert_eq!(decode(0), Some(CompactRule::None));
        assert_eq!(decode(0x0400_0000), Some(CompactRule::FramePointer));
        assert_eq!(decode(0x0400_0003), Some(CompactRule::FramePointer));
        assert_eq!(
            decode(0x0200_3000),
            Some(CompactRule::Frameless {
                stack_size: 48,
                ra: ReturnAddress::InLinkRegister,
                fp_at: None,
            })
        );
        assert_eq!(
            decode(0x0300_0040),
            Some(CompactRule::Dwarf { fde_offset: 0x40 })
        );
        assert_eq!(decode(0x0100_0000), None);
    }
}
