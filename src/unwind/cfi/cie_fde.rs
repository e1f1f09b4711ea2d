//! Common Information Entries and Frame Description Entries in `.eh_frame`.

use super::reader::{Bases, Cursor, Section, PE_OMIT};
use super::CfiError;

type R<T> = Result<T, CfiError>;

/// What a CIE says about the FDEs that use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cie<'a> {
    /// Multiplier for `advance_loc` deltas.
    pub code_align: u64,
    /// Multiplier for `offset` factors.
    pub data_align: i64,
    /// The return address column (16 on x86_64).
    pub ra_register: u16,
    /// Pointer encoding of the FDEs' `pc_begin` and `pc_range`.
    pub fde_encoding: u8,
    /// Whether FDEs have augmentation data (a `z` augmentation).
    pub has_aug_data: bool,
    /// Frames of this CIE are signal frames (`S`): their caller's address is exact, not a
    /// return address.
    pub signal_frame: bool,
    /// The initial instructions.
    pub instructions: &'a [u8],
    /// Offset of `instructions` in the section (expressions point into the section).
    pub instructions_offset: usize,
}

/// One FDE: the address range it covers and its instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fde<'a> {
    /// The CIE it uses.
    pub cie: Cie<'a>,
    /// First address covered.
    pub pc_begin: u64,
    /// One past the last address covered.
    pub pc_end: u64,
    /// The instructions.
    pub instructions: &'a [u8],
    /// Offset of `instructions` in the section.
    pub instructions_offset: usize,
}

/// The length field of an entry at `c`: returns (length of the rest, offset where it ends), or
/// `None` for the zero terminator.
fn entry_length(c: &mut Cursor<'_>) -> R<Option<(usize, usize)>> {
    let len = match c.u32()? {
        0 => return Ok(None),
        0xffff_ffff => usize::try_from(c.u64()?).map_err(|_| CfiError::Truncated)?,
        n => n as usize,
    };
    let end = c.pos().checked_add(len).ok_or(CfiError::Truncated)?;
    Ok(Some((len, end)))
}

/// Parses the CIE at `offset` of `eh_frame`.
///
/// # Signal safety
/// Async-signal-safe: bounds-checked reads, no allocation, locks or panics.
pub fn parse_cie(eh_frame: Section<'_>, offset: usize) -> R<Cie<'_>> {
    let mut c = eh_frame.at(offset);
    let (_, end) = entry_length(&mut c)?.ok_or(CfiError::BadEntry)?;
    if c.u32()? != 0 {
        return Err(CfiError::BadEntry);
    }
    let version = c.u8()?;
    if !matches!(version, 1 | 3 | 4) {
        return Err(CfiError::BadEntry);
    }
    let mut aug = [0u8; 8];
    let mut aug_len = 0;
    loop {
        let b = c.u8()?;
        if b == 0 {
            break;
        }
        *aug.get_mut(aug_len).ok_or(CfiError::BadEntry)? = b;
        aug_len += 1;
    }
    let aug = aug.get(..aug_len).unwrap_or(&[]);
    if aug.starts_with(b"eh") {
        c.skip(8)?; // the ancient gcc "eh" pointer
    }
    if version == 4 {
        c.skip(2)?; // address size, segment selector size
    }
    let code_align = c.uleb()?;
    let data_align = c.sleb()?;
    let ra_register = if version == 1 {
        c.u8()? as u16
    } else {
        c.uleb()? as u16
    };
    let mut cie = Cie {
        code_align,
        data_align,
        ra_register,
        fde_encoding: 0,
        has_aug_data: false,
        signal_frame: false,
        instructions: &[],
        instructions_offset: 0,
    };
    if aug.first() == Some(&b'z') {
        cie.has_aug_data = true;
        let len = usize::try_from(c.uleb()?).map_err(|_| CfiError::Truncated)?;
        let data_end = c.pos().checked_add(len).ok_or(CfiError::Truncated)?;
        for &a in aug.get(1..).unwrap_or(&[]) {
            match a {
                b'R' => cie.fde_encoding = c.u8()?,
                b'L' => {
                    c.u8()?;
                }
                b'P' => {
                    let enc = c.u8()?;
                    if enc != PE_OMIT {
                        c.pointer_value(enc)?;
                    }
                }
                b'S' => cie.signal_frame = true,
                // Unknown augmentations: the length lets us skip their data.
                _ => break,
            }
        }
        c = eh_frame.at(data_end);
    } else if aug.iter().any(|&a| a != b'e' && a != b'h') {
        // Without 'z' an unknown augmentation cannot be skipped.
        return Err(CfiError::BadEntry);
    }
    if c.pos() > end {
        return Err(CfiError::BadEntry);
    }
    cie.instructions_offset = c.pos();
    cie.instructions = eh_frame.data.get(c.pos()..end).ok_or(CfiError::Truncated)?;
    Ok(cie)
}

/// Parses the FDE at `offset` of `eh_frame` (and its CIE).
///
/// # Signal safety
/// Async-signal-safe: bounds-checked reads, no allocation, locks or panics.
pub fn parse_fde(eh_frame: Section<'_>, offset: usize) -> R<Fde<'_>> {
    let mut c = eh_frame.at(offset);
    let (_, end) = entry_length(&mut c)?.ok_or(CfiError::BadEntry)?;
    let id_pos = c.pos();
    let cie_pointer = c.u32()? as usize;
    if cie_pointer == 0 {
        return Err(CfiError::BadEntry); // a CIE, not an FDE
    }
    let cie_offset = id_pos.checked_sub(cie_pointer).ok_or(CfiError::BadEntry)?;
    let cie = parse_cie(eh_frame, cie_offset)?;
    let pc_begin = c.pointer(cie.fde_encoding, &Bases::default())?;
    let pc_range = c.pointer_value(cie.fde_encoding & 0x0f)?;
    if cie.has_aug_data {
        let len = usize::try_from(c.uleb()?).map_err(|_| CfiError::Truncated)?;
        c.skip(len)?;
    }
    if c.pos() > end {
        return Err(CfiError::BadEntry);
    }
    Ok(Fde {
        cie,
        pc_begin,
        pc_end: pc_begin.wrapping_add(pc_range),
        instructions_offset: c.pos(),
        instructions: eh_frame.data.get(c.pos()..end).ok_or(CfiError::Truncated)?,
    })
}

/// Finds the FDE covering `pc` by walking every entry of `eh_frame` (for modules without
/// `.eh_frame_hdr`). Stops after `max_entries` entries.
///
/// # Signal safety
/// Async-signal-safe; bounded by `max_entries`.
pub fn scan_for_fde(eh_frame: Section<'_>, pc: u64, max_entries: usize) -> R<Option<Fde<'_>>> {
    let mut offset = 0;
    for _ in 0..max_entries {
        let mut c = eh_frame.at(offset);
        let Ok(Some((_, end))) = entry_length(&mut c) else {
            return Ok(None);
        };
        if c.u32()? != 0 {
            let fde = parse_fde(eh_frame, offset)?;
            if fde.pc_begin <= pc && pc < fde.pc_end {
                return Ok(Some(fde));
            }
        }
        offset = end;
    }
    Ok(None)
}
