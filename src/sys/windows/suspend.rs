//! Stopping a thread for a sample: suspend it, read its registers, copy the live part of its
//! stack, resume it. The unwinding happens afterwards, on the copy.
//!
//! # Suspension safety
//! Between `SuspendThread` and `ResumeThread` the suspended thread may hold any user-mode
//! lock (the process heap's, the loader's, the C runtime's): [`capture`] calls only system
//! calls that take none (`GetThreadContext`, `ReadProcessMemory` on this process), touches
//! only memory passed to it, allocates nothing and cannot panic, so it cannot wait on the
//! thread it stopped.

use super::api;
use super::memory;
use super::threads::Handle;

/// Offsets in the TEB (its `NT_TIB`): the stack's upper end and its committed lower end.
const TEB_STACK_BASE: u64 = 0x08;

/// A thread's registers and where its stack copy ends.
#[derive(Debug, Clone, Copy)]
pub struct Captured {
    /// rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8-r15 (Windows' numbering).
    pub gpr: [u64; 16],
    /// The interrupted instruction.
    pub rip: u64,
    /// Bytes of the stack copied, from rsp.
    pub copied: usize,
    /// The thread's labels, read while it was suspended.
    pub labels: crate::labels::LabelSet,
}

impl Captured {
    /// The registers, by DWARF number, for the unwinder.
    pub fn regs(&self) -> crate::unwind::Regs {
        let mut regs = crate::unwind::Regs::default();
        for (reg, &value) in self.gpr.iter().enumerate() {
            regs.set(crate::unwind::pe::dwarf(reg as u8), value);
        }
        regs.set(crate::unwind::Regs::IP, self.rip);
        regs
    }
}

pub use crate::sys::suspended::CaptureError;

/// A thread to sample: its id, an open handle with the rights [`capture`] needs, and where
/// its TEB is. Plain data (kept in the sampler's preallocated table): close it with
/// [`Target::close`].
#[derive(Debug, Clone, Copy)]
pub struct Target {
    tid: i32,
    handle: usize,
    teb: u64,
}

// SAFETY: integers only; all zero is "no thread".
unsafe impl crate::sys::mem::Zeroed for Target {}

impl Target {
    /// Makes this the target for thread `tid`, opening a handle unless it holds one for
    /// `tid` already; `false` if the thread cannot be opened (it has exited).
    pub fn open(&mut self, tid: i32) -> bool {
        if self.handle != 0 && self.tid == tid {
            return true;
        }
        self.close();
        let Some(h) = Handle::open(
            tid,
            api::THREAD_SUSPEND_RESUME | api::THREAD_GET_CONTEXT | api::THREAD_QUERY_INFORMATION,
        ) else {
            return false;
        };
        let teb = teb(&h);
        *self = Target {
            tid,
            handle: h.into_raw() as usize,
            teb,
        };
        true
    }

    /// Closes the handle, if open.
    pub fn close(&mut self) {
        if self.handle != 0 {
            drop(Handle::from_raw(self.handle as api::HANDLE));
        }
        *self = Target {
            tid: 0,
            handle: 0,
            teb: 0,
        };
    }

    /// [`capture`] of this thread; [`CaptureError::Gone`] if no handle is open.
    pub fn capture(&self, stack: &mut [u8]) -> Result<(Captured, u64), CaptureError> {
        if self.handle == 0 {
            return Err(CaptureError::Gone);
        }
        capture(self.handle as api::HANDLE, self.tid, self.teb, stack)
    }

    /// The thread's CPU time (see [`super::time::thread_cpu_ns`]), through the open handle.
    pub fn cpu_ns(&self) -> Option<u64> {
        if self.handle == 0 {
            return None;
        }
        super::time::cpu_ns_of(self.handle as api::HANDLE)
    }
}

/// The address of thread `h`'s TEB (fixed for its life), or 0.
fn teb(h: &Handle) -> u64 {
    let mut info = api::THREAD_BASIC_INFORMATION {
        ExitStatus: 0,
        TebBaseAddress: core::ptr::null_mut(),
        ClientId: [0; 2],
        AffinityMask: 0,
        Priority: 0,
        BasePriority: 0,
    };
    // SAFETY: `info` is writable for the size passed.
    let status = unsafe {
        api::NtQueryInformationThread(
            h.0,
            api::THREAD_BASIC_INFORMATION_CLASS,
            (&mut info as *mut api::THREAD_BASIC_INFORMATION).cast(),
            core::mem::size_of::<api::THREAD_BASIC_INFORMATION>() as u32,
            core::ptr::null_mut(),
        )
    };
    if status < 0 {
        0
    } else {
        info.TebBaseAddress as u64
    }
}

/// Suspends thread `h` (an open handle; its TEB is at `teb`), reads its registers, copies its stack from
/// rsp up to the stack's base (at most `stack.len()` bytes) into `stack`, and resumes it.
/// Returns how long the thread was stopped, in [`super::time::monotonic_ns`] nanoseconds,
/// with what was captured.
///
/// # Suspension safety
/// See the module docs.
fn capture(
    h: api::HANDLE,
    tid: i32,
    teb: u64,
    stack: &mut [u8],
) -> Result<(Captured, u64), CaptureError> {
    let t0 = super::time::monotonic_ns();
    // SAFETY: an open thread handle; a failure (thread gone) returns u32::MAX.
    if unsafe { api::SuspendThread(h) } == u32::MAX {
        return Err(CaptureError::Gone);
    }
    let result = while_suspended(h, tid, teb, stack);
    // SAFETY: we suspended it just above.
    unsafe { api::ResumeThread(h) };
    let stopped = super::time::monotonic_ns().saturating_sub(t0);
    result.map(|c| (c, stopped))
}

/// The part of [`capture`] that runs while the thread is suspended.
fn while_suspended(
    h: api::HANDLE,
    tid: i32,
    teb: u64,
    stack: &mut [u8],
) -> Result<Captured, CaptureError> {
    // SAFETY: CONTEXT is plain integers; all-zero is valid.
    let mut ctx: api::CONTEXT = unsafe { core::mem::zeroed() };
    ctx.ContextFlags = api::CONTEXT_CONTROL | api::CONTEXT_INTEGER;
    // SAFETY: a 16-byte aligned CONTEXT with its flags set; GetThreadContext waits until the
    // suspension has taken effect.
    if unsafe { api::GetThreadContext(h, &mut ctx) } == 0 {
        return Err(CaptureError::NoContext);
    }
    let rsp = ctx.gpr[4];
    let mut base = [0u8; 8];
    let stack_base = if teb != 0 && memory::read(teb + TEB_STACK_BASE, &mut base) {
        u64::from_le_bytes(base)
    } else {
        0
    };
    let len = crate::sys::suspended::copy_stack(rsp, stack_base, stack, memory::read);
    Ok(Captured {
        gpr: ctx.gpr,
        rip: ctx.Rip,
        copied: len,
        labels: crate::labels::of_suspended_thread(tid),
    })
}
