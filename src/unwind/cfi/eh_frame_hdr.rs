//! `.eh_frame_hdr`: where `.eh_frame` is, and a sorted table to find an FDE by address.

use super::reader::{fixed_size, Bases, Section, PE_OMIT};
use super::CfiError;

type R<T> = Result<T, CfiError>;

/// `DW_EH_PE_datarel | DW_EH_PE_sdata4`: table entries as 4-byte offsets from the header.
const DATAREL_SDATA4: u8 = 0x3b;

/// A parsed `.eh_frame_hdr`.
#[derive(Debug, Clone, Copy)]
pub struct EhFrameHdr<'a> {
    sec: Section<'a>,
    /// Address of `.eh_frame`.
    pub eh_frame_avma: u64,
    fde_count: usize,
    table_enc: u8,
    table_offset: usize,
    entry_size: usize,
}

/// # Signal safety
/// Every method is async-signal-safe: bounds-checked reads and a binary search, no allocation or panics.
impl<'a> EhFrameHdr<'a> {
    /// Parses the header at the start of `sec`.
    pub fn parse(sec: Section<'a>) -> R<Self> {
        let mut c = sec.at(0);
        if c.u8()? != 1 {
            return Err(CfiError::BadEhFrameHdr);
        }
        let (ptr_enc, count_enc, table_enc) = (c.u8()?, c.u8()?, c.u8()?);
        let bases = Bases {
            data: Some(sec.avma),
            func: None,
        };
        let eh_frame_avma = c.pointer(ptr_enc, &bases)?;
        let fde_count = if count_enc == PE_OMIT || table_enc == PE_OMIT {
            0
        } else {
            usize::try_from(c.pointer(count_enc, &bases)?).map_err(|_| CfiError::BadEhFrameHdr)?
        };
        let entry_size = if fde_count > 0 {
            2 * fixed_size(table_enc).ok_or(CfiError::BadEhFrameHdr)?
        } else {
            0
        };
        let table_offset = c.pos();
        // The table must fit in the section.
        let table_len = fde_count
            .checked_mul(entry_size)
            .ok_or(CfiError::BadEhFrameHdr)?;
        if table_offset
            .checked_add(table_len)
            .is_none_or(|end| end > sec.data.len())
        {
            return Err(CfiError::Truncated);
        }
        Ok(EhFrameHdr {
            sec,
            eh_frame_avma,
            fde_count,
            table_enc,
            table_offset,
            entry_size,
        })
    }

    /// Whether the binary-search table is present.
    pub fn has_table(&self) -> bool {
        self.fde_count > 0
    }

    /// Entries in the table.
    pub fn entry_count(&self) -> usize {
        self.fde_count
    }

    /// Entry `i`: the start address of an FDE and the FDE's address.
    pub fn entry(&self, i: usize) -> R<(u64, u64)> {
        let bases = Bases {
            data: Some(self.sec.avma),
            func: None,
        };
        let mut c = self.sec.at(self.table_offset + i * self.entry_size);
        Ok((
            c.pointer(self.table_enc, &bases)?,
            c.pointer(self.table_enc, &bases)?,
        ))
    }

    /// The start address of entry `i`: read directly for the encoding every linker writes
    /// (`DW_EH_PE_datarel | DW_EH_PE_sdata4`), through the general decoder otherwise.
    fn entry_start(&self, i: usize) -> R<u64> {
        if self.table_enc != DATAREL_SDATA4 {
            return Ok(self.entry(i)?.0);
        }
        let at = self.table_offset + i * self.entry_size;
        let bytes = self
            .sec
            .data
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .ok_or(CfiError::Truncated)?;
        Ok(self
            .sec
            .avma
            .wrapping_add_signed(i64::from(i32::from_le_bytes(bytes))))
    }

    /// The address of the FDE whose start is the greatest one not above `pc`, if any.
    ///
    /// # Signal safety
    /// Async-signal-safe: a binary search over the section.
    pub fn lookup(&self, pc: u64) -> R<Option<u64>> {
        let (mut lo, mut hi) = (0, self.fde_count);
        // Invariant: entries below lo start at or before pc; entries from hi start after it.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entry_start(mid)? <= pc {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == 0 {
            return Ok(None);
        }
        Ok(Some(self.entry(lo - 1)?.1))
    }
}
