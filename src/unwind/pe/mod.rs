//! The Windows x64 unwinder: a module's `.pdata` function table (`RUNTIME_FUNCTION` entries)
//! and the `UNWIND_INFO` codes they point at, applied in reverse the way `RtlVirtualUnwind`
//! does, over a [`StackReader`] for the stack and an [`ImageReader`] for the module's memory.
//! Safe code, no allocation, every count and read bounded, so tests and fuzz targets drive it
//! over byte slices and the sampler over a copied stack.
//!
//! What it handles: push, alloc (small, large), set-frame, save-nonvol (near, far), save-xmm
//! (skipped: vignette tracks integer registers only), machine frames, chained info, indirect
//! `.pdata` entries, leaf functions (no entry: the return address is at `rsp`), and an
//! interrupted frame inside its prolog (codes not yet executed are skipped) or epilog (the
//! rest of the epilog is emulated from its instructions, see `epilog.rs`).

mod epilog;
#[cfg(test)]
mod tests;

use super::{EndReason, Regs, StackReader, Step};
pub use super::{ImageReader, SliceImage};

/// A loaded module's function table.
#[derive(Debug, Clone, Copy)]
pub struct FunctionTable<'a> {
    /// The image base: RVAs are relative to it.
    pub base: u64,
    /// The module's `.pdata` (its exception directory): 12-byte `RUNTIME_FUNCTION` entries
    /// (begin RVA, end RVA, unwind info RVA) sorted by begin address. A copy in the unwinder's
    /// own memory, so that it stays readable whatever happens to the module.
    pub pdata: &'a [u8],
}

/// Where the function table for an address is.
pub trait TableLookup {
    /// The table of the module containing `avma`, or `None` if no known module does.
    fn table(&self, avma: u64) -> Option<FunctionTable<'_>>;
}

/// One `RUNTIME_FUNCTION`: RVAs of the function's first byte, one past its last, and its
/// unwind info.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeFunction {
    /// First byte of the function (RVA).
    pub begin: u32,
    /// One past the function's last byte (RVA).
    pub end: u32,
    /// Its `UNWIND_INFO` (RVA), or with the low bit set another `RUNTIME_FUNCTION`.
    pub unwind_info: u32,
}

impl RuntimeFunction {
    fn parse(b: &[u8]) -> Option<Self> {
        let word = |i: usize| Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?));
        Some(RuntimeFunction {
            begin: word(0)?,
            end: word(4)?,
            unwind_info: word(8)?,
        })
    }
}

/// The entry of `table` covering `rva`, by binary search.
///
/// # Signal safety
/// Async-signal-safe: reads only `table.pdata`.
pub fn find_function(table: &FunctionTable<'_>, rva: u32) -> Option<RuntimeFunction> {
    let entry = |i: usize| RuntimeFunction::parse(table.pdata.get(i * 12..i * 12 + 12)?);
    let (mut lo, mut hi) = (0usize, table.pdata.len() / 12);
    // Invariant: entries before `lo` begin at or below `rva`, entries from `hi` above it.
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if entry(mid)?.begin <= rva {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let f = entry(lo.checked_sub(1)?)?;
    (rva < f.end).then_some(f)
}

/// How deep chained unwind info may nest (real code chains once or twice).
const MAX_CHAIN: usize = 32;

/// `UNWIND_INFO` flags.
const UNW_FLAG_CHAININFO: u8 = 4;

/// Unwind operation codes.
mod op {
    pub const PUSH_NONVOL: u8 = 0;
    pub const ALLOC_LARGE: u8 = 1;
    pub const ALLOC_SMALL: u8 = 2;
    pub const SET_FPREG: u8 = 3;
    pub const SAVE_NONVOL: u8 = 4;
    pub const SAVE_NONVOL_FAR: u8 = 5;
    /// Version 2 epilog descriptions: skipped (epilogs are recognised from their code).
    pub const EPILOG: u8 = 6;
    pub const SAVE_XMM128: u8 = 8;
    pub const SAVE_XMM128_FAR: u8 = 9;
    pub const PUSH_MACHFRAME: u8 = 10;
}

/// Windows' register numbering in unwind codes (rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi,
/// r8-r15) as DWARF numbers, which [`Regs`] uses.
const DWARF_OF: [u16; 16] = [0, 2, 1, 3, 7, 6, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15];

/// The DWARF number ([`Regs`]'s index) of Windows' register `reg` (its number in unwind codes
/// and in `CONTEXT`'s integer registers).
pub fn dwarf(reg: u8) -> u16 {
    DWARF_OF.get(reg as usize & 15).copied().unwrap_or(0)
}

/// A parsed `UNWIND_INFO`: the header and up to 255 code slots.
struct UnwindInfo {
    flags: u8,
    prolog_size: u8,
    frame_reg: u8,
    frame_offset: u8,
    count: usize,
    codes: [u16; 256],
}

impl UnwindInfo {
    /// Reads the info at `avma`; `Err(BadRead)` if unreadable.
    fn read<I: ImageReader + ?Sized>(image: &I, avma: u64) -> Result<Self, UnwindError> {
        let mut head = [0u8; 4];
        if !image.read(avma, &mut head) {
            return Err(UnwindError::BadRead);
        }
        let version = head[0] & 7;
        if !(1..=2).contains(&version) {
            return Err(UnwindError::BadInfo);
        }
        let count = head[2] as usize;
        let mut info = UnwindInfo {
            flags: head[0] >> 3,
            prolog_size: head[1],
            frame_reg: head[3] & 15,
            frame_offset: head[3] >> 4,
            count,
            codes: [0; 256],
        };
        let mut bytes = [0u8; 512];
        let codes = bytes.get_mut(..count * 2).ok_or(UnwindError::BadInfo)?;
        if !image.read(avma.wrapping_add(4), codes) {
            return Err(UnwindError::BadRead);
        }
        for (slot, b) in info.codes.iter_mut().zip(codes.chunks_exact(2)) {
            if let [lo, hi] = *b {
                *slot = u16::from_le_bytes([lo, hi]);
            }
        }
        Ok(info)
    }

    fn slot(&self, i: usize) -> Result<u16, UnwindError> {
        if i >= self.count {
            return Err(UnwindError::BadInfo);
        }
        self.codes.get(i).copied().ok_or(UnwindError::BadInfo)
    }

    /// Where the chained `RUNTIME_FUNCTION` follows the codes (slot count rounded up to even).
    fn chained_at(&self, info_avma: u64) -> u64 {
        info_avma.wrapping_add(4 + ((self.count as u64 + 1) & !1) * 2)
    }

    /// The offset in the prolog of its `SET_FPREG` code, if it has one.
    fn set_fpreg_offset(&self) -> Option<u8> {
        let mut i = 0;
        while i < self.count {
            let code = self.codes.get(i).copied()?;
            let (offset, op, info) = decode(code);
            if op == op::SET_FPREG {
                return Some(offset);
            }
            i += slots(op, info)?;
        }
        None
    }
}

/// (prolog offset, operation, operation info) of a code slot.
fn decode(code: u16) -> (u8, u8, u8) {
    (code as u8, (code >> 8) as u8 & 15, (code >> 12) as u8)
}

/// How many slots a code with `op` and `info` takes.
fn slots(op: u8, info: u8) -> Option<usize> {
    Some(match op {
        op::ALLOC_LARGE if info == 0 => 2,
        op::ALLOC_LARGE if info == 1 => 3,
        op::SAVE_NONVOL | op::SAVE_XMM128 | op::EPILOG => 2,
        op::SAVE_NONVOL_FAR | op::SAVE_XMM128_FAR => 3,
        op::PUSH_NONVOL | op::ALLOC_SMALL | op::SET_FPREG | op::PUSH_MACHFRAME => 1,
        _ => return None,
    })
}

/// What stopped an unwind step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnwindError {
    /// Stack or module memory that was needed could not be read.
    BadRead,
    /// The unwind info was malformed (unknown code, a count past its end, a chain too deep).
    BadInfo,
}

impl From<UnwindError> for EndReason {
    /// # Signal safety
    /// Async-signal-safe.
    fn from(e: UnwindError) -> Self {
        match e {
            UnwindError::BadRead => EndReason::OutOfBounds,
            UnwindError::BadInfo => EndReason::BadUnwindInfo,
        }
    }
}

/// Unwinds one frame of code in `table`'s module: `regs` become the caller's (every integer
/// register the codes restore, and rip and rsp). `interrupted` says the frame was stopped at
/// `regs.ip()` rather than calling from there: only such a frame can be inside its prolog
/// or epilog. A caller frame's function is looked up at its return address minus one.
///
/// # Signal safety
/// Async-signal-safe if `stack` and `image` are: no allocation, bounded loops.
pub fn step<S, I>(
    regs: &mut Regs,
    interrupted: bool,
    table: &FunctionTable<'_>,
    stack: &S,
    image: &I,
) -> Result<Step, UnwindError>
where
    S: StackReader + ?Sized,
    I: ImageReader + ?Sized,
{
    let ip = regs.ip();
    let lookup = if interrupted { ip } else { ip.wrapping_sub(1) };
    let Some(rva) = lookup
        .checked_sub(table.base)
        .and_then(|r| u32::try_from(r).ok())
    else {
        return Err(UnwindError::BadInfo);
    };
    let Some(mut function) = find_function(table, rva) else {
        // A leaf function (no stack frame, no table entry): the return address is at rsp.
        return pop_return_address(regs, stack);
    };
    // An indirect entry names another entry (in the image) that describes the function.
    if function.unwind_info & 1 != 0 {
        let mut b = [0u8; 12];
        if !image.read(
            table.base.wrapping_add((function.unwind_info & !1) as u64),
            &mut b,
        ) {
            return Err(UnwindError::BadRead);
        }
        function = RuntimeFunction::parse(&b).ok_or(UnwindError::BadInfo)?;
    }
    let info_avma = table.base.wrapping_add(function.unwind_info as u64);
    let info = UnwindInfo::read(image, info_avma)?;
    // The offset of `ip` in the function; past the prolog, every code has been executed.
    let offset = rva.wrapping_sub(function.begin);
    if interrupted && offset >= info.prolog_size as u32 {
        if let Some(step) = epilog::unwind_if_inside(regs, table.base, &function, stack, image) {
            return step;
        }
    }
    // A caller's return address is one past the lookup address (found by the fuzzer: a
    // function table entry can make this the largest offset).
    let offset = if interrupted {
        offset
    } else {
        offset.wrapping_add(1)
    };
    apply_codes(regs, info, info_avma, offset, table.base, stack, image)
}

/// The frame base that save codes are relative to: the frame register minus its offset once
/// the prolog has set it, else rsp.
fn establisher_frame(regs: &Regs, info: &UnwindInfo, offset: u32) -> u64 {
    if info.frame_reg != 0 {
        if let Some(at) = info.set_fpreg_offset() {
            if offset >= info.prolog_size as u32 || offset >= at as u32 {
                let fp = regs.get(dwarf(info.frame_reg)).unwrap_or(0);
                return fp.wrapping_sub(info.frame_offset as u64 * 16);
            }
        }
    }
    regs.sp()
}

/// Reverses the prolog codes of `info` and of its chain (those at prolog offsets up to
/// `offset`), then pops the return address unless a machine frame supplied rip.
fn apply_codes<S, I>(
    regs: &mut Regs,
    mut info: UnwindInfo,
    mut info_avma: u64,
    mut offset: u32,
    base: u64,
    stack: &S,
    image: &I,
) -> Result<Step, UnwindError>
where
    S: StackReader + ?Sized,
    I: ImageReader + ?Sized,
{
    let read = |addr: u64| stack.read_u64(addr).ok_or(UnwindError::BadRead);
    for _ in 0..MAX_CHAIN {
        let frame = establisher_frame(regs, &info, offset);
        let mut i = 0;
        while i < info.count {
            let (at, code, code_info) = decode(info.slot(i)?);
            let n = slots(code, code_info).ok_or(UnwindError::BadInfo)?;
            // The last slot a code needs must exist.
            info.slot(i + n - 1)?;
            let executed = offset >= at as u32;
            i += n;
            if !executed {
                continue;
            }
            let sp = regs.sp();
            let arg16 = || Ok::<u64, UnwindError>(info.slot(i - n + 1)? as u64);
            let arg32 = || {
                Ok::<u64, UnwindError>(
                    info.slot(i - n + 1)? as u64 | (info.slot(i - n + 2)? as u64) << 16,
                )
            };
            match code {
                op::PUSH_NONVOL => {
                    regs.set(dwarf(code_info), read(sp)?);
                    regs.set(Regs::SP, sp.wrapping_add(8));
                }
                op::ALLOC_SMALL => regs.set(Regs::SP, sp.wrapping_add(code_info as u64 * 8 + 8)),
                op::ALLOC_LARGE => {
                    let size = if code_info == 0 {
                        arg16()? * 8
                    } else {
                        arg32()?
                    };
                    regs.set(Regs::SP, sp.wrapping_add(size));
                }
                op::SET_FPREG => regs.set(Regs::SP, frame),
                op::SAVE_NONVOL => {
                    regs.set(dwarf(code_info), read(frame.wrapping_add(arg16()? * 8))?)
                }
                op::SAVE_NONVOL_FAR => {
                    regs.set(dwarf(code_info), read(frame.wrapping_add(arg32()?))?)
                }
                op::SAVE_XMM128 | op::SAVE_XMM128_FAR | op::EPILOG => {}
                op::PUSH_MACHFRAME => {
                    // The processor's interrupt frame (after an error code if info is 1):
                    // rip, cs, eflags, rsp, ss.
                    let at = sp.wrapping_add(if code_info == 1 { 8 } else { 0 });
                    regs.set(Regs::IP, read(at)?);
                    regs.set(Regs::SP, read(at.wrapping_add(24))?);
                    return Ok(Step::Caller { signal_frame: true });
                }
                _ => return Err(UnwindError::BadInfo),
            }
        }
        if info.flags & UNW_FLAG_CHAININFO == 0 {
            return pop_return_address(regs, stack);
        }
        // The parent's prolog has run in full by the time chained code runs.
        let mut b = [0u8; 12];
        if !image.read(info.chained_at(info_avma), &mut b) {
            return Err(UnwindError::BadRead);
        }
        let parent = RuntimeFunction::parse(&b).ok_or(UnwindError::BadInfo)?;
        info_avma = base.wrapping_add((parent.unwind_info & !1) as u64);
        info = UnwindInfo::read(image, info_avma)?;
        offset = u32::MAX;
    }
    Err(UnwindError::BadInfo)
}

/// The last step of every frame: rip = [rsp], rsp += 8.
fn pop_return_address<S: StackReader + ?Sized>(
    regs: &mut Regs,
    stack: &S,
) -> Result<Step, UnwindError> {
    let sp = regs.sp();
    let ra = stack.read_u64(sp).ok_or(UnwindError::BadRead)?;
    regs.set(Regs::IP, ra);
    regs.set(Regs::SP, sp.wrapping_add(8));
    Ok(Step::Caller {
        signal_frame: false,
    })
}

/// Unwinds from `regs` into `frames` (see [`crate::unwind`] for the address convention) with
/// the function tables `tables` finds. Returns the number of frames and how the walk ended; a
/// zero return address is the root (Windows' `RtlUserThreadStart` leaves one).
///
/// Every caller must lie in a module with a table: an interrupted frame outside every module
/// (code in anonymous memory) is left by frame pointers, but a return address outside every
/// module ends the walk with [`EndReason::NoUnwindInfo`] unrecorded, since it is most likely
/// not one. (It happens where code without unwind info has pushed registers: mingw's
/// `___chkstk_ms` is one, where `RtlVirtualUnwind` reads the pushed value as a return
/// address and goes on through garbage.)
///
/// # Signal safety
/// Async-signal-safe if `stack`, `tables` and `image` are: no allocation, at most
/// `frames.len()` steps.
pub fn walk<S, T, I>(
    regs: &Regs,
    stack: &mut S,
    tables: &T,
    image: &I,
    frames: &mut [u64],
) -> (usize, EndReason)
where
    S: StackReader + ?Sized,
    T: TableLookup + ?Sized,
    I: ImageReader + ?Sized,
{
    super::walk_frames(
        regs,
        stack,
        frames,
        0,
        |regs, lookup, interrupted, stack| {
            let step = match tables.table(lookup) {
                Some(table) => step(regs, interrupted, &table, stack, image)?,
                None => super::fp::step_without_unwind_info(regs, stack)?,
            };
            let ip = regs.ip();
            let caller = match step {
                Step::Caller { signal_frame: true } => ip,
                _ => ip.wrapping_sub(1),
            };
            if ip != 0 && tables.table(caller).is_none() {
                return Err(EndReason::NoUnwindInfo);
            }
            Ok(step)
        },
    )
}
