//! The frame-pointer walker over arbitrary stack bytes and registers: bounded output, no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vignette::unwind::{fp, Regs, SliceStack};

fuzz_target!(|data: &[u8]| {
    if data.len() < 17 {
        return;
    }
    let base = 0x7fff_0000_0000u64;
    let word = |i: usize| u64::from_le_bytes(data[i..i + 8].try_into().unwrap());
    let regs = Regs::new(
        word(0),
        base + (word(8) % 4096),
        base.wrapping_add(word(8) >> 16),
    );
    let depth = 1 + data[16] as usize % 64;
    let stack = SliceStack {
        base,
        bytes: &data[17..],
    };
    let mut frames = [0u64; 64];
    let (n, _) = fp::walk(&regs, &stack, &mut frames[..depth]);
    assert!(n >= 1 && n <= depth);
    assert_eq!(frames[0], regs.ip());
});
