//! Apple's compact unwind info, the `__TEXT,__unwind_info` section of a Mach-O image: one
//! 32-bit encoding per function, found through a two-level index, that says how to unwind
//! it (frame pointer, frameless with a stack size, or "see the DWARF FDE in `__eh_frame`").
//! Safe code over byte slices, every offset and count checked, no allocation, so the same
//! parser serves the sampler (over a copy of the section) and the fuzz target.
//!
//! Layout (`<mach-o/compact_unwind_encoding.h>`): a header (version 1; the common encodings
//! array; the personality array; the first-level index), then first-level entries of
//! (function offset, second-level page offset, LSDA offset), the last a sentinel holding the
//! end of the covered range. Second-level pages are *regular* (kind 2: pairs of function
//! offset and encoding) or *compressed* (kind 3: a 24-bit offset from the first-level entry's
//! function and an 8-bit index into the common encodings, then the page's own). Function
//! offsets are from the image's load address (its Mach-O header).
//!
//! The encodings themselves differ per architecture: [`x86_64`] and [`arm64`] decode them
//! into a [`CompactRule`], applied by [`CompactRule::apply`] whatever the host's architecture
//! (so the tests run both here).

pub mod arm64;
pub mod x86_64;

use super::{EndReason, ImageReader, StackReader, Step};

/// `UNWIND_SECOND_LEVEL_REGULAR`.
const REGULAR_PAGE: u32 = 2;
/// `UNWIND_SECOND_LEVEL_COMPRESSED`.
const COMPRESSED_PAGE: u32 = 3;
/// Most first-level entries accepted (each covers a page of up to a few thousand functions).
const MAX_INDEX_ENTRIES: u32 = 1 << 20;

/// A parsed `__unwind_info` section (its header checked).
#[derive(Debug, Clone, Copy)]
pub struct UnwindInfo<'a> {
    bytes: &'a [u8],
    common: (u32, u32),
    index: (u32, u32),
}

/// The section is not compact unwind info vignette can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

impl From<Malformed> for EndReason {
    fn from(_: Malformed) -> EndReason {
        EndReason::BadUnwindInfo
    }
}

/// The function covering an address, and its encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The function's first byte, as an offset from the image's load address.
    pub function: u32,
    /// One past the range the entry covers (the next entry's function).
    pub end: u32,
    /// The function's compact unwind encoding (0: none).
    pub encoding: u32,
}

fn u16_at(b: &[u8], at: u32) -> Result<u16, Malformed> {
    let at = at as usize;
    let s = b
        .get(at..at.checked_add(2).ok_or(Malformed)?)
        .ok_or(Malformed)?;
    Ok(u16::from_le_bytes(s.try_into().map_err(|_| Malformed)?))
}

fn u32_at(b: &[u8], at: u32) -> Result<u32, Malformed> {
    let at = at as usize;
    let s = b
        .get(at..at.checked_add(4).ok_or(Malformed)?)
        .ok_or(Malformed)?;
    Ok(u32::from_le_bytes(s.try_into().map_err(|_| Malformed)?))
}

/// `array_start + i * size`, checked.
fn element(array_start: u32, i: u32, size: u32) -> Result<u32, Malformed> {
    i.checked_mul(size)
        .and_then(|o| o.checked_add(array_start))
        .ok_or(Malformed)
}

/// The last `i` in `0..count` whose key (from `key(i)`) is at most `target`, by binary
/// search (keys ascending), or `None` if the first is above it.
fn last_at_most(
    count: u32,
    target: u32,
    key: impl Fn(u32) -> Result<u32, Malformed>,
) -> Result<Option<u32>, Malformed> {
    let (mut lo, mut hi) = (0u32, count);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if key(mid)? <= target {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo.checked_sub(1))
}

/// Where a second-level page's entries start in the section, and how many there are (both
/// kinds of page begin with the kind, then these two 16-bit fields).
fn page_entries(b: &[u8], page: u32) -> Result<(u32, u32), Malformed> {
    let entries = page
        .checked_add(u16_at(b, page + 4)? as u32)
        .ok_or(Malformed)?;
    Ok((entries, u16_at(b, page + 6)? as u32))
}

/// Of `count` entries whose functions `function(i)` gives (ascending), the one covering
/// `offset`: its index, function, and the end of its range (the next entry's function, or
/// `page_end` for the last).
fn covering(
    count: u32,
    offset: u32,
    page_end: u32,
    function: impl Fn(u32) -> Result<u32, Malformed>,
) -> Result<Option<(u32, u32, u32)>, Malformed> {
    let Some(i) = last_at_most(count, offset, &function)? else {
        return Ok(None);
    };
    let end = if i + 1 < count {
        function(i + 1)?
    } else {
        page_end
    };
    Ok(Some((i, function(i)?, end)))
}

impl<'a> UnwindInfo<'a> {
    /// Checks the header of `bytes` (a whole `__unwind_info` section).
    ///
    /// # Signal safety
    /// Async-signal-safe.
    pub fn parse(bytes: &'a [u8]) -> Result<UnwindInfo<'a>, Malformed> {
        if u32_at(bytes, 0)? != 1 {
            return Err(Malformed);
        }
        let array = |at: u32, size: u32| -> Result<(u32, u32), Malformed> {
            let (start, count) = (u32_at(bytes, at)?, u32_at(bytes, at + 4)?);
            let end = element(start, count, size)?;
            if end as usize > bytes.len() {
                return Err(Malformed);
            }
            Ok((start, count))
        };
        let common = array(4, 4)?;
        let index = array(20, 12)?;
        if index.1 > MAX_INDEX_ENTRIES {
            return Err(Malformed);
        }
        Ok(UnwindInfo {
            bytes,
            common,
            index,
        })
    }

    /// The entry covering `offset` (from the image's load address), `None` where no function
    /// with unwind info does.
    ///
    /// # Signal safety
    /// Async-signal-safe: two binary searches, O(log n) bounded reads.
    pub fn lookup(&self, offset: u32) -> Result<Option<Entry>, Malformed> {
        let b = self.bytes;
        let (index_start, count) = self.index;
        let first_level = |i: u32| u32_at(b, element(index_start, i, 12)?);
        // The last entry is a sentinel: its function offset ends the covered range.
        let Some(last) = count.checked_sub(1) else {
            return Ok(None);
        };
        let Some(i) = last_at_most(last, offset, first_level)? else {
            return Ok(None);
        };
        let entry_at = element(index_start, i, 12)?;
        let base = u32_at(b, entry_at)?;
        let page = u32_at(b, entry_at + 4)?;
        let next_base = first_level(i + 1)?;
        if offset >= next_base || page == 0 {
            return Ok(None);
        }
        match u32_at(b, page)? {
            REGULAR_PAGE => self.regular(page, offset, next_base),
            COMPRESSED_PAGE => self.compressed(page, base, offset, next_base),
            _ => Err(Malformed),
        }
    }

    fn regular(&self, page: u32, offset: u32, page_end: u32) -> Result<Option<Entry>, Malformed> {
        let b = self.bytes;
        let (entries, count) = page_entries(b, page)?;
        let function = |i: u32| u32_at(b, element(entries, i, 8)?);
        let Some((i, function, end)) = covering(count, offset, page_end, function)? else {
            return Ok(None);
        };
        Ok(Some(Entry {
            function,
            end,
            encoding: u32_at(b, element(entries, i, 8)? + 4)?,
        }))
    }

    fn compressed(
        &self,
        page: u32,
        base: u32,
        offset: u32,
        page_end: u32,
    ) -> Result<Option<Entry>, Malformed> {
        let b = self.bytes;
        let (entries, count) = page_entries(b, page)?;
        let encodings = page
            .checked_add(u16_at(b, page + 8)? as u32)
            .ok_or(Malformed)?;
        let encodings_count = u16_at(b, page + 10)? as u32;
        let word = |i: u32| u32_at(b, element(entries, i, 4)?);
        let function = |i: u32| base.checked_add(word(i)? & 0x00ff_ffff).ok_or(Malformed);
        let Some((i, function, end)) = covering(count, offset, page_end, function)? else {
            return Ok(None);
        };
        let index = word(i)? >> 24;
        let (common_start, common_count) = self.common;
        let encoding = if index < common_count {
            u32_at(b, element(common_start, index, 4)?)?
        } else if index - common_count < encodings_count {
            u32_at(b, element(encodings, index - common_count, 4)?)?
        } else {
            return Err(Malformed);
        };
        Ok(Some(Entry {
            function,
            end,
            encoding,
        }))
    }
}

/// The registers compact unwinding reads and recovers, whatever the architecture: the
/// instruction pointer, the stack pointer, the frame pointer (`rbp`, `x29`) and, on arm64, the
/// link register (`x30`; unused on x86_64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompactRegs {
    /// Instruction pointer.
    pub ip: u64,
    /// Stack pointer.
    pub sp: u64,
    /// Frame pointer.
    pub fp: u64,
    /// Link register (arm64).
    pub lr: u64,
}

/// Where a frameless function's return address is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnAddress {
    /// Just below the caller's stack pointer (x86_64: pushed by `call`).
    BelowCallerSp,
    /// Still in the link register (an arm64 leaf): only for an interrupted frame.
    InLinkRegister,
}

/// How to unwind one function, decoded from its encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactRule {
    /// The caller's frame pointer is at `[fp]`, the return address at `[fp + 8]`, and the
    /// caller's stack pointer is `fp + 16` (both architectures).
    FramePointer,
    /// No frame pointer: the function's frame is `stack_size` bytes (return address
    /// included on x86_64); the frame pointer, if the function saved it, is at
    /// `sp + fp_at`.
    Frameless {
        /// The frame's size in bytes.
        stack_size: u32,
        /// Where the return address is.
        ra: ReturnAddress,
        /// Where the caller's frame pointer is saved, from the stack pointer.
        fp_at: Option<u32>,
    },
    /// x86_64 frameless with a frame too large for the encoding: its size is the 32-bit
    /// immediate of the function's `sub rsp` at `function + sub_offset`, plus `adjust`.
    FramelessIndirect {
        /// Offset of the `sub` immediate from the function's first byte.
        sub_offset: u32,
        /// Bytes to add to the immediate.
        adjust: u32,
        /// Registers pushed after the return address.
        saved: u32,
        /// Which of them (counting from the lowest address) is `rbp`.
        fp_index: Option<u32>,
    },
    /// Unwind with the DWARF FDE at this offset in the image's `__eh_frame`.
    Dwarf {
        /// The FDE's offset in `__eh_frame`.
        fde_offset: u32,
    },
    /// The function has no unwind info (encoding 0).
    None,
}

impl CompactRule {
    /// The rule with a [`CompactRule::FramelessIndirect`] frame's size read from the code
    /// (the `sub rsp` immediate in `image` at `function` plus its offset): that frame as a
    /// [`CompactRule::Frameless`]. Other rules are returned as they are.
    ///
    /// # Signal safety
    /// Async-signal-safe: at most one 4-byte read through `image`.
    pub fn resolved<I: ImageReader + ?Sized>(
        self,
        image: &I,
        function: u64,
    ) -> Result<CompactRule, EndReason> {
        let CompactRule::FramelessIndirect {
            sub_offset,
            adjust,
            saved,
            fp_index,
        } = self
        else {
            return Ok(self);
        };
        let mut imm = [0u8; 4];
        let at = function
            .checked_add(sub_offset as u64)
            .ok_or(EndReason::BadUnwindInfo)?;
        if !image.read(at, &mut imm) {
            return Err(EndReason::BadUnwindInfo);
        }
        let size = u32::from_le_bytes(imm)
            .checked_add(adjust)
            .ok_or(EndReason::BadUnwindInfo)?;
        let saved_at = size.checked_sub(8 + 8 * saved);
        let fp_at = match (fp_index, saved_at) {
            (Some(i), Some(s)) => Some(s + 8 * i),
            (None, _) => None,
            (Some(_), None) => return Err(EndReason::BadUnwindInfo),
        };
        Ok(CompactRule::Frameless {
            stack_size: size,
            ra: ReturnAddress::BelowCallerSp,
            fp_at,
        })
    }

    /// Turns `regs` into the caller's. `function` is the address of the function's first
    /// byte (for [`CompactRule::FramelessIndirect`], read through `image`); `interrupted` says
    /// the frame was interrupted rather than calling (only such a frame may keep its return
    /// address in a register). [`CompactRule::Dwarf`] and [`CompactRule::None`] are for the
    /// caller to handle: they give [`EndReason::NoUnwindInfo`] here.
    ///
    /// # Signal safety
    /// Async-signal-safe: a few reads through `stack` and `image`.
    pub fn apply<S: StackReader + ?Sized, I: ImageReader + ?Sized>(
        self,
        regs: &mut CompactRegs,
        stack: &S,
        image: &I,
        function: u64,
        interrupted: bool,
    ) -> Result<Step, EndReason> {
        let read = |addr: Option<u64>| {
            addr.and_then(|a| stack.read_u64(a))
                .ok_or(EndReason::OutOfBounds)
        };
        let (stack_size, ra, fp_at) = match self.resolved(image, function)? {
            CompactRule::FramePointer => {
                let fp = regs.fp;
                let caller_fp = read(Some(fp))?;
                let ip = read(fp.checked_add(8))?;
                let sp = fp.checked_add(16).ok_or(EndReason::BadFramePointer)?;
                *regs = CompactRegs {
                    ip,
                    sp,
                    fp: caller_fp,
                    lr: regs.lr,
                };
                return Ok(Step::Caller {
                    signal_frame: false,
                });
            }
            CompactRule::Frameless {
                stack_size,
                ra,
                fp_at,
            } => (stack_size as u64, ra, fp_at.map(u64::from)),
            CompactRule::FramelessIndirect { .. } => return Err(EndReason::BadUnwindInfo),
            CompactRule::Dwarf { .. } | CompactRule::None => return Err(EndReason::NoUnwindInfo),
        };
        let sp = regs
            .sp
            .checked_add(stack_size)
            .ok_or(EndReason::BadUnwindInfo)?;
        let ip = match ra {
            ReturnAddress::BelowCallerSp => read(sp.checked_sub(8))?,
            ReturnAddress::InLinkRegister if interrupted => regs.lr,
            ReturnAddress::InLinkRegister => return Err(EndReason::BadUnwindInfo),
        };
        let fp = match fp_at {
            Some(at) => read(regs.sp.checked_add(at))?,
            None => regs.fp,
        };
        *regs = CompactRegs {
            ip,
            sp,
            fp,
            lr: regs.lr,
        };
        Ok(Step::Caller {
            signal_frame: false,
        })
    }
}

#[cfg(test)]
mod tests;
