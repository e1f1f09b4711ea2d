//! The sampling signal: installing the handler, addressing a signal to one thread with a token,
//! reading the token and the interrupted registers back inside the handler.

use core::ffi::c_void;

use super::fs::{errno, set_errno};
use crate::error::{Error, Result};

/// The signature of a `SA_SIGINFO` handler.
pub type Handler = extern "C" fn(i32, *mut libc::siginfo_t, *mut c_void);

/// `si_code` of signals sent with `sigqueue`/`rt_tgsigqueueinfo`.
const SI_QUEUE: i32 = -1;

/// The x86_64 / aarch64 Linux `siginfo_t` layout for queued signals (`_rt` member): 128 bytes.
#[repr(C)]
struct QueuedInfo {
    signo: i32,
    errno: i32,
    code: i32,
    _pad: i32,
    pid: i32,
    uid: u32,
    value: u64,
    _rest: [u64; 12],
}
const _: () = assert!(core::mem::size_of::<QueuedInfo>() == 128);
const _: () = assert!(core::mem::size_of::<libc::siginfo_t>() == 128);

/// Who handles a signal now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// The handler asked about.
    Ours,
    /// Nobody: the default action, or ignored.
    Free,
    /// Another handler.
    Foreign,
}

/// Who handles `sig` now, `handler` being ours: one `sigaction` query.
pub fn disposition(sig: i32, handler: Handler) -> Result<Disposition> {
    // SAFETY: a zeroed sigaction is a valid value for sigaction to fill.
    let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
    // SAFETY: querying with a null new action only writes `old`.
    if unsafe { libc::sigaction(sig, core::ptr::null(), &mut old) } != 0 {
        return Err(Error::Sys {
            call: "sigaction",
            errno: errno(),
        });
    }
    Ok(match old.sa_sigaction {
        h if h == handler as usize => Disposition::Ours,
        libc::SIG_DFL | libc::SIG_IGN => Disposition::Free,
        _ => Disposition::Foreign,
    })
}

/// Installs `handler` for `sig` with `SA_SIGINFO | SA_RESTART | SA_ONSTACK`.
///
/// Refuses with [`Error::SignalInUse`] when another handler (neither the default action, nor
/// "ignore", nor `handler` itself) owns the signal: vignette does not silently replace an
/// application's handler.
pub fn install(sig: i32, handler: Handler) -> Result<()> {
    if !(1..=64).contains(&sig) || sig == libc::SIGKILL || sig == libc::SIGSTOP {
        return Err(Error::InvalidConfig(
            "signal must be a catchable signal number",
        ));
    }
    if disposition(sig, handler)? == Disposition::Foreign {
        return Err(Error::SignalInUse(sig));
    }
    // SAFETY: a zeroed sigaction is a valid value to fill in.
    let mut new: libc::sigaction = unsafe { core::mem::zeroed() };
    new.sa_sigaction = handler as usize;
    new.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_ONSTACK;
    // SAFETY: sa_mask is a valid sigset_t to empty.
    unsafe { libc::sigemptyset(&mut new.sa_mask) };
    // SAFETY: `new` is fully initialised and `handler` is a valid extern "C" function that
    // lives for the whole program.
    if unsafe { libc::sigaction(sig, &new, core::ptr::null_mut()) } != 0 {
        return Err(Error::Sys {
            call: "sigaction",
            errno: errno(),
        });
    }
    Ok(())
}

/// Blocks `sig` in the calling thread (used by the sampler thread, which is never sampled).
pub fn block_in_this_thread(sig: i32) {
    change_in_this_thread(libc::SIG_BLOCK, sig);
}

/// Unblocks `sig` in the calling thread (the sampler thread, while it calibrates).
pub fn unblock_in_this_thread(sig: i32) {
    change_in_this_thread(libc::SIG_UNBLOCK, sig);
}

/// Whether the calling thread blocks `SIGSEGV` or `SIGBUS` (then a fault, even a guarded one,
/// would kill the process).
///
/// # Signal safety
/// Async-signal-safe: one `pthread_sigmask` query.
pub fn faults_blocked_in_this_thread() -> bool {
    // SAFETY: a query of this thread's mask into a local set.
    unsafe {
        let mut set: libc::sigset_t = core::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, core::ptr::null(), &mut set) != 0
            || libc::sigismember(&set, libc::SIGSEGV) == 1
            || libc::sigismember(&set, libc::SIGBUS) == 1
    }
}

fn change_in_this_thread(how: i32, sig: i32) {
    // SAFETY: set is a valid sigset_t; pthread_sigmask only changes this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(how, &set, core::ptr::null_mut());
    }
}

/// Sends one signal, carrying a 64-bit token, to threads of this process; the process and
/// user ids the kernel wants in a queued signal's `siginfo` are read once, at creation.
#[derive(Debug, Clone, Copy)]
pub struct Sender {
    sig: i32,
    pid: i32,
    uid: u32,
}

impl Sender {
    /// A sender of `sig`.
    pub fn new(sig: i32) -> Self {
        Sender {
            sig,
            pid: super::threads::getpid(),
            // SAFETY: getuid cannot fail.
            uid: unsafe { libc::getuid() },
        }
    }

    /// The process id this sender puts in its signals.
    ///
    /// # Signal safety
    /// Async-signal-safe: reads a field.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Sends the signal to thread `tid` carrying `token`: one `rt_tgsigqueueinfo` call.
    ///
    /// Returns `Err(errno)`; `ESRCH` means the thread has exited.
    pub fn send(&self, tid: i32, token: u64) -> core::result::Result<(), i32> {
        let info = QueuedInfo {
            signo: self.sig,
            errno: 0,
            code: SI_QUEUE,
            _pad: 0,
            pid: self.pid,
            uid: self.uid,
            value: token,
            _rest: [0; 12],
        };
        // SAFETY: info is a complete 128-byte siginfo for a queued signal; the kernel copies it.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_rt_tgsigqueueinfo,
                self.pid,
                tid,
                self.sig,
                &info as *const QueuedInfo,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(errno())
        }
    }
}

/// Where a signal came from, as far as vignette's handler cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Queued (`sigqueue`, `rt_tgsigqueueinfo`) by process `pid` with `value`: compare `pid`
    /// with [`Sender::pid`] to know that this process sent it.
    Queued { pid: i32, value: u64 },
    /// A POSIX timer of this process that carries `value` expired, `overrun` more times
    /// than this signal says.
    Timer { value: u64, overrun: u32 },
    /// A file descriptor with `F_SETSIG` (a perf event) signalled readiness.
    Poll { fd: i32 },
}

/// `si_code` of a timer's signal.
const SI_TIMER: i32 = -2;
/// `si_code` of a descriptor's input-ready signal.
const POLL_IN: i32 = 1;

/// Where the signal came from, or `None` for one vignette never sends (`kill`, another
/// process's timer).
///
/// # Safety
/// `info` must be the `siginfo_t` pointer the kernel passed to a `SA_SIGINFO` handler.
///
/// # Signal safety
/// Async-signal-safe: reads the siginfo, no system call.
pub unsafe fn origin(info: *const libc::siginfo_t) -> Option<Origin> {
    if info.is_null() {
        return None;
    }
    // SAFETY: the kernel's siginfo is 128 bytes (checked above); QueuedInfo is its layout for
    // queued signals, and timers (timer id, overrun, value) and descriptors (band, then fd)
    // put their fields at the same offsets.
    let q = unsafe { &*info.cast::<QueuedInfo>() };
    match q.code {
        SI_QUEUE => Some(Origin::Queued {
            pid: q.pid,
            value: q.value,
        }),
        SI_TIMER => Some(Origin::Timer {
            value: q.value,
            overrun: q.uid,
        }),
        POLL_IN => Some(Origin::Poll {
            fd: q.value as u32 as i32,
        }),
        _ => None,
    }
}

pub use super::arch::regs;

/// What the kernel says about the interrupted thread besides its registers, for deciding
/// where a fault-recovering load may run (see [`super::fault_guard::scratch_stack`]).
#[derive(Debug, Clone, Copy)]
pub struct Interrupted {
    /// The thread's alternate signal stack, if it has one enabled.
    pub alt_stack: Option<super::fault_guard::AltStack>,
    /// Whether the interrupted code blocks `SIGSEGV` or `SIGBUS`.
    pub faults_blocked: bool,
    /// Bytes of this signal's frame (the `ucontext`, `siginfo` and floating-point state).
    pub frame_bytes: u64,
}

/// Reads [`Interrupted`] from the kernel's `ucontext`; `min_frame` is the smallest frame size
/// to assume (`AT_MINSIGSTKSZ`).
///
/// # Safety
/// `uctx` must be the `ucontext_t` pointer the kernel passed to a `SA_SIGINFO` handler.
///
/// # Signal safety
/// Async-signal-safe: reads the ucontext and the signal frame.
pub unsafe fn interrupted(uctx: *const c_void, min_frame: u64) -> Interrupted {
    // SAFETY: the caller passes the kernel's ucontext_t.
    let uc = unsafe { &*uctx.cast::<libc::ucontext_t>() };
    let st = uc.uc_stack;
    let alt_stack = (st.ss_flags & libc::SS_DISABLE == 0 && st.ss_size > 0).then(|| {
        super::fault_guard::AltStack {
            lo: st.ss_sp as u64,
            hi: (st.ss_sp as u64).saturating_add(st.ss_size as u64),
            autodisarm: st.ss_flags & (1 << 31) != 0,
        }
    });
    // SAFETY: uc_sigmask is a valid sigset_t.
    let faults_blocked = unsafe {
        libc::sigismember(&uc.uc_sigmask, libc::SIGSEGV) == 1
            || libc::sigismember(&uc.uc_sigmask, libc::SIGBUS) == 1
    };
    // The frame runs from below the ucontext to the end of the floating-point state, where
    // the frame says where that is.
    // SAFETY: the caller passes the kernel's ucontext_t.
    let (frame_lo, fp_end) = unsafe { super::arch::signal_frame(uctx) };
    let frame_bytes = match fp_end {
        Some(end) if end > frame_lo => min_frame.max(end - frame_lo),
        _ => min_frame,
    };
    Interrupted {
        alt_stack,
        faults_blocked,
        frame_bytes,
    }
}

/// Saves `errno` on creation and restores it on drop, so a handler never clobbers the errno
/// of the code it interrupted.
///
/// # Signal safety
/// Async-signal-safe.
pub struct ErrnoGuard(i32);

/// # Signal safety
/// Every method is async-signal-safe: it reads and writes this thread's `errno`.
impl ErrnoGuard {
    /// Saves the current `errno`.
    pub fn save() -> Self {
        ErrnoGuard(errno())
    }
}

impl Drop for ErrnoGuard {
    fn drop(&mut self) {
        set_errno(self.0);
    }
}
