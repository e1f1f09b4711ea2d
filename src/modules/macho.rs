//! Identity and unwind sections of a 64-bit Mach-O image (a macOS executable or dylib) as
//! dyld maps it: the `LC_UUID` that Breakpad's `dump_syms` turns into the debug ID (the UUID's
//! bytes in order, age 0) and the code ID, the `__TEXT` segment, and where `__unwind_info`
//! and `__eh_frame` are. Every field is read through an [`ImageReader`] and bounds-checked;
//! nothing is trusted.

use crate::unwind::ImageReader;

/// `MH_MAGIC_64`.
const MAGIC_64: u32 = 0xfeed_facf;
/// `LC_SEGMENT_64`.
const LC_SEGMENT_64: u32 = 0x19;
/// `LC_UUID`.
const LC_UUID: u32 = 0x1b;
/// Most load commands looked at.
const MAX_COMMANDS: u32 = 4096;
/// Most sections of a segment looked at.
const MAX_SECTIONS: u32 = 1024;

/// `CPU_TYPE_X86_64`.
pub const CPU_X86_64: u32 = 0x0100_0007;
/// `CPU_TYPE_ARM64`.
pub const CPU_ARM64: u32 = 0x0100_000c;

/// What a Mach-O image says about itself. Offsets are from the image's load address (its
/// header), which is where `__TEXT` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MachOIdentity {
    /// `cputype` ([`CPU_X86_64`], [`CPU_ARM64`]).
    pub cpu: u32,
    /// The `LC_UUID`, if the image has one.
    pub uuid: Option<[u8; 16]>,
    /// Bytes `__TEXT` spans (from the load address).
    pub text_size: u64,
    /// `__TEXT,__unwind_info`: offset and size (0, 0 if none).
    pub unwind_info: (u64, u64),
    /// `__TEXT,__eh_frame`: offset and size (0, 0 if none).
    pub eh_frame: (u64, u64),
}

impl MachOIdentity {
    /// The Breakpad debug ID as `dump_syms` writes it: the UUID's 16 bytes in order as
    /// uppercase hex, then the age, 0 (`4C4C44E355553144A1C1D2E6C3B2A5F80`).
    pub fn debug_id(&self) -> Option<heapless::String<33>> {
        let mut s = self.code_id()?;
        s.push('0').ok()?;
        Some(s)
    }

    /// The code ID: the UUID as 32 uppercase hex digits.
    pub fn code_id(&self) -> Option<heapless::String<33>> {
        use core::fmt::Write;
        let uuid = self.uuid?;
        let mut s = heapless::String::new();
        for b in uuid {
            write!(s, "{b:02X}").ok()?;
        }
        Some(s)
    }
}

/// Reads the identity of the Mach-O image loaded at `base`; `None` if it is not a
/// little-endian 64-bit Mach-O image or its load commands are unreadable or inconsistent.
pub fn identity<I: ImageReader + ?Sized>(image: &I, base: u64) -> Option<MachOIdentity> {
    let bytes = |off: u64, buf: &mut [u8]| image.read(base.checked_add(off)?, buf).then_some(());
    let u32_at = |off: u64| {
        let mut b = [0u8; 4];
        bytes(off, &mut b).map(|_| u32::from_le_bytes(b))
    };
    let u64_at = |off: u64| {
        let mut b = [0u8; 8];
        bytes(off, &mut b).map(|_| u64::from_le_bytes(b))
    };
    let name16 = |off: u64| {
        let mut b = [0u8; 16];
        bytes(off, &mut b).map(|_| b)
    };
    let is = |name: [u8; 16], want: &[u8]| {
        name.starts_with(want) && name.get(want.len()).is_none_or(|&c| c == 0)
    };
    if u32_at(0)? != MAGIC_64 {
        return None;
    }
    let mut id = MachOIdentity {
        cpu: u32_at(4)?,
        ..MachOIdentity::default()
    };
    let ncmds = u32_at(16)?;
    let sizeofcmds = u32_at(20)? as u64;
    if ncmds > MAX_COMMANDS {
        return None;
    }
    let (first, end) = (32u64, 32 + sizeofcmds);
    let mut at = first;
    let mut text_vmaddr = None;
    for _ in 0..ncmds {
        let (cmd, size) = (u32_at(at)?, u32_at(at + 4)? as u64);
        if size < 8 || at + size > end {
            return None;
        }
        match cmd {
            LC_UUID if size >= 24 => {
                let mut uuid = [0u8; 16];
                bytes(at + 8, &mut uuid)?;
                id.uuid = Some(uuid);
            }
            LC_SEGMENT_64 if size >= 72 && is(name16(at + 8)?, b"__TEXT") => {
                let vmaddr = u64_at(at + 24)?;
                text_vmaddr = Some(vmaddr);
                id.text_size = u64_at(at + 32)?;
                let nsects = u32_at(at + 64)?;
                if nsects > MAX_SECTIONS || 72 + 80 * nsects as u64 > size {
                    return None;
                }
                for i in 0..nsects as u64 {
                    let s = at + 72 + 80 * i;
                    let name = name16(s)?;
                    let place = || {
                        let addr = u64_at(s + 32)?;
                        let len = u64_at(s + 40)?;
                        let off = addr.checked_sub(vmaddr)?;
                        (off.checked_add(len)? <= id.text_size).then_some((off, len))
                    };
                    if is(name, b"__unwind_info") {
                        id.unwind_info = place()?;
                    } else if is(name, b"__eh_frame") {
                        id.eh_frame = place()?;
                    }
                }
            }
            _ => {}
        }
        at += size;
    }
    text_vmaddr?;
    Some(id)
}
