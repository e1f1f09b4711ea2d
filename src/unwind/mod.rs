//! Stack unwinding: safe code over a [`StackReader`], so the same walker runs inside the
//! signal handler (over the live stack, bounds-checked by `sys`) and in tests and fuzz targets
//! (over byte slices).
//!
//! Output convention, shared by every walker: `frames[0]` is the interrupted instruction
//! address exactly; every later entry is a *lookup address*, the return address minus one, so
//! that it falls inside the call instruction and symbolizes to the calling line. The frame
//! interrupted by a signal (the caller of a signal trampoline) is exact too.
//!
//! [`walk()`] is the hybrid walker the sampler uses: [`cfi`] (`.eh_frame`) where an FDE covers
//! the address, frame pointers ([`fp`]) where none does, with a [`RuleCache`] for speed.
//!
//! What differs between architectures lives in a module per architecture (`x86_64`,
//! `aarch64`): the registers' DWARF numbers (used by [`Regs`]) and the compact unwind rules
//! ([`Rule`]). The CFI parser, the walkers and the cache are shared.

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
pub mod cfi;
pub mod compact;
pub mod compiled;
pub mod fp;
pub mod macho;
#[cfg(target_arch = "x86_64")]
pub mod pe;
mod regs;
// The rule cache lives in memory mapped by the capture backend.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    windows,
    target_os = "macos"
))]
pub mod rule;
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    windows,
    target_os = "macos"
))]
pub mod walk;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;

#[cfg(target_arch = "aarch64")]
use aarch64 as arch;
pub use arch::Rule;
pub use regs::Regs;
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    windows,
    target_os = "macos"
))]
pub use rule::RuleCache;
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    windows,
    target_os = "macos"
))]
pub use walk::{walk, walk_above, CodeLookup, NoCode};
#[cfg(target_arch = "x86_64")]
use x86_64 as arch;

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("vignette has no unwinder for this architecture yet: x86_64 and aarch64 only");

use serde::{Deserialize, Serialize};

/// The walk shared by every unwinder: records `regs.ip()`, then calls `step` for each frame
/// (with the frame's lookup address and whether it was interrupted rather than calling) until
/// it reports the root or an error, a zero return address ends the stack, or `frames` is
/// full. Each step must move the stack pointer up (stacks grow down), except across a signal
/// frame, so a walk cannot loop. See the module docs for the address convention.
///
/// Frames whose stack pointer is at or below `above_sp` are walked through but not recorded:
/// a thread walking its own stack leaves out the frames of the code doing the walk (0: every
/// frame is recorded).
///
/// # Signal safety
/// Async-signal-safe if `stack` and `step` are: at most `frames.len()` recorded frames, and
/// every step moves up the stack.
pub(crate) fn walk_frames<S, F>(
    regs: &Regs,
    stack: &mut S,
    frames: &mut [u64],
    above_sp: u64,
    mut step: F,
) -> (usize, EndReason)
where
    S: StackReader + ?Sized,
    F: FnMut(&mut Regs, u64, bool, &S) -> Result<Step, EndReason>,
{
    let Some(first) = frames.first_mut() else {
        return (0, EndReason::DepthLimit);
    };
    let mut n = 0;
    if regs.sp() > above_sp {
        *first = regs.ip();
        n = 1;
    }
    let mut regs = *regs;
    let mut lookup = regs.ip();
    // Whether the frame being unwound was interrupted (the first one, or one a signal frame
    // led to) rather than calling: only such a frame may have its return address still in a
    // register (an aarch64 leaf), and so share its caller's stack pointer.
    let mut interrupted = true;
    loop {
        let sp = regs.sp();
        let signal_frame = match step(&mut regs, lookup, interrupted, stack) {
            Ok(Step::Caller { signal_frame }) => signal_frame,
            Ok(Step::Root) => return (n, EndReason::Root),
            Err(end) => return (n, end),
        };
        let ip = regs.ip();
        if ip == 0 {
            return (n, EndReason::Root);
        }
        // Stacks grow down: the caller's frame is above, except across a signal frame, where
        // the handler may have run on an alternate stack. Each step moves up, so a walk
        // cannot loop.
        let moved = regs.sp() > sp || (interrupted && regs.sp() == sp);
        if !moved && !signal_frame {
            return (n, EndReason::BadUnwindInfo);
        }
        interrupted = signal_frame;
        if signal_frame {
            stack.switch_stack(regs.sp());
        }
        // After a signal frame the caller was interrupted, not calling: its address is exact.
        lookup = if signal_frame { ip } else { ip - 1 };
        if regs.sp() <= above_sp {
            continue;
        }
        let Some(slot) = frames.get_mut(n) else {
            return (n, EndReason::DepthLimit);
        };
        *slot = lookup;
        n += 1;
    }
}

/// Largest offset a compact rule ([`Rule`]) holds.
pub(crate) const MAX_RULE_OFFSET: u16 = 0x7fff;

/// A compact rule in 32 bits, as every architecture packs its [`Rule`]: a 2-bit kind (0 the
/// root) and two offsets of at most [`MAX_RULE_OFFSET`].
///
/// # Signal safety
/// Async-signal-safe.
pub(crate) fn pack_rule(kind: u32, a: u16, b: u16) -> u32 {
    kind << 30 | ((a & MAX_RULE_OFFSET) as u32) << 15 | (b & MAX_RULE_OFFSET) as u32
}

/// The (kind, a, b) [`pack_rule`] packed into `v`.
///
/// # Signal safety
/// Async-signal-safe.
pub(crate) fn unpack_rule(v: u32) -> (u32, u16, u16) {
    (v >> 30, ((v >> 15) & 0x7fff) as u16, (v & 0x7fff) as u16)
}

/// The outcome of unwinding one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The registers now hold the caller's; `signal_frame` when the unwound frame was a signal
    /// trampoline (then the caller's instruction pointer is exact, not a return address).
    Caller {
        /// Whether the unwound frame was a signal frame.
        signal_frame: bool,
    },
    /// This is the outermost frame (registers unchanged).
    Root,
}

/// How the signal handler walks stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unwinder {
    /// `.eh_frame` CFI where it covers the code, frame pointers where it does not (default).
    #[default]
    Cfi,
    /// Frame pointers only: fast, but complete only for code built with frame pointers.
    FramePointers,
}

/// Memory access for unwinders: an 8-byte read that fails instead of faulting.
///
/// # Signal safety
/// Implementations used by the sampler are async-signal-safe; see `sys::stack`.
pub trait StackReader {
    /// The little-endian `u64` at `addr`, or `None` if `addr..addr + 8` is not readable.
    fn read_u64(&self, addr: u64) -> Option<u64>;

    /// Called when unwinding crosses a signal frame to a stack pointer that may lie on another
    /// stack (the handler ran on an alternate signal stack): a reader bounded to one stack may
    /// move its bounds to the stack holding `sp`. The default does nothing.
    fn switch_stack(&mut self, sp: u64) {
        let _ = sp;
    }
}

/// Stack bytes copied from address `base`; for tests and fuzzing.
#[derive(Debug, Clone, Copy)]
pub struct SliceStack<'a> {
    /// Address of `bytes[0]`.
    pub base: u64,
    /// The stack contents.
    pub bytes: &'a [u8],
}

impl SliceStack<'_> {
    /// The `u64` at `addr`, if inside the copy.
    pub fn read(&self, addr: u64) -> Option<u64> {
        self.read_u64(addr)
    }
}

impl StackReader for SliceStack<'_> {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        let off = usize::try_from(addr.checked_sub(self.base)?).ok()?;
        let b = self.bytes.get(off..off.checked_add(8)?)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }
}

/// Memory of loaded modules (unwind info and code), read without faulting.
pub trait ImageReader {
    /// Fills `buf` with the bytes at `avma`; `false` if any of them is unreadable.
    ///
    /// # Signal safety
    /// Implementations used by the sampler must not take a lock a suspended thread may hold.
    fn read(&self, avma: u64, buf: &mut [u8]) -> bool;
}

/// An image held in a byte slice (`bytes[0]` at `base`), for tests and fuzzing.
#[derive(Debug, Clone, Copy)]
pub struct SliceImage<'a> {
    /// Address of `bytes[0]`.
    pub base: u64,
    /// The image as loaded (sections at their virtual addresses).
    pub bytes: &'a [u8],
}

impl ImageReader for SliceImage<'_> {
    fn read(&self, avma: u64, buf: &mut [u8]) -> bool {
        let Some(off) = avma
            .checked_sub(self.base)
            .and_then(|o| usize::try_from(o).ok())
        else {
            return false;
        };
        match off
            .checked_add(buf.len())
            .and_then(|end| self.bytes.get(off..end))
        {
            Some(src) => {
                buf.copy_from_slice(src);
                true
            }
            None => false,
        }
    }
}

/// Records only the interrupted address (when there is room), ending the walk with `end`;
/// returns the frames written and how the walk ended.
///
/// # Signal safety
/// Async-signal-safe: one register read and one write.
pub(crate) fn only_ip(regs: &Regs, frames: &mut [u64], end: EndReason) -> (usize, EndReason) {
    match frames.first_mut() {
        Some(f) => {
            *f = regs.ip();
            (1, end)
        }
        None => (0, EndReason::DepthLimit),
    }
}

/// How a stack walk ended. Stored per sample in the profile; the numbering is part of the
/// format (see `profiles/FORMAT.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
    /// The frame-pointer walker met code that keeps no frame pointer (a zero frame pointer in
    /// the interrupted registers), so the walk stopped short of the root.
    NoFramePointer = 7,
    /// The stack could not be read safely at this moment (no fault-recovering load was
    /// possible and the system that reads memory without faulting, `process_vm_readv`, was
    /// refused): only the interrupted address was recorded.
    NoSafeRead = 8,
}

impl EndReason {
    /// Every reason, in format order.
    pub const ALL: [EndReason; 9] = [
        EndReason::Root,
        EndReason::DepthLimit,
        EndReason::BadFramePointer,
        EndReason::OutOfBounds,
        EndReason::NoStackBounds,
        EndReason::NoUnwindInfo,
        EndReason::BadUnwindInfo,
        EndReason::NoFramePointer,
        EndReason::NoSafeRead,
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
            EndReason::NoFramePointer => "code without frame pointer",
            EndReason::NoSafeRead => "stack not safely readable",
        }
    }
}
