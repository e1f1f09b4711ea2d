//! Stopping a thread for a sample: suspend it, read its registers, copy the live part of its
//! stack, resume it. The unwinding happens afterwards, on the copy.
//!
//! # Suspension safety
//! Between `thread_suspend` and `thread_resume` the suspended thread may hold any user-mode
//! lock (malloc's, dyld's, libpthread's): [`Target::capture`] makes only Mach calls that take
//! none (`thread_get_state`, `mach_vm_read_overwrite` on this task), touches only memory
//! passed to it, allocates nothing and cannot panic, so it cannot wait on the thread it
//! stopped. Where the thread's stack ends is asked of libpthread when the target is opened,
//! never while it is suspended.

use super::{api, memory};
use crate::unwind::Regs;

/// A thread's registers and where its stack copy ends.
#[derive(Debug, Clone, Copy)]
pub struct Captured {
    /// The thread state as `thread_get_state` gave it.
    state: api::ThreadState,
    /// Bytes of the stack copied, from the stack pointer.
    pub copied: usize,
    /// The thread's labels, read while it was suspended.
    pub labels: crate::labels::LabelSet,
}

impl Captured {
    /// The registers, by DWARF number, for the unwinder (pointer-authentication bits, which
    /// arm64e code keeps in its saved pc, lr and fp, cleared).
    pub fn regs(&self) -> Regs {
        let mut regs = Regs::default();
        #[cfg(target_arch = "x86_64")]
        {
            // The state's order (rax, rbx, rcx, rdx, rdi, rsi, rbp, rsp, r8-r15, rip) by
            // DWARF number.
            const DWARF: [u16; 17] = [0, 3, 2, 1, 5, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
            for (&reg, &value) in DWARF.iter().zip(self.state.r.iter()) {
                regs.set(reg, value);
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            for (reg, &value) in self.state.x.iter().enumerate() {
                regs.set(reg as u16, value);
            }
            regs.set(Regs::FP, Regs::return_address(self.state.fp));
            regs.set(Regs::RA, Regs::return_address(self.state.lr));
            regs.set(Regs::SP, self.state.sp);
            regs.set(Regs::IP, Regs::return_address(self.state.pc));
        }
        regs
    }

    /// The stack pointer.
    fn sp(&self) -> u64 {
        #[cfg(target_arch = "x86_64")]
        return self.state.r[7];
        #[cfg(target_arch = "aarch64")]
        return self.state.sp;
    }
}

pub use crate::sys::suspended::CaptureError;

/// A thread to sample: its port name, a send right to it held while open (so the name
/// cannot come to mean another port), and where its stack ends. Plain data (kept in the
/// sampler's preallocated table): close it with [`Target::close`].
#[derive(Debug, Clone, Copy)]
pub struct Target {
    port: u32,
    held: bool,
    stack_top: u64,
}

// SAFETY: integers only; all zero is "no thread".
unsafe impl crate::sys::mem::Zeroed for Target {}

impl Target {
    /// Makes this the target for thread `tid`, taking a reference on its port unless it holds
    /// one for `tid` already; `false` if the port no longer names a live thread.
    ///
    /// Not while any thread is suspended (it asks libpthread for the stack's end).
    pub fn open(&mut self, tid: i32) -> bool {
        let port = tid as u32;
        if self.held && self.port == port {
            return true;
        }
        self.close();
        // SAFETY: adds a user reference to a send right this task holds; fails (and changes
        // nothing) if the name is not a send right, as for a thread that has exited.
        let kr = unsafe {
            api::mach_port_mod_refs(api::task_self(), port, api::MACH_PORT_RIGHT_SEND, 1)
        };
        if kr != api::KERN_SUCCESS {
            return false;
        }
        // SAFETY: libpthread looks the port up in its own list (under its lock: no thread is
        // suspended now) and returns null for a thread it did not create.
        let pthread = unsafe { api::pthread_from_mach_thread_np(port) };
        let stack_top = if pthread == 0 {
            0
        } else {
            // SAFETY: a pthread_t libpthread just returned; it validates it again.
            unsafe { api::pthread_get_stackaddr_np(pthread) as u64 }
        };
        *self = Target {
            port,
            held: true,
            stack_top,
        };
        true
    }

    /// Releases the reference, if held.
    pub fn close(&mut self) {
        if self.held {
            // SAFETY: the reference `open` added, released once.
            unsafe { api::mach_port_deallocate(api::task_self(), self.port) };
        }
        *self = Target {
            port: 0,
            held: false,
            stack_top: 0,
        };
    }

    /// Suspends the thread, reads its registers, copies its stack from the stack pointer up
    /// to the stack's end (at most `stack.len()` bytes) into `stack`, and resumes it. Returns
    /// what was captured, with how long the thread was stopped in
    /// [`super::time::monotonic_ns`] nanoseconds.
    ///
    /// # Suspension safety
    /// See the module docs.
    pub fn capture(&self, stack: &mut [u8]) -> Result<(Captured, u64), CaptureError> {
        if !self.held {
            return Err(CaptureError::Gone);
        }
        let t0 = super::time::monotonic_ns();
        // SAFETY: a send right to a thread port we hold; a dead thread fails cleanly.
        if unsafe { api::thread_suspend(self.port) } != api::KERN_SUCCESS {
            return Err(CaptureError::Gone);
        }
        let result = self.while_suspended(stack);
        // SAFETY: we suspended it just above.
        unsafe { api::thread_resume(self.port) };
        let stopped = super::time::monotonic_ns().saturating_sub(t0);
        result.map(|c| (c, stopped))
    }

    /// The part of [`Target::capture`] that runs while the thread is suspended.
    fn while_suspended(&self, stack: &mut [u8]) -> Result<Captured, CaptureError> {
        let mut state = api::ThreadState::default();
        let mut count = api::THREAD_STATE_COUNT;
        // SAFETY: `state` is writable for `count` natural_t, the size of this flavor.
        let kr = unsafe {
            api::thread_get_state(
                self.port,
                api::THREAD_STATE_FLAVOR,
                (&mut state as *mut api::ThreadState).cast(),
                &mut count,
            )
        };
        if kr != api::KERN_SUCCESS {
            return Err(CaptureError::NoContext);
        }
        let mut cap = Captured {
            state,
            copied: 0,
            labels: crate::labels::of_suspended_thread(self.port as i32),
        };
        cap.copied =
            crate::sys::suspended::copy_stack(cap.sp(), self.stack_top, stack, memory::read);
        Ok(cap)
    }

    /// The thread's CPU time (see [`super::time::thread_cpu_ns`]).
    pub fn cpu_ns(&self) -> Option<u64> {
        if !self.held {
            return None;
        }
        super::time::thread_cpu_ns(self.port as i32)
    }
}
