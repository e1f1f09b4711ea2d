//! Identity and unwind tables of a PE image (a Windows executable or DLL) as the loader maps
//! it: the Breakpad debug ID (the CodeView `RSDS` record's PDB GUID and age) and code ID
//! (`TimeDateStamp` and `SizeOfImage`), exactly as Breakpad's `dump_syms` writes them, and
//! where the exception directory (`.pdata`) is. Every field is read through an
//! [`ImageReader`] and bounds-checked; nothing is trusted.

use crate::unwind::ImageReader;

/// Longest PDB file name kept (`MAX_PATH`).
pub const MAX_PDB_NAME: usize = 260;

/// What a PE image says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeIdentity {
    /// COFF machine type (`0x8664` for x64, `0xaa64` for arm64).
    pub machine: u16,
    /// The link time stamp (first half of the code ID).
    pub timestamp: u32,
    /// Bytes the image occupies when loaded (second half of the code ID).
    pub size_of_image: u32,
    /// The exception directory (`.pdata`): RVA and size in bytes (0, 0 if none).
    pub exception: (u32, u32),
    /// The CodeView record naming the PDB, if the image has one.
    pub codeview: Option<CodeView>,
}

impl PeIdentity {
    /// The code ID as dump_syms writes it and Microsoft's symbol servers index executables:
    /// the time stamp as 8 hex digits, then the image size, uppercase (`6B0A9558E000`).
    pub fn code_id(&self) -> heapless::String<16> {
        use core::fmt::Write;
        let mut s = heapless::String::new();
        // 8 + at most 8 digits: always fits.
        let _ = write!(s, "{:08X}{:X}", self.timestamp, self.size_of_image);
        s
    }
}

/// A CodeView `RSDS` record: the PDB's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeView {
    /// The PDB GUID in the order Breakpad prints it (its first three fields big-endian).
    pub guid: [u8; 16],
    /// The PDB age.
    pub age: u32,
    /// The PDB path as the linker wrote it (up to [`MAX_PDB_NAME`] bytes).
    pub pdb_path: [u8; MAX_PDB_NAME],
    /// Bytes of `pdb_path` in use.
    pub pdb_path_len: usize,
}

impl CodeView {
    /// The PDB's file name: the path's last component (after `\` or `/`).
    pub fn pdb_file_name(&self) -> &[u8] {
        let path = self.pdb_path.get(..self.pdb_path_len).unwrap_or(&[]);
        match path.iter().rposition(|&b| b == b'\\' || b == b'/') {
            Some(i) => path.get(i + 1..).unwrap_or(&[]),
            None => path,
        }
    }
}

/// Most debug directory entries looked at.
const MAX_DEBUG_ENTRIES: u32 = 32;

/// `IMAGE_DEBUG_TYPE_CODEVIEW`.
const DEBUG_TYPE_CODEVIEW: u32 = 2;

/// Reads the identity of the PE image loaded at `base`; `None` if it is not a PE image (or its
/// headers are unreadable).
pub fn identity<I: ImageReader + ?Sized>(image: &I, base: u64) -> Option<PeIdentity> {
    let u16_at = |off: u64| {
        let mut b = [0u8; 2];
        image
            .read(base.checked_add(off)?, &mut b)
            .then(|| u16::from_le_bytes(b))
    };
    let u32_at = |off: u64| {
        let mut b = [0u8; 4];
        image
            .read(base.checked_add(off)?, &mut b)
            .then(|| u32::from_le_bytes(b))
    };
    if u16_at(0)? != 0x5a4d {
        return None; // "MZ"
    }
    let pe = u32_at(0x3c)? as u64;
    if pe > 0x1000 || u32_at(pe)? != 0x4550 {
        return None; // "PE\0\0"
    }
    let machine = u16_at(pe + 4)?;
    let timestamp = u32_at(pe + 8)?;
    let opt = pe + 24;
    let (dirs, dir_count) = match u16_at(opt)? {
        0x20b => (opt + 112, u32_at(opt + 108)?),
        0x10b => (opt + 96, u32_at(opt + 92)?),
        _ => return None,
    };
    let size_of_image = u32_at(opt + 56)?;
    let dir = |i: u32| -> Option<(u32, u32)> {
        if i >= dir_count {
            return Some((0, 0));
        }
        let at = dirs + i as u64 * 8;
        let (rva, size) = (u32_at(at)?, u32_at(at + 4)?);
        // A directory must lie inside the image.
        let inside = rva as u64 + size as u64 <= size_of_image as u64;
        Some(if inside { (rva, size) } else { (0, 0) })
    };
    let exception = dir(3)?;
    let (debug_rva, debug_size) = dir(6)?;
    let entries = (debug_size / 28).min(MAX_DEBUG_ENTRIES);
    let codeview = (0..entries).find_map(|i| {
        let at = debug_rva as u64 + i as u64 * 28;
        if u32_at(at + 12)? != DEBUG_TYPE_CODEVIEW {
            return None;
        }
        let (size, rva) = (u32_at(at + 16)?, u32_at(at + 20)?);
        if rva as u64 + size as u64 > size_of_image as u64 {
            return None;
        }
        codeview(image, base.wrapping_add(rva as u64), size)
    });
    Some(PeIdentity {
        machine,
        timestamp,
        size_of_image,
        exception,
        codeview,
    })
}

/// Parses an `RSDS` record of `size` bytes at `avma`.
fn codeview<I: ImageReader + ?Sized>(image: &I, avma: u64, size: u32) -> Option<CodeView> {
    let mut head = [0u8; 24];
    if size < 24 || !image.read(avma, &mut head) || head.get(..4)? != b"RSDS" {
        return None;
    }
    let g = head.get(4..20)?;
    let mut guid = [0u8; 16];
    // GUID fields: u32, u16, u16 little-endian, then 8 bytes as they are.
    for (dst, src) in [
        (0usize, 3usize),
        (1, 2),
        (2, 1),
        (3, 0),
        (4, 5),
        (5, 4),
        (6, 7),
        (7, 6),
    ] {
        *guid.get_mut(dst)? = *g.get(src)?;
    }
    guid.get_mut(8..)?.copy_from_slice(g.get(8..)?);
    let age = u32::from_le_bytes(head.get(20..24)?.try_into().ok()?);
    let mut cv = CodeView {
        guid,
        age,
        pdb_path: [0; MAX_PDB_NAME],
        pdb_path_len: 0,
    };
    // The NUL-terminated path, read in small pieces up to the record's end.
    let max = (size as usize - 24).min(MAX_PDB_NAME);
    let mut chunk = [0u8; 16];
    while cv.pdb_path_len < max {
        let n = (max - cv.pdb_path_len).min(16);
        let at = avma.wrapping_add(24 + cv.pdb_path_len as u64);
        let piece = chunk.get_mut(..n)?;
        if !image.read(at, piece) {
            break;
        }
        for &b in piece.iter() {
            if b == 0 {
                return Some(cv);
            }
            *cv.pdb_path.get_mut(cv.pdb_path_len)? = b;
            cv.pdb_path_len += 1;
        }
    }
    Some(cv)
}
