//! The Mach-O side: the image identity reader over arbitrary bytes as an image, and the
//! compact unwind parser over an arbitrary `__unwind_info` section, every encoding it finds
//! decoded for both architectures and applied over a stack; both architectures' prologue and
//! epilogue analyses over the bytes as code; the walker over all of it as an image: answers
//! or errors, never a panic, and a found entry always covers the address looked up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vignette::modules::macho;
use vignette::unwind::cfi::Section;
use vignette::unwind::compact::{arm64, x86_64, CompactRegs, UnwindInfo};
use vignette::unwind::macho::{edge, walk, ImageLookup, MachOSections};
use vignette::unwind::{ImageReader, Regs, SliceImage, SliceStack};

/// One image: the fuzzed section as its unwind info and the rest as its `__eh_frame` and code.
struct Image<'a> {
    section: &'a [u8],
    rest: &'a [u8],
}

impl ImageLookup for Image<'_> {
    fn sections(&self, avma: u64) -> Option<MachOSections<'_>> {
        (0x1000..0x1000 + self.rest.len() as u64)
            .contains(&avma)
            .then_some(MachOSections {
                load_address: 0x1000,
                unwind_info: Some(self.section),
                eh_frame: Some(Section {
                    data: self.rest,
                    avma: 0x1000,
                }),
            })
    }
}

fuzz_target!(|data: &[u8]| {
    // 8 header bytes: the section length / 4, then an address to look up (the last four are
    // also an x86_64 encoding for the edge analysis); the section; the
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
    let pc = 0x1000 + u16::from_le_bytes([head[2], head[3]]) as u64;
    if let Some(body) = x86_64::decode(u32::from_le_bytes([head[4], head[5], head[6], head[7]])) {
        let _ = body
            .resolved(&image, 0x1000)
            .map(|body| edge::x86_64(pc, body, |at, buf| image.read(at, buf)));
    }
    let _ = edge::arm64(pc, |at| {
        let mut b = [0u8; 4];
        image.read(at, &mut b).then(|| u32::from_le_bytes(b))
    });
    let mut stack = SliceStack {
        base: 0x7000_0000,
        bytes: rest,
    };
    let regs = Regs::new(
        pc,
        0x7000_0000 + head[6] as u64 * 8,
        0x7000_0000 + head[7] as u64 * 8,
    );
    let mut frames = [0u64; 64];
    let (n, _) = walk(
        &regs,
        &mut stack,
        &Image { section, rest },
        &image,
        &mut frames,
    );
    assert!((1..=frames.len()).contains(&n));
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
