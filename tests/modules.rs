//! Module identifiers match what Breakpad's dump_syms writes for the same file.
//!
//! x86_64 only: the fixture is an x86_64 library (its expected debug ID is what dump_syms
//! printed for it); tests/tools.rs checks an aarch64 binary's identity on the host.
#![cfg(target_arch = "x86_64")]

mod common;

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

/// A PE file laid out as the Windows loader maps it: headers, then each section's raw data at
/// its virtual address.
fn load_pe(file: &[u8]) -> Vec<u8> {
    let u16_at = |o: usize| u16::from_le_bytes(file[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(file[o..o + 4].try_into().unwrap()) as usize;
    let pe = u32_at(0x3c);
    let sections = u16_at(pe + 6);
    let opt = pe + 24;
    let size_of_image = u32_at(opt + 56);
    let size_of_headers = u32_at(opt + 60);
    let mut image = vec![0u8; size_of_image];
    image[..size_of_headers].copy_from_slice(&file[..size_of_headers]);
    let table = opt + u16_at(pe + 20);
    for i in 0..sections {
        let s = table + i * 40;
        let (vaddr, raw_size, raw_at) = (u32_at(s + 12), u32_at(s + 16), u32_at(s + 20));
        let n = raw_size.min(size_of_image - vaddr);
        image[vaddr..vaddr + n].copy_from_slice(&file[raw_at..raw_at + n]);
    }
    image
}

/// The MODULE line and code ID dump_syms writes, from vignette's reading of the loaded image.
fn pe_head(dll: &str) -> String {
    use vignette::modules::pe::identity;
    use vignette::unwind::SliceImage;
    let file = std::fs::read(common::fixture(dll)).unwrap();
    let image = load_pe(&file);
    let base = 0x1_8000_0000;
    let id = identity(
        &SliceImage {
            base,
            bytes: &image,
        },
        base,
    )
    .unwrap();
    assert_eq!(id.machine, 0x8664);
    // The exception directory lies in the image and holds whole RUNTIME_FUNCTION entries.
    let (rva, size) = id.exception;
    assert!(size > 0 && size % 12 == 0 && (rva + size) as usize <= image.len());
    let (debug_id, debug_file) = match &id.codeview {
        Some(cv) => (
            format!("{}{:X}", hex_upper(&cv.guid), cv.age),
            String::from_utf8(cv.pdb_file_name().to_vec()).unwrap(),
        ),
        None => ("0".repeat(33), dll.to_string()),
    };
    format!(
        "MODULE windows x86_64 {debug_id} {debug_file}\nINFO CODE_ID {} {dll}\n",
        id.code_id()
    )
}

#[test]
fn pe_identity_matches_dump_syms() {
    for dll in ["pe-identity.dll", "pe-no-codeview.dll"] {
        let want =
            std::fs::read_to_string(common::fixture(&dll.replace(".dll", ".dump_syms.head")))
                .unwrap();
        assert_eq!(pe_head(dll), want, "{dll}");
    }
}

#[test]
fn pe_identity_refuses_what_is_not_a_pe_image() {
    use vignette::modules::pe::identity;
    use vignette::unwind::SliceImage;
    let file = std::fs::read(common::fixture("pe-identity.dll")).unwrap();
    let image = load_pe(&file);
    let read = |bytes: &[u8]| {
        identity(
            &SliceImage {
                base: 0x1000,
                bytes,
            },
            0x1000,
        )
    };
    assert!(read(&image).is_some());
    // An ELF file, a truncated image, a bad PE signature, an unknown optional header.
    assert!(read(&std::fs::read(common::fixture("libnobuild.so")).unwrap()).is_none());
    assert!(read(&image[..0x80]).is_none());
    let pe = u32::from_le_bytes(image[0x3c..0x40].try_into().unwrap()) as usize;
    let mut bad = image.clone();
    bad[pe] = b'X';
    assert!(read(&bad).is_none());
    let mut bad = image.clone();
    bad[pe + 24] = 0x99;
    assert!(read(&bad).is_none());
    // A debug directory pointing outside the image: no CodeView record, but the rest reads.
    let mut bad = image.clone();
    let debug_dir = pe + 24 + 112 + 6 * 8;
    bad[debug_dir..debug_dir + 4].copy_from_slice(&0xffff_0000u32.to_le_bytes());
    let id = read(&bad).unwrap();
    assert!(id.codeview.is_none());
    // Every truncation of the image reads or refuses, never panics.
    for len in (0..image.len()).step_by(97) {
        let _ = read(&image[..len]);
    }
}
