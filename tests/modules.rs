//! Module identifiers match what Breakpad's dump_syms writes for the same file.
//!
//! x86_64 only: the fixture is an x86_64 library (its expected debug ID is what dump_syms
//! printed for it); tests/tools.rs checks an aarch64 binary's identity on the host.
#![cfg(target_arch = "x86_64")]

use vignette::code_map::CodeMap;
use vignette::modules::ModuleMap;

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[test]
fn debug_id_without_a_build_id_matches_dump_syms() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/libnobuild.so");
    let cpath = std::ffi::CString::new(path).unwrap();
    // SAFETY: loads a tiny fixture library with no constructors.
    let lib = unsafe { libc::dlopen(cpath.as_ptr(), libc::RTLD_NOW) };
    assert!(!lib.is_null(), "the fixture loads");
    let mut map = ModuleMap::new(256, 64 * 1024).unwrap();
    CodeMap::new(256).unwrap().refresh(&mut map, true);
    let m = map
        .iter()
        .find(|m| m.name == "libnobuild.so")
        .expect("listed");
    assert!(m.build_id.is_empty());
    assert_eq!(m.path, path);
    // tests/fixtures/README.md: dump_syms 2.3.9 writes this MODULE line for the fixture.
    assert_eq!(
        format!("{}0", hex_upper(&m.debug_id)),
        "A2A1D9C262E26D442CC6E08ABC5F9EBC0"
    );
    // SAFETY: lib came from dlopen and is closed once.
    unsafe { libc::dlclose(lib) };
}
