//! aarch64 Linux.

use core::ffi::c_void;

use super::super::fault_guard::{chain, LOAD_PC};
use super::Loaded;
use crate::unwind::Regs;

/// The interrupted thread's registers: x0-x30, sp and pc.
///
/// # Safety
/// `uctx` must be the `ucontext_t` pointer the kernel passed to a `SA_SIGINFO` handler.
///
/// # Signal safety
/// Async-signal-safe: reads the ucontext.
pub unsafe fn regs(uctx: *const c_void) -> Regs {
    // SAFETY: the caller passes the kernel's ucontext_t.
    let m = unsafe { &(*uctx.cast::<libc::ucontext_t>()).uc_mcontext };
    let mut r = [0u64; Regs::COUNT];
    for (dst, src) in r.iter_mut().zip(m.regs.iter()) {
        *dst = *src;
    }
    let mut regs = Regs::from_array(r);
    regs.set(Regs::SP, m.sp);
    regs.set(Regs::IP, m.pc);
    regs
}

/// The lowest address of the signal frame the kernel built for `uctx` (the `siginfo` just
/// below the `ucontext`) and the end of the `ucontext`, whose reserved area holds the
/// floating-point and vector state (a larger SVE state is covered by `AT_MINSIGSTKSZ`).
///
/// # Safety
/// `uctx` must be the `ucontext_t` pointer the kernel passed to a `SA_SIGINFO` handler.
///
/// # Signal safety
/// Async-signal-safe: pointer arithmetic only.
pub unsafe fn signal_frame(uctx: *const c_void) -> (u64, Option<u64>) {
    let uc = uctx as u64;
    let siginfo = core::mem::size_of::<libc::siginfo_t>() as u64;
    let ucontext = core::mem::size_of::<libc::ucontext_t>() as u64;
    (
        uc.saturating_sub(siginfo),
        Some(uc.saturating_add(ucontext)),
    )
}

/// The bytes of the load instruction in [`guarded_load`] (`ldr x0, [x0]`).
pub const LOAD_INSN: &[u8] = &[0x00, 0x00, 0x40, 0xf9];

/// Reads the 8 bytes at `addr`. With `scratch_sp` non-zero, the stack pointer is moved there
/// for the one load instruction (see the module docs of `fault_guard`), so a fault's signal
/// frame goes below it. The only instruction in this function that touches memory is the load.
///
/// # Safety
/// The guard must be armed (`fault_guard::armed`) and `scratch_sp` zero or a 16-byte aligned
/// address with room below it for a signal frame on a stack the caller owns.
///
/// # Signal safety
/// Async-signal-safe: no memory is touched but the load.
#[unsafe(naked)]
pub unsafe extern "C" fn guarded_load(addr: u64, scratch_sp: u64) -> Loaded {
    core::arch::naked_asm!(
        "mov x9, sp",
        "cmp x1, #0",
        "csel x1, x9, x1, eq",
        "mov sp, x1",
        "ldr x0, [x0]", // the load: LOAD_INSN, at LOAD_PC
        "mov sp, x9",
        "mov x1, #1",
        "ret",
    )
}

/// Where a faulted [`guarded_load`] resumes: the registers are as at the fault, so `x9` holds
/// the caller's stack pointer and `x30` the return address.
#[unsafe(naked)]
unsafe extern "C" fn recover() {
    core::arch::naked_asm!("mov sp, x9", "mov x0, #0", "mov x1, #0", "ret")
}

/// `uc_mcontext.pc` inside `ucontext_t`.
const PC_OFFSET: usize = core::mem::offset_of!(libc::ucontext_t, uc_mcontext)
    + core::mem::offset_of!(libc::mcontext_t, pc);

/// The fault handler: resumes a faulted [`guarded_load`] at [`recover`], passes anything
/// else to `fault_guard::chain`. Uses no stack beyond the kernel's signal frame on its fast
/// path, and only the scratch registers x9 and x10.
///
/// # Signal safety
/// This is a signal handler; it touches only the ucontext and `LOAD_PC`.
#[unsafe(naked)]
pub extern "C" fn on_fault(_sig: i32, _info: *mut libc::siginfo_t, _uctx: *mut c_void) {
    core::arch::naked_asm!(
        "ldr x9, [x2, #{pc}]",
        "adrp x10, {load_pc}",
        "ldr x10, [x10, :lo12:{load_pc}]",
        "cmp x9, x10",
        "b.ne 2f",
        "adrp x10, {recover}",
        "add x10, x10, :lo12:{recover}",
        "str x10, [x2, #{pc}]",
        "ret",
        "2:",
        "b {chain}",
        pc = const PC_OFFSET,
        load_pc = sym LOAD_PC,
        recover = sym recover,
        chain = sym chain,
    )
}

/// Calls `f(arg, sp)` with the stack pointer set to `top`, then restores it; `sp` is the
/// stack pointer it had before.
///
/// # Safety
/// `top` must be 16-byte aligned, the memory below it must be a stack that nobody else uses
/// and that is large enough for `f`, and `f` must not unwind.
///
/// # Signal safety
/// Async-signal-safe if `f` is.
pub unsafe fn run_on_stack(top: u64, f: extern "C" fn(*mut c_void, u64), arg: *mut c_void) {
    // SAFETY: the caller's contract; x20 is callee-saved, so it survives the call and brings
    // back the original stack pointer; all caller-saved registers (x30 included) are declared
    // clobbered.
    unsafe {
        core::arch::asm!(
            "mov x20, sp",
            "mov x1, sp",
            "mov sp, {top}",
            "blr {f}",
            "mov sp, x20",
            top = in(reg) top,
            f = in(reg) f,
            in("x0") arg,
            out("x1") _,
            out("x20") _,
            clobber_abi("C"),
        );
    }
}
