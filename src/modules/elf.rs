//! Reading loaded objects and their files for what identifies them as Breakpad does: the GNU
//! build ID from the notes, the debug ID (the build ID as a GUID, or a hash of `.text` without
//! one), the `PT_LOAD` extent and base, and a section of the file on disk.

use super::{gnu_build_id, MAX_BUILD_ID};
use crate::sys::dl::LoadedObject;
use crate::sys::fs::{self, Fd, PathBuf};

/// The object's GNU build ID (at most [`MAX_BUILD_ID`] bytes), empty if it has none.
pub(super) fn build_id_of<'a>(o: &'a LoadedObject<'_>) -> &'a [u8] {
    o.phdrs
        .iter()
        .filter(|ph| ph.p_type == libc::PT_NOTE)
        .find_map(|ph| gnu_build_id(o.segment(ph)))
        .map_or(&[], |id| &id[..id.len().min(MAX_BUILD_ID)])
}

/// (start, end, Breakpad base) of an object's `PT_LOAD` segments, in this process.
pub(crate) fn extent(o: &LoadedObject<'_>) -> Option<(u64, u64, u64)> {
    let loads = o.phdrs.iter().filter(|p| p.p_type == libc::PT_LOAD);
    let lo = loads.clone().map(|p| p.p_vaddr).min()?;
    let hi = loads.map(|p| p.p_vaddr.saturating_add(p.p_memsz)).max()?;
    let base = o.bias.wrapping_add(lo);
    // Round the start down to the page, as mapped.
    Some((base & !0xfff, o.bias.wrapping_add(hi), base))
}

/// A section of an ELF file on disk, found through its section headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSection {
    /// Its address in the file's address space (`sh_addr`).
    pub addr: u64,
    /// Its offset in the file.
    pub offset: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// Finds section `name` (e.g. `b".text"`) in the 64-bit ELF file at `path`. Reads the file
/// with raw system calls into stack buffers; never allocates.
pub fn file_section(path: &[u8], name: &[u8]) -> Option<FileSection> {
    let fd = open_path(path)?;
    let mut eh = [0u8; 64];
    if fd.read_at(&mut eh, 0)? != 64 || &eh[..4] != b"\x7fELF" || eh[4] != 2 {
        return None;
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as u64;
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
    let (shoff, shentsize, shnum, shstrndx) = (
        u64_at(&eh, 0x28),
        u16_at(&eh, 0x3a),
        u16_at(&eh, 0x3c),
        u16_at(&eh, 0x3e),
    );
    if shentsize != 64 || shnum == 0 || shstrndx >= shnum || name.len() >= 32 {
        return None;
    }
    let read_shdr = |i: u64| {
        let mut sh = [0u8; 64];
        (fd.read_at(&mut sh, shoff + i * 64)? == 64).then_some(sh)
    };
    let strtab = read_shdr(shstrndx)?;
    let (str_off, str_size) = (u64_at(&strtab, 0x18), u64_at(&strtab, 0x20));
    for i in 0..shnum {
        let sh = read_shdr(i)?;
        let name_off = u32::from_le_bytes([sh[0], sh[1], sh[2], sh[3]]) as u64;
        if name_off >= str_size {
            continue;
        }
        let mut found = [0u8; 32];
        let want = &mut found[..name.len() + 1];
        fd.read_at(want, str_off + name_off)?;
        if &want[..name.len()] == name && want[name.len()] == 0 {
            return Some(FileSection {
                addr: u64_at(&sh, 0x10),
                offset: u64_at(&sh, 0x18),
                size: u64_at(&sh, 0x20),
            });
        }
    }
    None
}

fn open_path(path: &[u8]) -> Option<Fd> {
    let mut p = PathBuf::<1100>::new();
    p.push(path);
    Fd::open(p.as_cstr()?, 0)
}

/// Breakpad's fallback identifier, read from the ELF file on disk: the first 4096 bytes of
/// `.text` XORed in 16-byte blocks (only the section's own bytes, as Mozilla's dump_syms does;
/// C++ Breakpad may read past the end of a shorter section).
pub(super) fn text_hash(path: &[u8]) -> Option<[u8; 16]> {
    let text = file_section(path, b".text")?;
    let mut page = [0u8; 4096];
    let want = text.size.min(4096) as usize;
    let got = open_path(path)?.read_at(&mut page[..want], text.offset)?;
    let mut id = [0u8; 16];
    for block in page[..got].chunks(16) {
        for (a, b) in id.iter_mut().zip(block) {
            *a ^= b;
        }
    }
    Some(id)
}

/// The path of a loaded object: the loader's name, or `/proc/self/exe`'s target for the main
/// executable (whose loader name is empty). `buf` holds the latter.
pub fn object_path<'a>(o: &'a LoadedObject<'_>, buf: &'a mut [u8]) -> &'a [u8] {
    if o.name.is_empty() {
        let n = fs::readlink(c"/proc/self/exe", buf).unwrap_or(0);
        &buf[..n]
    } else {
        o.name
    }
}
