//! Mach-O input to `vignette symbols`: a dylib and, split from the same bytes, its dSYM. Any
//! bytes become a `.sym` file that reads back, or an error, never a panic (symbolic's readers
//! may panic on malformed files; `vignette::tools::guard` turns that into an error).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vignette::tools::sym_writer::sym_for_macho;
use vignette::tools::SymbolFile;

fuzz_target!(
    init: vignette::tools::quiet_guarded_panics(),
    |data: &[u8]| {
    // The first two bytes say where the dylib ends and its dSYM (if any) begins.
    let (head, rest) = data.split_at(data.len().min(2));
    let cut = (u16::from_le_bytes([head.first().copied().unwrap_or(0), head.get(1).copied().unwrap_or(0)]) as usize * 16)
        .min(rest.len());
    let (dylib, dsym) = rest.split_at(cut);
    let dsym = (!dsym.is_empty()).then_some(dsym);
    for dsym in [None, dsym] {
        if let Ok((_, text)) = sym_for_macho(dylib, dsym, "fuzz.dylib", "fuzz") {
            let _ = SymbolFile::parse(&String::from_utf8_lossy(&text), "fuzz");
        }
    }
}
);
