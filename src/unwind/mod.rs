//! Stack unwinding: safe code over a [`StackReader`], so the same walker runs inside the
//! signal handler (over the live stack, bounds-checked by `sys`) and in tests and fuzz targets
//! (over byte slices).
//!
//! Output convention, shared by every walker: `frames[0]` is the interrupted instruction
//! address exactly; every later entry is a *lookup address*, the return address minus one, so
//! that it falls inside the call instruction and symbolizes to the calling line.

pub mod fp;

use serde::{Deserialize, Serialize};

/// The registers an unwinder needs (x86_64: the instruction, stack and frame pointers, and the
/// callee-saved registers that CFI rules may restore).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Regs {
    /// Instruction pointer (`rip`).
    pub ip: u64,
    /// Stack pointer (`rsp`).
    pub sp: u64,
    /// Frame pointer (`rbp`).
    pub bp: u64,
    /// `rbx`.
    pub bx: u64,
    /// `r12`.
    pub r12: u64,
    /// `r13`.
    pub r13: u64,
    /// `r14`.
    pub r14: u64,
    /// `r15`.
    pub r15: u64,
}

/// Memory access for unwinders: an 8-byte read that fails instead of faulting.
///
/// # Signal safety
/// Implementations used by the sampler are async-signal-safe; see `sys::linux::stack`.
pub trait StackReader {
    /// The little-endian `u64` at `addr`, or `None` if `addr..addr + 8` is not readable.
    fn read_u64(&self, addr: u64) -> Option<u64>;
}

/// Stack bytes copied from address `base`; for tests and fuzzing.
#[derive(Debug, Clone, Copy)]
pub struct SliceStack<'a> {
    /// Address of `bytes[0]`.
    pub base: u64,
    /// The stack contents.
    pub bytes: &'a [u8],
}

impl StackReader for SliceStack<'_> {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        let off = usize::try_from(addr.checked_sub(self.base)?).ok()?;
        let b = self.bytes.get(off..off.checked_add(8)?)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }
}

/// How a stack walk ended. Stored per sample in the profile; the numbering is part of the
/// format (see `profiles/FORMAT.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum EndReason {
    /// The walk reached the outermost frame (a zero frame pointer or return address).
    Root = 0,
    /// The frame buffer (`max_frames`) filled up.
    DepthLimit = 1,
    /// A frame pointer was misaligned or did not move towards the stack's base.
    BadFramePointer = 2,
    /// A read fell outside the sampled thread's stack.
    OutOfBounds = 3,
    /// The thread's stack bounds were unknown, so only the interrupted address was recorded.
    NoStackBounds = 4,
    /// No unwind information covers an address and frame pointers could not continue.
    NoUnwindInfo = 5,
    /// Unwind information was malformed.
    BadUnwindInfo = 6,
}

impl EndReason {
    /// Every reason, in format order.
    pub const ALL: [EndReason; 7] = [
        EndReason::Root,
        EndReason::DepthLimit,
        EndReason::BadFramePointer,
        EndReason::OutOfBounds,
        EndReason::NoStackBounds,
        EndReason::NoUnwindInfo,
        EndReason::BadUnwindInfo,
    ];

    /// The reason for a stored byte, if valid.
    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.get(v as usize).copied()
    }

    /// A short lowercase name for reports.
    pub fn name(self) -> &'static str {
        match self {
            EndReason::Root => "root",
            EndReason::DepthLimit => "depth limit",
            EndReason::BadFramePointer => "bad frame pointer",
            EndReason::OutOfBounds => "read out of stack bounds",
            EndReason::NoStackBounds => "unknown stack bounds",
            EndReason::NoUnwindInfo => "no unwind info",
            EndReason::BadUnwindInfo => "bad unwind info",
        }
    }
}
