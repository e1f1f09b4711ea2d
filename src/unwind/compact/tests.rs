//! The parser over sections built here (regular and compressed pages, malformed headers), and
//! rules applied over synthetic stacks. Real sections from clang and lld: `tests/macho.rs`.

use super::*;
use crate::unwind::{SliceImage, SliceStack};

/// A section with `common` encodings, one first-level entry per page, and the sentinel at
/// `end`.
/// A second-level page to build: its first function, kind, entries (function offset and
/// encoding, or encoding index when compressed) and page-local encodings.
type Page<'a> = (u32, u32, &'a [(u32, u32)], &'a [u32]);

fn section(common: &[u32], pages: &[Page<'_>], end: u32) -> Vec<u8> {
    let mut b = Vec::new();
    let push = |b: &mut Vec<u8>, v: u32| b.extend_from_slice(&v.to_le_bytes());
    let common_at = 28u32;
    let index_at = common_at + 4 * common.len() as u32;
    let pages_at = index_at + 12 * (pages.len() as u32 + 1);
    for v in [
        1,
        common_at,
        common.len() as u32,
        index_at,
        0,
        index_at,
        pages.len() as u32 + 1,
    ] {
        push(&mut b, v);
    }
    for &c in common {
        push(&mut b, c);
    }
    // Pages are laid out after the index; compute their offsets first.
    let mut page_bytes = Vec::new();
    let mut offsets = Vec::new();
    for &(first, kind, entries, local) in pages {
        offsets.push(pages_at + page_bytes.len() as u32);
        let mut p = Vec::new();
        push(&mut p, kind);
        if kind == REGULAR_PAGE {
            p.extend_from_slice(&8u16.to_le_bytes());
            p.extend_from_slice(&(entries.len() as u16).to_le_bytes());
            for &(f, e) in entries {
                push(&mut p, f);
                push(&mut p, e);
            }
        } else {
            let entries_at = 12u16;
            let encodings_at = entries_at + 4 * entries.len() as u16;
            for v in [
                entries_at,
                entries.len() as u16,
                encodings_at,
                local.len() as u16,
            ] {
                p.extend_from_slice(&v.to_le_bytes());
            }
            for &(f, index) in entries {
                push(&mut p, index << 24 | (f - first));
            }
            for &l in local {
                push(&mut p, l);
            }
        }
        page_bytes.extend_from_slice(&p);
    }
    for (&(first, ..), &at) in pages.iter().zip(&offsets) {
        for v in [first, at, 0] {
            push(&mut b, v);
        }
    }
    for v in [end, 0, 0] {
        push(&mut b, v);
    }
    b.extend_from_slice(&page_bytes);
    b
}

#[test]
fn regular_and_compressed_pages_are_looked_up() {
    let common = [0x0101_0000, 0x0202_0405];
    let regular: &[(u32, u32)] = &[(0x1000, 0x0400_0010), (0x1040, 0x0101_0000)];
    // Compressed: (function, index): 0 and 1 common, 2 the page's own.
    let compressed: &[(u32, u32)] = &[(0x2000, 1), (0x2010, 2), (0x2100, 0)];
    let b = section(
        &common,
        &[
            (0x1000, REGULAR_PAGE, regular, &[]),
            (0x2000, COMPRESSED_PAGE, compressed, &[0x0200_0000]),
        ],
        0x3000,
    );
    let info = UnwindInfo::parse(&b).unwrap();
    let at = |o| info.lookup(o).unwrap();
    assert_eq!(at(0xfff), None, "before the first function");
    assert_eq!(
        at(0x1000),
        Some(Entry {
            function: 0x1000,
            end: 0x1040,
            encoding: 0x0400_0010
        })
    );
    assert_eq!(
        at(0x1fff),
        Some(Entry {
            function: 0x1040,
            end: 0x2000,
            encoding: 0x0101_0000
        })
    );
    assert_eq!(
        at(0x2000),
        Some(Entry {
            function: 0x2000,
            end: 0x2010,
            encoding: 0x0202_0405
        })
    );
    assert_eq!(
        at(0x20ff),
        Some(Entry {
            function: 0x2010,
            end: 0x2100,
            encoding: 0x0200_0000
        })
    );
    assert_eq!(
        at(0x2fff),
        Some(Entry {
            function: 0x2100,
            end: 0x3000,
            encoding: 0x0101_0000
        })
    );
    assert_eq!(at(0x3000), None, "past the sentinel");
    assert_eq!(at(u32::MAX), None);
}

#[test]
fn malformed_sections_are_errors_not_panics() {
    let common = [0x0101_0000];
    let compressed: &[(u32, u32)] = &[(0x2000, 0), (0x2010, 5)];
    let good = section(
        &common,
        &[(0x2000, COMPRESSED_PAGE, compressed, &[])],
        0x3000,
    );
    let info = UnwindInfo::parse(&good).unwrap();
    assert!(info.lookup(0x2000).unwrap().is_some());
    // An encoding index beyond both arrays.
    assert_eq!(info.lookup(0x2010), Err(Malformed));
    // Wrong version, arrays past the end, truncation anywhere, an unknown page kind.
    let mut bad = good.clone();
    bad[0] = 2;
    assert!(UnwindInfo::parse(&bad).is_err());
    let mut bad = good.clone();
    bad[8] = 0xff;
    assert!(UnwindInfo::parse(&bad).is_err());
    for len in 0..good.len() {
        if let Ok(info) = UnwindInfo::parse(&good[..len]) {
            for o in [0, 0x2000, 0x2008, 0x2010, 0x2fff] {
                let _ = info.lookup(o);
            }
        }
    }
    let page_at = u32::from_le_bytes(good[28 + 4 + 4..28 + 8 + 4].try_into().unwrap()) as usize;
    let mut bad = good.clone();
    bad[page_at] = 7;
    assert_eq!(
        UnwindInfo::parse(&bad).unwrap().lookup(0x2000),
        Err(Malformed)
    );
    // Every byte changed in turn: answers or errors, never a panic.
    for i in 0..good.len() {
        let mut b = good.clone();
        b[i] ^= 0xa5;
        if let Ok(info) = UnwindInfo::parse(&b) {
            for o in [0, 0x1fff, 0x2000, 0x2010, 0x2fff, 0x3000] {
                let _ = info.lookup(o);
            }
        }
    }
}

/// The bytes of a stack holding `words`.
fn stack(words: &[u64]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

const NO_IMAGE: SliceImage<'static> = SliceImage {
    base: 0,
    bytes: &[],
};

#[test]
fn frame_pointer_rules_follow_the_chain() {
    let base = 0x7000_0000;
    // At fp (base + 16): the caller's fp, then the return address.
    let bytes = stack(&[0, 0, base + 0x100, 0x4000_1234]);
    let s = SliceStack {
        base,
        bytes: &bytes,
    };
    let mut regs = CompactRegs {
        ip: 0x4000_0010,
        sp: base,
        fp: base + 16,
        lr: 0,
    };
    let step = CompactRule::FramePointer.apply(&mut regs, &s, &NO_IMAGE, 0, true);
    assert_eq!(
        step,
        Ok(Step::Caller {
            signal_frame: false
        })
    );
    assert_eq!(
        regs,
        CompactRegs {
            ip: 0x4000_1234,
            sp: base + 32,
            fp: base + 0x100,
            lr: 0
        }
    );
    // A frame pointer off the stack ends the walk with an error, not a fault.
    let mut regs = CompactRegs {
        ip: 1,
        sp: base,
        fp: 0x10,
        lr: 0,
    };
    assert_eq!(
        CompactRule::FramePointer.apply(&mut regs, &s, &NO_IMAGE, 0, true),
        Err(EndReason::OutOfBounds)
    );
}

#[test]
fn frameless_x86_64_rules_find_the_return_address_and_saved_rbp() {
    let base = 0x7000_0000;
    // sub rsp, 8 after push rbx, push rbp: [local][rbp][rbx][ret]; 32 bytes in all.
    let bytes = stack(&[0xdead, 0x5555, 0x6666, 0x4000_4321]);
    let s = SliceStack {
        base,
        bytes: &bytes,
    };
    // Two registers saved, rbx then rbp pushed: lowest address first rbp (6), rbx (1):
    // ranks 5, then 0: 5 * 5 + 0.
    let rule = x86_64::decode(0x0200_0000 | 4 << 16 | 2 << 10 | 25).unwrap();
    assert_eq!(
        rule,
        CompactRule::Frameless {
            stack_size: 32,
            ra: ReturnAddress::BelowCallerSp,
            fp_at: Some(8)
        }
    );
    let mut regs = CompactRegs {
        ip: 0x4000_0100,
        sp: base,
        fp: 7,
        lr: 0,
    };
    rule.apply(&mut regs, &s, &NO_IMAGE, 0, false).unwrap();
    assert_eq!(
        regs,
        CompactRegs {
            ip: 0x4000_4321,
            sp: base + 32,
            fp: 0x5555,
            lr: 0
        }
    );
    // The same frame with its size in the code: `sub rsp, imm32` whose immediate is 3 bytes
    // into the function, 16 bytes, plus the 16 the two pushes took.
    let code: Vec<u8> = [0x48, 0x81, 0xec, 16, 0, 0, 0].to_vec();
    let image = SliceImage {
        base: 0x4000_0000,
        bytes: &code,
    };
    let rule = x86_64::decode(0x0300_0000 | 3 << 16 | 2 << 13 | 2 << 10 | 25).unwrap();
    let mut regs = CompactRegs {
        ip: 0x4000_0100,
        sp: base,
        fp: 7,
        lr: 0,
    };
    rule.apply(&mut regs, &s, &image, 0x4000_0000, false)
        .unwrap();
    assert_eq!(
        regs,
        CompactRegs {
            ip: 0x4000_4321,
            sp: base + 32,
            fp: 0x5555,
            lr: 0
        }
    );
    // Code that is not there: an error.
    let mut regs = CompactRegs {
        ip: 0x4000_0100,
        sp: base,
        fp: 7,
        lr: 0,
    };
    assert_eq!(
        rule.apply(&mut regs, &s, &image, 0x5000_0000, false),
        Err(EndReason::BadUnwindInfo)
    );
}

#[test]
fn frameless_arm64_leaves_return_through_the_link_register_only_when_interrupted() {
    let base = 0x7000_0000;
    let bytes = stack(&[0; 4]);
    let s = SliceStack {
        base,
        bytes: &bytes,
    };
    let rule = arm64::decode(0x0200_2000).unwrap();
    let mut regs = CompactRegs {
        ip: 0x4000_0100,
        sp: base,
        fp: 9,
        lr: 0x4000_0555,
    };
    rule.apply(&mut regs, &s, &NO_IMAGE, 0, true).unwrap();
    assert_eq!(
        regs,
        CompactRegs {
            ip: 0x4000_0555,
            sp: base + 32,
            fp: 9,
            lr: 0x4000_0555
        }
    );
    // A frame that called out has lost its link register.
    let mut regs = CompactRegs {
        ip: 0x4000_0100,
        sp: base,
        fp: 9,
        lr: 0x4000_0555,
    };
    assert_eq!(
        rule.apply(&mut regs, &s, &NO_IMAGE, 0, false),
        Err(EndReason::BadUnwindInfo)
    );
    // DWARF and none are left to the caller.
    for rule in [CompactRule::Dwarf { fde_offset: 0 }, CompactRule::None] {
        assert_eq!(
            rule.apply(&mut regs, &s, &NO_IMAGE, 0, true),
            Err(EndReason::NoUnwindInfo)
        );
    }
}
