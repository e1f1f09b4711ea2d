//! PE and PDB input to `vignette symbols`: any bytes become a `.sym` file that reads back, or
//! an error, never a panic (symbolic's PE and PDB readers run under `vignette::tools::guard`,
//! as in the tools).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vignette::tools::sym_writer::{sym_for_pdb, sym_for_pe};
use vignette::tools::SymbolFile;

fuzz_target!(
    init: vignette::tools::quiet_guarded_panics(),
    |data: &[u8]| {
    let check = |text: &[u8]| {
        let _ = SymbolFile::parse(&String::from_utf8_lossy(text), "fuzz");
    };
    if let Ok((_, text)) = sym_for_pe(data, "fuzz.dll", "fuzz") {
        check(&text);
    }
    if let Ok((_, text)) = sym_for_pdb(data, "fuzz.pdb", None, "fuzz") {
        check(&text);
    }
}
);
