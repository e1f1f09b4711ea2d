//! The calling thread's own registers, for walking its own stack without a signal (the heap
//! sampler, [`crate::alloc`]).

use crate::unwind::Regs;

/// The instruction, stack and frame pointers where this call is inlined: a walk from them
/// starts in the calling function.
///
/// # Signal safety
/// Async-signal-safe: three register reads.
#[inline(always)]
pub fn regs() -> Regs {
    let (ip, sp, fp): (u64, u64, u64);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: reads registers into outputs; touches no memory and no flags.
    unsafe {
        core::arch::asm!(
            "lea {ip}, [rip]",
            "mov {sp}, rsp",
            "mov {fp}, rbp",
            ip = out(reg) ip,
            sp = out(reg) sp,
            fp = out(reg) fp,
            options(nomem, nostack, preserves_flags),
        );
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above.
    unsafe {
        core::arch::asm!(
            "adr {ip}, .",
            "mov {sp}, sp",
            "mov {fp}, x29",
            ip = out(reg) ip,
            sp = out(reg) sp,
            fp = out(reg) fp,
            options(nomem, nostack, preserves_flags),
        );
    }
    Regs::new(ip, sp, fp)
}

/// The stack pointer where this call is inlined: an address inside the calling function's
/// frame, above every frame it calls.
///
/// # Signal safety
/// Async-signal-safe: register reads.
#[inline(always)]
pub fn sp() -> u64 {
    regs().sp()
}
