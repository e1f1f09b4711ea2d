//! The Mach-O side: the image identity reader over arbitrary bytes as an image, and the
//! compact unwind parser over an arbitrary `__unwind_info` section, every encoding it finds
//! decoded for both architectures and applied over a stack: answers or errors, never a
//! panic, and a found entry always covers the address looked up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vignette::modules::macho;
use vignette::unwind::compact::{arm64, x86_64, CompactRegs, UnwindInfo};
use vignette::unwind::{SliceImage, SliceStack};

fuzz_target!(|data: &[u8]| {
    // 8 header bytes: the section length / 4, then an address to look up; the section; the
    // rest is the image (for identity and indirect stack sizes) and the stack.
    if data.len() < 8 {
        return;
    }
    let (head, rest) = data.split_at(8);
    let len = (u16::from_le_bytes([head[0], head[1]]) as usize * 4).min(rest.len());
    let (section, rest) = rest.split_at(len);
    let image = SliceImage {
        base: 0x1000,
        bytes: rest,
    };
    let _ = macho::identity(&image, 0x1000).map(|id| (id.debug_id(), id.code_id()));
    let Ok(info) = UnwindInfo::parse(section) else {
        return;
    };
    let target = u32::from_le_bytes([head[2], head[3], head[4], head[5]]);
    for at in [target, target & 0xffff, 0, u32::MAX] {
        let Ok(Some(entry)) = info.lookup(at) else {
            continue;
        };
        assert!(
            entry.function <= at && at < entry.end,
            "{entry:?} covers {at:#x}"
        );
        let stack = SliceStack {
            base: 0x7000_0000,
            bytes: rest,
        };
        for rule in [
            x86_64::decode(entry.encoding),
            arm64::decode(entry.encoding),
        ]
        .into_iter()
        .flatten()
        {
            let mut regs = CompactRegs {
                ip: 0x1000 + at as u64,
                sp: 0x7000_0000 + head[6] as u64 * 8,
                fp: 0x7000_0000 + head[7] as u64 * 8,
                lr: 0x1234,
            };
            let _ = rule.apply(
                &mut regs,
                &stack,
                &image,
                0x1000 + entry.function as u64,
                head[6] & 1 == 0,
            );
        }
    }
});
