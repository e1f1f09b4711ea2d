//! The Mach-O walker (macOS): for each frame, the function's compact unwind encoding from its
//! image's `__unwind_info` ([`compact`](super::compact)); where the encoding defers to DWARF,
//! the FDE it names in `__eh_frame` (checked to cover the address) through the CFI unwinder;
//! where an image has no entry for the address, an FDE found by scanning `__eh_frame`, then
//! frame pointers. Addresses outside every image (JIT code) are left by frame pointers.
//!
//! Compact unwind describes a function's body, where a call can be: a frame interrupted in
//! its prologue or epilogue has not built (or has already taken down) what the encoding
//! describes. For an interrupted frame the walker reads the code from there on ([`edge`])
//! and unwinds it as those instructions have the stack. Return addresses read from an arm64
//! stack are stripped of pointer-authentication bits.
//!
//! The host's architecture decides which encodings are read (x86_64 or arm64), since the
//! registers ([`Regs`]) are the host's.

pub mod edge;

use super::cfi::{self, ModuleSections, Section};
use super::compact::{CompactRegs, CompactRule, UnwindInfo};
use super::{fp, EndReason, ImageReader, Regs, StackReader, Step};

#[cfg(target_arch = "aarch64")]
use super::compact::arm64::decode;
#[cfg(target_arch = "x86_64")]
use super::compact::x86_64::decode;

/// A loaded Mach-O image's unwind sections.
#[derive(Debug, Clone, Copy)]
pub struct MachOSections<'a> {
    /// The image's load address (its Mach-O header): compact unwind offsets are from it.
    pub load_address: u64,
    /// `__TEXT,__unwind_info`, if the image has it.
    pub unwind_info: Option<&'a [u8]>,
    /// `__TEXT,__eh_frame` at its address in the process, if the image has it.
    pub eh_frame: Option<Section<'a>>,
}

/// Where the unwind sections for an address are.
pub trait ImageLookup {
    /// The sections of the image containing `avma`, or `None` if no known image does.
    ///
    /// # Signal safety
    /// Implementations used by the sampler take no lock a suspended thread may hold.
    fn sections(&self, avma: u64) -> Option<MachOSections<'_>>;
}

/// Unwinds from `regs` into `frames` (see [`crate::unwind`] for the address convention) with
/// the images `images` finds; code bytes (for a frame size kept in an instruction, and the
/// prologue and epilogue checks) are read through `code`. Returns the number of frames and
/// how the walk ended.
///
/// # Signal safety
/// Async-signal-safe if `stack`, `images` and `code` are: no allocation, at most
/// `frames.len()` steps.
pub fn walk<S, L, I>(
    regs: &Regs,
    stack: &mut S,
    images: &L,
    code: &I,
    frames: &mut [u64],
) -> (usize, EndReason)
where
    S: StackReader + ?Sized,
    L: ImageLookup + ?Sized,
    I: ImageReader + ?Sized,
{
    super::walk_frames(
        regs,
        stack,
        frames,
        0,
        |regs, lookup, interrupted, stack| step(regs, lookup, interrupted, stack, images, code),
    )
}

/// Unwinds one frame whose code is at `lookup`: `regs` become the caller's.
///
/// # Signal safety
/// As [`walk`].
pub fn step<S, L, I>(
    regs: &mut Regs,
    lookup: u64,
    interrupted: bool,
    stack: &S,
    images: &L,
    code: &I,
) -> Result<Step, EndReason>
where
    S: StackReader + ?Sized,
    L: ImageLookup + ?Sized,
    I: ImageReader + ?Sized,
{
    let Some(image) = images.sections(lookup) else {
        return fp::step_without_unwind_info(regs, stack);
    };
    let entry = match (image.unwind_info, lookup.checked_sub(image.load_address)) {
        (Some(info), Some(offset)) => match u32::try_from(offset) {
            Ok(offset) => UnwindInfo::parse(info)?
                .lookup(offset)?
                .filter(|e| e.function <= offset && offset < e.end),
            Err(_) => None,
        },
        _ => None,
    };
    let Some(entry) = entry else {
        return dwarf_or_frame_pointer(regs, lookup, stack, image.eh_frame, None);
    };
    let rule = decode(entry.encoding).ok_or(EndReason::BadUnwindInfo)?;
    let function = image.load_address + entry.function as u64;
    match rule {
        CompactRule::Dwarf { fde_offset } => {
            dwarf_or_frame_pointer(regs, lookup, stack, image.eh_frame, Some(fde_offset))
        }
        // A function the linker knows but without unwind info: on x86_64, the leaves that
        // touch no stack. Interrupted, it most likely is one (its return address is where the
        // call left it); calling, it must keep a frame pointer.
        CompactRule::None => match dwarf_step(regs, lookup, stack, image.eh_frame, None) {
            Some(step) => step,
            None if interrupted => compact_step(ON_ENTRY, regs, stack, code, function, true),
            None => fp::step_without_unwind_info(regs, stack),
        },
        rule => {
            let rule = match interrupted {
                true => at_edge(lookup, function, rule, code).unwrap_or(rule),
                false => rule,
            };
            compact_step(rule, regs, stack, code, function, interrupted)
        }
    }
}

/// The rule at a function's first instruction (the host's architecture).
#[cfg(target_arch = "x86_64")]
const ON_ENTRY: CompactRule = edge::X86_64_ENTRY;
#[cfg(target_arch = "aarch64")]
const ON_ENTRY: CompactRule = edge::ARM64_ENTRY;

/// The rule for an interrupted frame whose stack is not (or no longer) what its encoding's
/// `rule` describes: at the function's first instruction, or in a prologue or epilogue that
/// [`edge`] recognizes from the instructions. `None` elsewhere, or if the code cannot be
/// read. (The instructions decide more than the entry's start: the linker merges
/// neighbouring functions with equal encodings into one entry.)
///
/// # Signal safety
/// Async-signal-safe: a bounded number of 4-byte code reads.
fn at_edge<I: ImageReader + ?Sized>(
    pc: u64,
    function: u64,
    rule: CompactRule,
    code: &I,
) -> Option<CompactRule> {
    if pc == function {
        return Some(ON_ENTRY);
    }
    #[cfg(target_arch = "x86_64")]
    return edge::x86_64(pc, rule.resolved(code, function).ok()?, |at, buf| {
        code.read(at, buf)
    });
    // arm64 prologues and epilogues are told by their instructions alone.
    #[cfg(target_arch = "aarch64")]
    let _ = rule;
    #[cfg(target_arch = "aarch64")]
    return edge::arm64(pc, |at| {
        let mut b = [0u8; 4];
        code.read(at, &mut b).then(|| u32::from_le_bytes(b))
    });
}

/// Applies a compact rule to `regs`.
///
/// # Signal safety
/// Async-signal-safe.
fn compact_step<S, I>(
    rule: CompactRule,
    regs: &mut Regs,
    stack: &S,
    code: &I,
    function: u64,
    interrupted: bool,
) -> Result<Step, EndReason>
where
    S: StackReader + ?Sized,
    I: ImageReader + ?Sized,
{
    let mut c = CompactRegs {
        ip: regs.ip(),
        sp: regs.sp(),
        fp: regs.fp(),
        lr: if cfg!(target_arch = "aarch64") {
            regs.get(Regs::RA).unwrap_or(0)
        } else {
            0
        },
    };
    let step = rule.apply(&mut c, stack, code, function, interrupted)?;
    regs.set(Regs::IP, Regs::return_address(c.ip));
    regs.set(Regs::SP, c.sp);
    regs.set(Regs::FP, c.fp);
    Ok(step)
}

/// [`dwarf_step`], else (no FDE covers `pc`) frame pointers.
///
/// # Signal safety
/// As [`dwarf_step`].
fn dwarf_or_frame_pointer<S: StackReader + ?Sized>(
    regs: &mut Regs,
    pc: u64,
    stack: &S,
    eh_frame: Option<Section<'_>>,
    fde_offset: Option<u32>,
) -> Result<Step, EndReason> {
    dwarf_step(regs, pc, stack, eh_frame, fde_offset)
        .unwrap_or_else(|| fp::step_without_unwind_info(regs, stack))
}

/// Unwinds by `__eh_frame`: the FDE at `fde_offset` if given and it covers `pc`, else one
/// found by scanning the section; `None` (registers untouched) if none covers it.
///
/// # Signal safety
/// Async-signal-safe: the scan is bounded by [`cfi::MAX_SCAN`] entries (a Mach-O image's
/// `__eh_frame` holds FDEs only for the functions compact unwind cannot describe).
fn dwarf_step<S: StackReader + ?Sized>(
    regs: &mut Regs,
    pc: u64,
    stack: &S,
    eh_frame: Option<Section<'_>>,
    fde_offset: Option<u32>,
) -> Option<Result<Step, EndReason>> {
    let eh_frame = eh_frame?;
    let named = fde_offset
        .and_then(|at| cfi::cie_fde::parse_fde(eh_frame, at as usize).ok())
        .filter(|f| f.pc_begin <= pc && pc < f.pc_end);
    let fde = match named {
        Some(fde) => fde,
        None => {
            let sections = ModuleSections {
                eh_frame_hdr: None,
                eh_frame: Some(eh_frame),
                compiled: None,
            };
            match cfi::find_fde(&sections, pc) {
                Ok(found) => found?,
                Err(e) => return Some(Err(e.into())),
            }
        }
    };
    Some(
        cfi::program::row_at(eh_frame, &fde, pc)
            .and_then(|row| cfi::apply_row(eh_frame, &fde, &row, regs, stack))
            .map_err(EndReason::from),
    )
}
