//! Breakpad `.sym` parsing and lookups over arbitrary text: an error or a symbol table, never a
//! panic, and lookups return bounded inline chains.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vignette::tools::SymbolFile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(sym) = SymbolFile::parse(text, "fuzz") {
        for addr in [0u64, 1, 0x1000, 0x1010, 0x101a, 0x2004, 0x3004, u64::MAX] {
            let frames = sym.lookup(addr);
            assert!(frames.len() <= text.lines().count() + 1);
        }
    }
});
