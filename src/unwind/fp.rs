//! The frame-pointer walker.
//!
//! A function built with frame pointers keeps the frame-pointer register ([`Regs::FP`]: `rbp`
//! on x86_64) pointing at the saved caller's frame pointer, with the return address just above
//! it. The walk follows that chain and trusts nothing:
//! every frame must be 8-byte aligned, lie inside the reader's bounds, and sit strictly above
//! the previous one (stacks grow down), so a corrupted `rbp` ends the walk instead of looping or
//! faulting.

use super::{EndReason, Regs, StackReader, Step};

/// Walks the frame-pointer chain from `regs` into `frames` (see the module docs of
/// [`crate::unwind`] for the address convention). Returns the number of frames written and how
/// the walk ended. Writes nothing if `frames` is empty.
///
/// # Signal safety
/// Async-signal-safe if `reader` is: no allocation, no locks, no panics, bounded by
/// `frames.len()` iterations.
pub fn walk<R: StackReader + ?Sized>(
    regs: &Regs,
    reader: &R,
    frames: &mut [u64],
) -> (usize, EndReason) {
    let Some(first) = frames.first_mut() else {
        return (0, EndReason::DepthLimit);
    };
    *first = regs.ip();
    if regs.fp() == 0 {
        // The interrupted code keeps no frame pointer (a thread's very first instruction is
        // the only other place with a zero rbp): the chain cannot start, which is not the root.
        return (1, EndReason::NoFramePointer);
    }
    let mut n = 1;
    let mut regs = *regs;
    loop {
        match step(&mut regs, reader) {
            Ok(Step::Caller { .. }) => {}
            Ok(Step::Root) => return (n, EndReason::Root),
            Err(end) => return (n, end),
        }
        if regs.ip() == 0 {
            return (n, EndReason::Root);
        }
        let Some(slot) = frames.get_mut(n) else {
            return (n, EndReason::DepthLimit);
        };
        *slot = regs.ip() - 1;
        n += 1;
    }
}

/// [`step`] for code no unwind information covers: a frame pointer that does not lead on is
/// then [`EndReason::NoUnwindInfo`] (the code most likely keeps none), not a bad one.
///
/// # Signal safety
/// Async-signal-safe if `reader` is.
pub fn step_without_unwind_info<R: StackReader + ?Sized>(
    regs: &mut Regs,
    reader: &R,
) -> Result<Step, EndReason> {
    step(regs, reader).map_err(|e| match e {
        EndReason::BadFramePointer => EndReason::NoUnwindInfo,
        e => e,
    })
}

/// One frame-pointer step: `regs` become the caller's (rip, rsp and rbp). The frame must be
/// 8-byte aligned and at or above the stack pointer, so the chain only moves up the stack.
///
/// # Signal safety
/// Async-signal-safe if `reader` is.
pub fn step<R: StackReader + ?Sized>(regs: &mut Regs, reader: &R) -> Result<Step, EndReason> {
    let bp = regs.fp();
    if bp == 0 {
        return Ok(Step::Root);
    }
    if !bp.is_multiple_of(8) || bp < regs.sp() {
        return Err(EndReason::BadFramePointer);
    }
    let (Some(next_bp), Some(ra)) = (
        reader.read_u64(bp),
        bp.checked_add(8).and_then(|a| reader.read_u64(a)),
    ) else {
        return Err(EndReason::OutOfBounds);
    };
    regs.set(Regs::IP, Regs::return_address(ra));
    // The caller's frame lies strictly above this one.
    regs.set(Regs::SP, bp + 16);
    regs.set(Regs::FP, next_bp);
    Ok(Step::Caller {
        signal_frame: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unwind::SliceStack;

    const BASE: u64 = 0x7fff_0000;

    /// A stack of `words` u64s at BASE.
    fn stack(words: &[u64]) -> std::vec::Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    fn regs(bp: u64) -> Regs {
        Regs::new(0x1000, BASE, bp)
    }

    #[test]
    fn walks_a_well_formed_chain_to_the_root() {
        // Frame at BASE+16 -> frame at BASE+48 -> bp 0 (root).
        let bytes = stack(&[0, 0, BASE + 48, 0x2001, 0, 0, 0, 0x3001, 0, 0]);
        // word 6 (BASE+48) holds next bp = 0, word 7 its return address.
        let mut frames = [0u64; 8];
        let r = walk(
            &regs(BASE + 16),
            &SliceStack {
                base: BASE,
                bytes: &bytes,
            },
            &mut frames,
        );
        assert_eq!(r, (3, EndReason::Root));
        assert_eq!(&frames[..3], &[0x1000, 0x2000, 0x3000]);
    }

    #[test]
    fn a_zero_frame_pointer_in_the_interrupted_code_is_not_the_root() {
        let bytes = stack(&[0; 4]);
        let mut frames = [0u64; 8];
        let r = walk(
            &regs(0),
            &SliceStack {
                base: BASE,
                bytes: &bytes,
            },
            &mut frames,
        );
        assert_eq!(r, (1, EndReason::NoFramePointer));
        assert_eq!(frames[0], 0x1000);
    }

    #[test]
    fn stops_at_the_depth_limit() {
        let bytes = stack(&[0, 0, BASE + 48, 0x2001, 0, 0, 0, 0x3001]);
        let mut frames = [0u64; 2];
        let r = walk(
            &regs(BASE + 16),
            &SliceStack {
                base: BASE,
                bytes: &bytes,
            },
            &mut frames,
        );
        assert_eq!(r, (2, EndReason::DepthLimit));
        assert_eq!(
            walk(
                &regs(BASE),
                &SliceStack {
                    base: BASE,
                    bytes: &bytes
                },
                &mut []
            )
            .0,
            0
        );
    }

    #[test]
    fn a_corrupted_frame_pointer_ends_the_stack() {
        let s = SliceStack {
            base: BASE,
            bytes: &[0; 64],
        };
        let mut frames = [0u64; 8];
        // Misaligned.
        assert_eq!(
            walk(&regs(BASE + 3), &s, &mut frames),
            (1, EndReason::BadFramePointer)
        );
        // Below the stack pointer.
        assert_eq!(
            walk(&regs(BASE - 64), &s, &mut frames),
            (1, EndReason::BadFramePointer)
        );
        // Far outside the stack.
        assert_eq!(
            walk(&regs(0xdead_beef_0000), &s, &mut frames),
            (1, EndReason::OutOfBounds)
        );
        // Saved rbp points back down (a loop).
        let looped = stack(&[BASE, 0x2001, 0, 0]);
        let s = SliceStack {
            base: BASE,
            bytes: &looped,
        };
        assert_eq!(
            walk(&regs(BASE), &s, &mut frames),
            (2, EndReason::BadFramePointer)
        );
        // Saved rbp points to itself.
        assert_eq!(
            walk(&regs(BASE), &s, &mut frames).1,
            EndReason::BadFramePointer
        );
    }

    #[test]
    fn random_stacks_never_panic_and_stay_bounded() {
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..if cfg!(miri) { 50 } else { 2000 } {
            let words: std::vec::Vec<u64> = (0..64)
                .map(|_| match next() % 3 {
                    0 => BASE + (next() % 600),
                    1 => next(),
                    _ => 0,
                })
                .collect();
            let bytes = stack(&words);
            let mut frames = [0u64; 32];
            let bp = BASE + next() % 600;
            let (n, _) = walk(
                &regs(bp),
                &SliceStack {
                    base: BASE,
                    bytes: &bytes,
                },
                &mut frames,
            );
            assert!((1..=32).contains(&n));
        }
    }
}
