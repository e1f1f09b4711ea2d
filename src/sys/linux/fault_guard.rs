//! Loads that cannot crash the process, however memory changes under them.
//!
//! The handler reads the interrupted thread's stack, which another thread may unmap or protect
//! at any moment (a fiber stack freed, a mapping shrunk). Every such read goes through
//! [`guarded_load`]: one load instruction at a known address. vignette's `SIGSEGV`/`SIGBUS` handler
//! ([`on_fault`], a few instructions of assembly that use no stack of their own) checks whether
//! the fault happened at exactly that instruction; if so it resumes at a recovery stub that
//! returns "not readable", and the walk ends there. Every other fault is passed on to the
//! handler that was installed before vignette's (or to the default action), so crash reporters
//! and Rust's stack-overflow message keep working. This is async-profiler's `SafeAccess`.
//!
//! The nested fault needs room for the kernel's signal frame. A thread with an alternate signal
//! stack gets the sampling signal on it, and the kernel would put a fault's frame at the top of
//! that same stack (clobbering the sampling signal's frame) unless the faulting instruction runs
//! with the stack pointer on the alternate stack. So [`scratch_stack`] decides, per sample,
//! where the load runs: on the current stack (no alternate stack, or the handler is not on it),
//! or just below the handler's own frames on the alternate stack when a signal frame fits
//! there. When it does not fit (a sample taken inside another handler running on the
//! alternate stack), or the thread blocks `SIGSEGV`/`SIGBUS`, or the guard is not installed,
//! the stack is read with `process_vm_readv` instead ([`ReadMode::Copied`]), which reports
//! `EFAULT` rather than faulting, at 1.3 to 1.8 µs a call on the bench machine.
//!
//! A handler installed after vignette's takes the faults first; the sampler thread checks every
//! tick ([`ensure_installed`]) and puts vignette's handler back on top, chaining to the new one.
//! Until it does (at most one sampling interval), a fault in a guarded load would reach the
//! newer handler: the one window this design leaves open, and only for memory unmapped during
//! that interval.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

use super::arch;
pub use super::arch::guarded_load;
use super::arch::on_fault;

/// The address of the load instruction in [`guarded_load`], found at install; 0 until then.
pub(super) static LOAD_PC: AtomicUsize = AtomicUsize::new(0);
/// Whether vignette's fault handler is installed (as far as the sampler last checked).
static ARMED: AtomicBool = AtomicBool::new(false);
/// Serialises installs.
static INSTALLING: AtomicBool = AtomicBool::new(false);

/// The handlers that were installed before vignette's, for `SIGSEGV` and `SIGBUS`, in two
/// slots each: a re-install writes the slot not in use, then flips `current`.
struct Previous {
    actions: [[UnsafeCell<libc::sigaction>; 2]; 2],
    current: [AtomicUsize; 2],
}
// SAFETY: a slot is written only under INSTALLING while it is not current; readers read only
// the current slot.
unsafe impl Sync for Previous {}

/// The default action, as a `sigaction`.
const fn default_action() -> UnsafeCell<libc::sigaction> {
    // SAFETY: an all-zero sigaction is SIG_DFL with no flags and an empty mask.
    UnsafeCell::new(unsafe { core::mem::zeroed() })
}

static PREVIOUS: Previous = Previous {
    actions: [
        [default_action(), default_action()],
        [default_action(), default_action()],
    ],
    current: [AtomicUsize::new(0), AtomicUsize::new(0)],
};

const SIGNALS: [i32; 2] = [libc::SIGSEGV, libc::SIGBUS];

fn previous(which: usize) -> Option<&'static UnsafeCell<libc::sigaction>> {
    let slot = PREVIOUS.current.get(which)?.load(SeqCst) & 1;
    PREVIOUS.actions.get(which)?.get(slot)
}

/// A fault that is not vignette's: hand it to the handler installed before, as the kernel
/// would have.
///
/// # Signal safety
/// Async-signal-safe: `sigaction`, `raise` and the previous handler (which is the
/// application's own).
pub(super) extern "C" fn chain(sig: i32, info: *mut libc::siginfo_t, uctx: *mut c_void) {
    let which = if sig == libc::SIGBUS { 1 } else { 0 };
    let Some(prev) = previous(which) else { return };
    // SAFETY: the current slot is not written while it is current (see `Previous`).
    let prev = unsafe { *prev.get() };
    let handler = prev.sa_sigaction;
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // SAFETY: a zeroed sigaction is the default action.
        let dfl: libc::sigaction = unsafe { core::mem::zeroed() };
        // SAFETY: installs the default action; `dfl` is valid.
        unsafe { libc::sigaction(sig, &dfl, core::ptr::null_mut()) };
        // A hardware fault recurs when the instruction is retried; a signal someone sent
        // (si_code <= 0) is sent again, to meet the default action.
        // SAFETY: the kernel passes a valid siginfo to a SA_SIGINFO handler (or null).
        if info.is_null() || unsafe { (*info).si_code } <= 0 {
            // SAFETY: raise is async-signal-safe.
            unsafe { libc::raise(sig) };
        }
        return;
    }
    if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the application installed this SA_SIGINFO handler for this signal.
        let f: extern "C" fn(i32, *mut libc::siginfo_t, *mut c_void) =
            unsafe { core::mem::transmute(handler) };
        f(sig, info, uctx);
    } else {
        // SAFETY: the application installed this plain handler for this signal.
        let f: extern "C" fn(i32) = unsafe { core::mem::transmute(handler) };
        f(sig);
    }
}

/// Finds the load instruction in [`guarded_load`] (its encoding is [`arch::LOAD_INSN`]).
fn find_load() -> Option<usize> {
    let start = guarded_load as *const () as usize;
    // SAFETY: the first 32 bytes of a function's code are mapped and readable (code pages are
    // readable on Linux); the function is longer than that.
    let code = unsafe { core::slice::from_raw_parts(start as *const u8, 32) };
    let insn = arch::LOAD_INSN;
    code.windows(insn.len())
        .position(|w| w == insn)
        .map(|i| start + i)
}

/// Installs vignette's fault handler for `SIGSEGV` and `SIGBUS` unless it is already the
/// installed one, remembering the handler it replaces; arms the guard. Returns whether the
/// guard is armed. Called at `build()` and by the sampler thread every tick.
pub fn ensure_installed() -> bool {
    if INSTALLING.swap(true, SeqCst) {
        return ARMED.load(SeqCst);
    }
    let armed = install_locked();
    ARMED.store(armed, SeqCst);
    INSTALLING.store(false, SeqCst);
    armed
}

fn install_locked() -> bool {
    if LOAD_PC.load(SeqCst) == 0 {
        match find_load() {
            Some(pc) => LOAD_PC.store(pc, SeqCst),
            None => return false,
        }
    }
    let ours = on_fault as *const () as usize;
    for (which, &sig) in SIGNALS.iter().enumerate() {
        // SAFETY: a zeroed sigaction is a valid value for sigaction to fill.
        let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
        // SAFETY: querying with a null new action only writes `old`.
        if unsafe { libc::sigaction(sig, core::ptr::null(), &mut old) } != 0 {
            return false;
        }
        if old.sa_sigaction == ours {
            continue;
        }
        // Someone else's (or the default): keep it to chain to, in the slot not in use.
        let (Some(current), Some(slots)) =
            (PREVIOUS.current.get(which), PREVIOUS.actions.get(which))
        else {
            return false;
        };
        let spare = (current.load(SeqCst) + 1) & 1;
        if let Some(slot) = slots.get(spare) {
            // SAFETY: we hold INSTALLING and the spare slot is not current, so no reader uses
            // it.
            unsafe { *slot.get() = old };
        }
        current.store(spare, SeqCst);
        // SAFETY: as above.
        let mut new: libc::sigaction = unsafe { core::mem::zeroed() };
        new.sa_sigaction = ours;
        new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: sa_mask is a valid sigset_t; `new` is complete and `on_fault` lives forever.
        let rc = unsafe {
            libc::sigemptyset(&mut new.sa_mask);
            libc::sigaction(sig, &new, core::ptr::null_mut())
        };
        if rc != 0 {
            return false;
        }
    }
    true
}

/// Whether guarded loads are safe to make now (the fault handler is installed).
///
/// # Signal safety
/// Async-signal-safe: an atomic load.
pub fn armed() -> bool {
    ARMED.load(SeqCst)
}

/// The thread's alternate signal stack, as the kernel saved it in the `ucontext`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AltStack {
    /// Lowest address.
    pub lo: u64,
    /// One past the highest.
    pub hi: u64,
    /// `SS_AUTODISARM`: while a handler runs on it, the kernel treats it as disabled.
    pub autodisarm: bool,
}

/// How the handler may read the interrupted stack for one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// Through [`guarded_load`] with this `scratch_sp` (0: on the current stack).
    Guarded(u64),
    /// Through the `process_vm_readv` system call, which reports `EFAULT` instead of faulting
    /// (slower: for the rare samples where a fault could not be recovered from).
    Copied,
}

/// How to read the stack for this sample (see the module docs).
///
/// `alt` is the thread's alternate stack (if enabled), `entry_sp` the stack pointer where the
/// handler left its first stack (everything below it is free), `frame_bytes` the size of a
/// signal frame on this machine, `faults_blocked` whether the interrupted code blocks
/// `SIGSEGV` or `SIGBUS` (the kernel would then kill the process on a fault).
///
/// # Signal safety
/// Async-signal-safe: arithmetic.
pub fn read_mode(
    alt: Option<AltStack>,
    entry_sp: u64,
    frame_bytes: u64,
    faults_blocked: bool,
) -> ReadMode {
    if faults_blocked || !armed() {
        return ReadMode::Copied;
    }
    let Some(alt) = alt else {
        // No alternate stack: a fault's frame goes on the current stack (a handler stack).
        return ReadMode::Guarded(0);
    };
    if alt.autodisarm || !(alt.lo < entry_sp && entry_sp <= alt.hi) {
        // The alternate stack is free (or disarmed): a fault's frame does not touch ours.
        return ReadMode::Guarded(0);
    }
    // The sampling signal's frame is on the alternate stack: the fault must land below it,
    // with room for its frame, the red zone and alignment.
    let scratch = entry_sp & !15;
    let need = frame_bytes.saturating_add(128 + 64 + 64);
    if scratch.saturating_sub(alt.lo) >= need {
        ReadMode::Guarded(scratch)
    } else {
        ReadMode::Copied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Installs the guard, waiting out another thread's install in progress (other tests'
    /// samplers install it too, and a contended call answers with what is armed so far).
    fn install_waiting() -> bool {
        (0..2000).any(|_| {
            ensure_installed() || {
                std::thread::sleep(std::time::Duration::from_millis(1));
                false
            }
        })
    }

    #[test]
    fn loads_from_good_and_bad_addresses() {
        assert!(install_waiting());
        let x = 0x1122_3344_5566_7788u64;
        // SAFETY: armed, and 0 keeps the current stack.
        let r = unsafe { guarded_load(&x as *const u64 as u64, 0) };
        assert_eq!((r.ok, r.value), (1, x));
        // A page that faults (made inaccessible rather than unmapped: other tests' threads
        // could map their stacks into a hole): the load reports failure instead of crashing.
        let page = crate::sys::pages::map_anonymous(4096, 0).unwrap();
        // SAFETY: changes the protection of our own fresh page.
        assert_eq!(unsafe { libc::mprotect(page, 4096, libc::PROT_NONE) }, 0);
        // SAFETY: as above.
        let r = unsafe { guarded_load(page as u64, 0) };
        assert_eq!(r.ok, 0);
        // SAFETY: unmapping our own page.
        unsafe { libc::munmap(page, 4096) };
        // SAFETY: as above.
        let r = unsafe { guarded_load(8, 0) };
        assert_eq!(r.ok, 0);
    }

    #[test]
    fn decides_where_a_fault_may_land() {
        assert!(install_waiting());
        let alt = AltStack {
            lo: 0x10000,
            hi: 0x12000,
            autodisarm: false,
        };
        use ReadMode::*;
        assert_eq!(read_mode(None, 0x5000, 3400, false), Guarded(0));
        assert_eq!(read_mode(None, 0x5000, 3400, true), Copied);
        // Not on the alternate stack: it is free.
        assert_eq!(read_mode(Some(alt), 0x5000, 3400, false), Guarded(0));
        // On it, with room below the handler's frames.
        assert_eq!(read_mode(Some(alt), 0x11c08, 3400, false), Guarded(0x11c00));
        // On it, without room: through the system call.
        assert_eq!(read_mode(Some(alt), 0x10e00, 3400, false), Copied);
    }
}
