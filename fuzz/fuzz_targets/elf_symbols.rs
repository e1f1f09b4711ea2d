//! ELF input to `vignette symbols` and to `--symbols FILE`: any bytes become a `.sym` file that
//! reads back, or an error, never a panic (symbolic's readers panic on some malformed files;
//! `vignette::tools::guard` turns that into an error, which this target checks by running the
//! same entry point the tools use).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vignette::tools::sym_writer::sym_for_elf;
use vignette::tools::SymbolFile;

fuzz_target!(
    // libFuzzer's panic hook aborts at once; vignette's lets a guarded panic unwind to `guard`.
    init: vignette::tools::quiet_guarded_panics(),
    |data: &[u8]| {
    if let Ok(text) = sym_for_elf(data, "fuzz.so", "fuzz") {
        let _ = SymbolFile::parse(&String::from_utf8_lossy(&text), "fuzz");
    }
}
);
