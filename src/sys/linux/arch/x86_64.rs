//! x86_64 Linux.

use core::ffi::c_void;

use super::super::fault_guard::{chain, LOAD_PC};
use super::Loaded;
use crate::unwind::Regs;

/// The interrupted thread's registers.
///
/// # Safety
/// `uctx` must be the `ucontext_t` pointer the kernel passed to a `SA_SIGINFO` handler.
///
/// # Signal safety
/// Async-signal-safe: reads the ucontext.
pub unsafe fn regs(uctx: *const c_void) -> Regs {
    // SAFETY: the caller passes the kernel's ucontext_t.
    let g = unsafe { &(*uctx.cast::<libc::ucontext_t>()).uc_mcontext.gregs };
    let r = |i: i32| g.get(i as usize).map_or(0, |&v| v as u64);
    use libc::*;
    Regs::from_array([
        r(REG_RAX),
        r(REG_RDX),
        r(REG_RCX),
        r(REG_RBX),
        r(REG_RSI),
        r(REG_RDI),
        r(REG_RBP),
        r(REG_RSP),
        r(REG_R8),
        r(REG_R9),
        r(REG_R10),
        r(REG_R11),
        r(REG_R12),
        r(REG_R13),
        r(REG_R14),
        r(REG_R15),
        r(REG_RIP),
    ])
}

/// The lowest address of the signal frame the kernel built for `uctx` (the return address
/// below the `ucontext`), and the end of its floating-point state if the frame says where that
/// is (the fxsave area's software-reserved bytes hold its extended size).
///
/// # Safety
/// `uctx` must be the `ucontext_t` pointer the kernel passed to a `SA_SIGINFO` handler.
///
/// # Signal safety
/// Async-signal-safe: reads the signal frame.
pub unsafe fn signal_frame(uctx: *const c_void) -> (u64, Option<u64>) {
    // SAFETY: the caller passes the kernel's ucontext_t.
    let uc = unsafe { &*uctx.cast::<libc::ucontext_t>() };
    let frame_lo = (uctx as u64).saturating_sub(8);
    let fp = uc.uc_mcontext.fpregs as u64;
    if fp <= frame_lo {
        return (frame_lo, None);
    }
    // SAFETY: a non-null fpregs points to the fxsave area of this signal frame, which is at
    // least 512 bytes and mapped (the kernel just wrote it); offset 464 holds magic1 and
    // extended_size.
    let (magic1, extended) = unsafe {
        let sw = (fp as usize + 464) as *const u32;
        (sw.read_unaligned(), sw.add(1).read_unaligned())
    };
    let fp_bytes = if magic1 == 0x4650_5853 {
        extended as u64
    } else {
        512
    };
    (frame_lo, Some(fp + fp_bytes))
}

/// The bytes of the load instruction in [`guarded_load`] (`mov rax, [rdi]`).
pub const LOAD_INSN: &[u8] = &[0x48, 0x8b, 0x07];

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
        "mov r8, rsp",
        "test rsi, rsi",
        "cmovz rsi, r8",
        "mov rsp, rsi",
        "mov rax, qword ptr [rdi]", // the load: LOAD_INSN, at LOAD_PC
        "mov rsp, r8",
        "mov edx, 1",
        "ret",
    )
}

/// Where a faulted [`guarded_load`] resumes: the registers are as at the fault, so `r8` holds
/// the caller's stack pointer and the return address is on top of it.
#[unsafe(naked)]
unsafe extern "C" fn recover() {
    core::arch::naked_asm!("mov rsp, r8", "xor eax, eax", "xor edx, edx", "ret")
}

/// `uc_mcontext.gregs[REG_RIP]` inside `ucontext_t`.
const PC_OFFSET: usize =
    core::mem::offset_of!(libc::ucontext_t, uc_mcontext) + libc::REG_RIP as usize * 8;

/// The fault handler: resumes a faulted [`guarded_load`] at [`recover`], passes anything
/// else to `fault_guard::chain`. Uses no stack beyond the kernel's signal frame on its fast
/// path.
///
/// # Signal safety
/// This is a signal handler; it touches only the ucontext and `LOAD_PC`.
#[unsafe(naked)]
pub extern "C" fn on_fault(_sig: i32, _info: *mut libc::siginfo_t, _uctx: *mut c_void) {
    core::arch::naked_asm!(
        "mov rax, qword ptr [rdx + {pc}]",
        "cmp rax, qword ptr [rip + {load_pc}]",
        "jne 2f",
        "lea rax, [rip + {recover}]",
        "mov qword ptr [rdx + {pc}], rax",
        "ret",
        "2:",
        "jmp {chain}",
        pc = const PC_OFFSET,
        load_pc = sym LOAD_PC,
        recover = sym recover,
        chain = sym chain,
    )
}

/// Calls `f(arg, sp)` with the stack pointer set to `top`, then restores it; `sp` is the
/// stack pointer it had before (nothing below it is in use: this asm has no red zone).
///
/// # Safety
/// `top` must be 16-byte aligned, the memory below it must be a stack that nobody else uses
/// and that is large enough for `f`, and `f` must not unwind.
///
/// # Signal safety
/// Async-signal-safe if `f` is.
pub unsafe fn run_on_stack(top: u64, f: extern "C" fn(*mut c_void, u64), arg: *mut c_void) {
    // SAFETY: the caller's contract; r12 is callee-saved, so it survives the call and brings
    // back the original stack pointer; all caller-saved registers are declared clobbered.
    unsafe {
        core::arch::asm!(
            "mov r12, rsp",
            "mov rsi, rsp",
            "mov rsp, {top}",
            "call {f}",
            "mov rsp, r12",
            top = in(reg) top,
            f = in(reg) f,
            in("rdi") arg,
            out("rsi") _,
            out("r12") _,
            clobber_abi("C"),
        );
    }
}
