//! Bounds-checked reading of unwind sections: fixed-size integers, LEB128, and the pointer
//! encodings (`DW_EH_PE_*`) that gcc, clang and rustc emit.

use super::CfiError;

/// Section bytes and the address (in this process) of the first byte.
#[derive(Debug, Clone, Copy)]
pub struct Section<'a> {
    /// The bytes.
    pub data: &'a [u8],
    /// Address of `data[0]`.
    pub avma: u64,
}

/// # Signal safety
/// Every method is async-signal-safe: bounds-checked reads of a byte slice, no allocation or panics.
impl<'a> Section<'a> {
    /// A cursor at byte `offset`.
    pub fn at(self, offset: usize) -> Cursor<'a> {
        Cursor {
            sec: self,
            pos: offset,
        }
    }

    /// The offset of address `avma` in this section, if inside.
    pub fn offset_of(&self, avma: u64) -> Option<usize> {
        let off = usize::try_from(avma.checked_sub(self.avma)?).ok()?;
        (off < self.data.len()).then_some(off)
    }
}

/// Bases for relative pointer encodings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bases {
    /// `DW_EH_PE_datarel` base (the start of `.eh_frame_hdr` for its table).
    pub data: Option<u64>,
    /// `DW_EH_PE_funcrel` base (the FDE's start address).
    pub func: Option<u64>,
}

/// `DW_EH_PE_omit`.
pub const PE_OMIT: u8 = 0xff;

/// A read position in a section.
#[derive(Debug, Clone, Copy)]
pub struct Cursor<'a> {
    sec: Section<'a>,
    pos: usize,
}

type R<T> = Result<T, CfiError>;

/// # Signal safety
/// Every method is async-signal-safe: bounds-checked reads of a byte slice, no allocation or panics.
impl<'a> Cursor<'a> {
    /// Current offset.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Address of the current position.
    pub fn avma(&self) -> u64 {
        self.sec.avma.wrapping_add(self.pos as u64)
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(CfiError::Truncated)?;
        let b = self
            .sec
            .data
            .get(self.pos..end)
            .ok_or(CfiError::Truncated)?;
        self.pos = end;
        Ok(b)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> R<()> {
        self.bytes(n).map(|_| ())
    }

    fn array<const N: usize>(&mut self) -> R<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }

    /// A byte.
    pub fn u8(&mut self) -> R<u8> {
        Ok(self.array::<1>()?[0])
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self) -> R<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self) -> R<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self) -> R<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// An unsigned LEB128 (at most 10 bytes).
    pub fn uleb(&mut self) -> R<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.u8()?;
            v |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CfiError::BadLeb128)
    }

    /// A signed LEB128 (at most 10 bytes).
    pub fn sleb(&mut self) -> R<i64> {
        let mut v = 0i64;
        let mut shift = 0;
        for _ in 0..10 {
            let b = self.u8()?;
            v |= ((b & 0x7f) as i64) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                if shift < 64 && b & 0x40 != 0 {
                    v |= -1i64 << shift;
                }
                return Ok(v);
            }
        }
        Err(CfiError::BadLeb128)
    }

    /// A pointer in encoding `enc` (never dereferences `DW_EH_PE_indirect`: callers that need
    /// the target read it themselves).
    pub fn pointer(&mut self, enc: u8, bases: &Bases) -> R<u64> {
        if enc == PE_OMIT {
            return Err(CfiError::BadPointerEncoding);
        }
        let here = self.avma();
        let value = self.pointer_value(enc)?;
        let base = match enc & 0x70 {
            0x00 => 0,
            0x10 => here,
            0x30 => bases.data.ok_or(CfiError::BadPointerEncoding)?,
            0x40 => bases.func.ok_or(CfiError::BadPointerEncoding)?,
            _ => return Err(CfiError::BadPointerEncoding),
        };
        Ok(base.wrapping_add(value))
    }

    /// The value part of an encoded pointer (format bits only, no base applied).
    pub fn pointer_value(&mut self, enc: u8) -> R<u64> {
        Ok(match enc & 0x0f {
            0x00 => self.u64()?,
            0x01 => self.uleb()?,
            0x02 => self.u16()? as u64,
            0x03 => self.u32()? as u64,
            0x04 => self.u64()?,
            0x09 => self.sleb()? as u64,
            0x0a => self.u16()? as i16 as i64 as u64,
            0x0b => self.u32()? as i32 as i64 as u64,
            0x0c => self.u64()?,
            _ => return Err(CfiError::BadPointerEncoding),
        })
    }
}

/// Size in bytes of a fixed-size pointer encoding (`None` for LEB128 or invalid).
pub fn fixed_size(enc: u8) -> Option<usize> {
    match enc & 0x0f {
        0x00 | 0x04 | 0x0c => Some(8),
        0x02 | 0x0a => Some(2),
        0x03 | 0x0b => Some(4),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(data: &[u8]) -> Cursor<'_> {
        Section { data, avma: 0x1000 }.at(0)
    }

    #[test]
    fn integers_and_leb128() {
        let mut c = cur(&[0xe5, 0x8e, 0x26, 0x7f, 0x80, 0x7f, 0x02, 0x01, 0x00]);
        assert_eq!(c.uleb().unwrap(), 624_485);
        assert_eq!(c.sleb().unwrap(), -1);
        assert_eq!(c.sleb().unwrap(), -128);
        assert_eq!(c.u16().unwrap(), 0x0102);
        assert_eq!(c.u8().unwrap(), 0);
        assert!(matches!(c.u8(), Err(CfiError::Truncated)));
        assert!(matches!(cur(&[0xff; 11]).uleb(), Err(CfiError::BadLeb128)));
    }

    #[test]
    fn every_pointer_encoding() {
        let bases = Bases {
            data: Some(0x5000),
            func: Some(0x7000),
        };
        // (encoding, bytes, expected) with the value at address 0x1000.
        let cases: &[(u8, &[u8], u64)] = &[
            (0x00, &[1, 0, 0, 0, 0, 0, 0, 0], 1),
            (0x01, &[0x81, 0x01], 129),
            (0x02, &[0xff, 0xff], 0xffff),
            (0x03, &[4, 3, 2, 1], 0x0102_0304),
            (0x04, &[8, 0, 0, 0, 0, 0, 0, 0x80], 0x8000_0000_0000_0008),
            (0x09, &[0x7f], u64::MAX),
            (0x0a, &[0xfe, 0xff], (-2i64) as u64),
            (0x0b, &[0xfc, 0xff, 0xff, 0xff], (-4i64) as u64),
            (0x0c, &[5, 0, 0, 0, 0, 0, 0, 0], 5),
            (0x1b, &[0x10, 0, 0, 0], 0x1010),         // pcrel sdata4
            (0x1b, &[0xf0, 0xff, 0xff, 0xff], 0xff0), // pcrel, negative
            (0x3b, &[0x20, 0, 0, 0], 0x5020),         // datarel sdata4
            (0x43, &[0x30, 0, 0, 0], 0x7030),         // funcrel udata4
            (0x9b, &[0x10, 0, 0, 0], 0x1010),         // indirect|pcrel: not dereferenced
        ];
        for &(enc, bytes, want) in cases {
            assert_eq!(
                cur(bytes).pointer(enc, &bases).unwrap(),
                want,
                "encoding {enc:#x}"
            );
        }
        for bad in [0x05u8, 0x20 | 0x03, 0x50 | 0x03, PE_OMIT] {
            assert!(
                cur(&[0; 8]).pointer(bad, &bases).is_err(),
                "encoding {bad:#x}"
            );
        }
        assert!(cur(&[0; 8])
            .pointer(0x30 | 0x03, &Bases::default())
            .is_err());
        assert_eq!(fixed_size(0x3b), Some(4));
        assert_eq!(fixed_size(0x01), None);
    }
}
