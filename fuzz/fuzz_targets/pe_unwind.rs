//! The x64 `.pdata`/`UNWIND_INFO` unwinder over an arbitrary function table, image (unwind
//! info and code) and stack: bounded output, no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vignette::unwind::pe::{walk, FunctionTable, SliceImage, TableLookup};
use vignette::unwind::{Regs, SliceStack};

const BASE: u64 = 0x1_4000_0000;

struct OneModule<'a>(FunctionTable<'a>, u64);

impl TableLookup for OneModule<'_> {
    fn table(&self, avma: u64) -> Option<FunctionTable<'_>> {
        (BASE..BASE + self.1).contains(&avma).then_some(self.0)
    }
}

fuzz_target!(|data: &[u8]| {
    // 24 header bytes: table length / 12, image length / 64, interrupted ip (RVA), rsp offset,
    // rbp; then the table, the image, and the stack.
    if data.len() < 24 {
        return;
    }
    let word = |i: usize| u64::from_le_bytes(data[i..i + 8].try_into().unwrap());
    let (head, rest) = data.split_at(24);
    let pdata_len = (head[0] as usize * 12).min(rest.len());
    let (pdata, rest) = rest.split_at(pdata_len);
    let image_len = (head[1] as usize * 64).min(rest.len());
    let (image, stack) = rest.split_at(image_len);
    let table = FunctionTable { base: BASE, pdata };
    let stack_base = 0x7000_0000u64;
    let mut regs = Regs::new(
        BASE + word(8) % 0x4000,
        stack_base + (head[2] as u64) * 8,
        stack_base + word(16) % 0x1000,
    );
    regs.set(3, word(8).rotate_left(17));
    let mut frames = [0u64; 32];
    let mut reader = SliceStack {
        base: stack_base,
        bytes: stack,
    };
    let image = SliceImage {
        base: BASE,
        bytes: image,
    };
    // The identity reader over the same bytes as a loaded image: an answer or None.
    let _ = vignette::modules::pe::identity(&image, BASE);
    let (n, _) = walk(
        &regs,
        &mut reader,
        &OneModule(table, 0x4000),
        &image,
        &mut frames,
    );
    assert!((1..=32).contains(&n));
    assert_eq!(frames[0], regs.ip());
});
