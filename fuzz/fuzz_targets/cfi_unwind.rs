//! The CFI parser and the hybrid unwinder over arbitrary `.eh_frame_hdr`, `.eh_frame` and
//! stack bytes: bounded output, no panic; and the rules compiled ahead from the same sections
//! walk exactly as interpreting them does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vignette::unwind::cfi::{ModuleSections, Section};
use vignette::unwind::compiled::{compile, interpreted, Compiled, Compiler, INTERPRET};
use vignette::unwind::{walk, CodeLookup, Regs, RuleCache, SliceStack};

struct OneModule<'a>(ModuleSections<'a>);

impl CodeLookup for OneModule<'_> {
    fn sections(&self, avma: u64) -> Option<ModuleSections<'_>> {
        (0x1000..0x10_0000).contains(&avma).then_some(self.0)
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 24 {
        return;
    }
    let word = |i: usize| u64::from_le_bytes(data[i..i + 8].try_into().unwrap());
    let (head, rest) = data.split_at(24);
    let hdr_len = (head[0] as usize * 4).min(rest.len());
    let eh_len = (head[1] as usize * 16).min(rest.len() - hdr_len);
    let (hdr, rest) = rest.split_at(hdr_len);
    let (eh, stack) = rest.split_at(eh_len);
    let sections = ModuleSections {
        eh_frame_hdr: (head[2] & 1 == 1).then_some(Section {
            data: hdr,
            avma: 0x1_0000,
        }),
        eh_frame: Some(Section {
            data: eh,
            avma: 0x2_0000,
        }),
        compiled: None,
    };
    let base = 0x7000_0000u64;
    let mut regs = Regs::new(
        0x1000 + word(8) % 0x2_0000,
        base + (head[3] as u64) * 8,
        base + word(16) % 0x1000,
    );
    regs.set(3, word(8).rotate_left(17));
    let cache = RuleCache::new(6).unwrap();
    let mut frames = [0u64; 32];
    for cache in [None, Some(&cache), Some(&cache)] {
        let mut reader = SliceStack { base, bytes: stack };
        let (n, _) = walk(&regs, &mut reader, &OneModule(sections), cache, &mut frames);
        assert!((1..=32).contains(&n));
        assert_eq!(frames[0], regs.ip());
    }
    // Compiled ahead, the rule at every address the walk looked up, and at addresses from the
    // input, is the one interpreting the FDE gives, or "interpret".
    let mut entries = Vec::new();
    let whole = compile(&sections, 0x1000, &mut |e| entries.push(e));
    // A slice of FDEs at a time, as the sampler thread compiles, gives the same entries.
    let (mut sliced, mut compiler) = (Vec::new(), Compiler::new(0x1000));
    let slice = 1 + head[4] as usize % 3;
    let ok = loop {
        if let Some(ok) = compiler.step(&sections, slice, &mut |e| sliced.push(e)) {
            break ok;
        }
    };
    assert_eq!(ok, whole);
    if whole {
        assert_eq!(sliced, entries);
        assert!(
            entries.windows(2).all(|w| w[0] >> 32 < w[1] >> 32),
            "sorted, no repeats"
        );
        let compiled = Compiled {
            base: 0x1000,
            entries: &entries,
        };
        let probes = (0..8).map(|i| 0x1000 + word(8).rotate_left(i * 8) % 0x2_0000);
        for pc in frames.iter().copied().chain(probes) {
            let Some(got) = compiled.lookup(pc) else {
                continue;
            };
            let want = interpreted(&sections, pc);
            // "Interpret" is always allowed (the walker then does what the interpreter does,
            // e.g. for an FDE the table misplaces); any other answer must be the interpreter's.
            assert!(
                got == INTERPRET || got == want,
                "at {pc:#x}: {got:#x}, interpreting gives {want:#x}"
            );
        }
    }
});
