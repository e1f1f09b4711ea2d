//! Per-thread kernel timers that send a thread the sampling signal after every interval of its
//! own CPU time, so the kernel, not a sampler thread, decides when a thread is due a sample:
//!
//! - a perf event: the software `task-clock` counter with a sample period of one interval,
//!   its overflow signal (`F_SETSIG`) addressed to the thread (`F_SETOWN_EX`, `F_OWNER_TID`).
//!   High-resolution timers: every interval arrives on time. The signal's `siginfo` says
//!   `POLL_IN` and names the event's file descriptor.
//! - a POSIX CPU timer on the thread's CPU clock (`timer_create`, `SIGEV_THREAD_ID`): allowed
//!   wherever perf events are not (`perf_event_paranoid` 3, container seccomp filters), but
//!   checked only at the scheduler tick; the `siginfo` carries the timer's value (vignette's
//!   token) and the overrun count, so late expiries still add up.

use super::fs::errno;

/// `fcntl` commands and values the `libc` crate does not name (same on x86_64 and aarch64).
const F_SETSIG: i32 = 10;
const F_SETOWN_EX: i32 = 15;
const F_OWNER_TID: i32 = 0;
/// `ioctl` requests on a perf event: `_IO('$', 0)` and `_IOR('$', 7, u64)`.
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
const PERF_EVENT_IOC_ID: libc::c_ulong = 0x8008_2407;
const PERF_TYPE_SOFTWARE: u32 = 1;
const PERF_COUNT_SW_TASK_CLOCK: u64 = 1;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
/// `perf_event_attr.flags`: created disabled (enabled once its signal is routed).
const ATTR_DISABLED: u64 = 1;

/// The first 64 bytes of `struct perf_event_attr` (`PERF_ATTR_SIZE_VER0`), which is all a
/// software counting event needs; the kernel reads the rest as zero.
#[repr(C)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}
const _: () = assert!(core::mem::size_of::<PerfEventAttr>() == 64);

/// `struct f_owner_ex`.
#[repr(C)]
struct OwnerEx {
    kind: i32,
    pid: i32,
}

/// Opens a disabled `task-clock` perf event on thread `tid` (0: the calling thread) that
/// overflows every `period_ns` of its CPU time.
fn open_task_clock(tid: i32, period_ns: u64) -> Result<i32, i32> {
    let attr = PerfEventAttr {
        kind: PERF_TYPE_SOFTWARE,
        size: core::mem::size_of::<PerfEventAttr>() as u32,
        config: PERF_COUNT_SW_TASK_CLOCK,
        sample_period: period_ns.max(1),
        sample_type: 0,
        read_format: 0,
        flags: ATTR_DISABLED,
        // Every overflow signals.
        wakeup_events: 1,
        bp_type: 0,
        config1: 0,
    };
    // SAFETY: attr is a valid PerfEventAttr of the size it states; the other arguments are
    // integers (any CPU, no group).
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            tid,
            -1,
            -1,
            PERF_FLAG_FD_CLOEXEC,
        )
    } as i32;
    if fd < 0 {
        Err(errno())
    } else {
        Ok(fd)
    }
}

/// Opens a `task-clock` perf event on thread `tid` (0: the calling thread) that will send
/// `sig` to that thread after every `period_ns` of its CPU time once enabled
/// ([`enable_perf_event`]). Returns the event's file descriptor, or the errno of the call that failed (`EACCES`/`EPERM` where perf events
/// are not allowed, `ENOSYS` without them, `ESRCH` for a thread that has exited, `EMFILE` with
/// no descriptors left).
pub fn open_perf_event(tid: i32, period_ns: u64, sig: i32) -> Result<i32, i32> {
    let fd = open_task_clock(tid, period_ns)?;
    let owner = OwnerEx {
        kind: F_OWNER_TID,
        pid: if tid == 0 {
            super::threads::gettid()
        } else {
            tid
        },
    };
    // SAFETY: fcntl and ioctl on a descriptor we own, with the argument types each command
    // takes (flags, a signal number, a pointer to a valid f_owner_ex).
    let routed = unsafe {
        libc::fcntl(fd, libc::F_SETFL, libc::O_ASYNC) == 0
            && libc::fcntl(fd, F_SETSIG, sig) == 0
            && libc::fcntl(fd, F_SETOWN_EX, &owner as *const OwnerEx) == 0
    };
    if !routed {
        let e = errno();
        close_perf_event(fd);
        return Err(e);
    }
    Ok(fd)
}

/// Starts a perf event from [`open_perf_event`] counting (and signalling).
pub fn enable_perf_event(fd: i32) -> bool {
    // SAFETY: an ioctl without argument on a descriptor this module opened.
    unsafe { libc::ioctl(fd, PERF_EVENT_IOC_ENABLE as _, 0) == 0 }
}

/// The kernel's unique id of the perf event open as `fd`, or `None` if `fd` is not a perf
/// event (an application that closed vignette's descriptor may have reused its number).
pub fn perf_event_id(fd: i32) -> Option<u64> {
    let mut id = 0u64;
    // SAFETY: the ioctl writes one u64 into id; on a descriptor that is not a perf event it
    // fails without writing.
    let rc = unsafe { libc::ioctl(fd, PERF_EVENT_IOC_ID as _, &mut id as *mut u64) };
    (rc == 0).then_some(id)
}

/// The CPU time a perf event from [`open_perf_event`] has counted, in nanoseconds.
pub fn perf_event_ns(fd: i32) -> Option<u64> {
    let mut v = 0u64;
    // SAFETY: v is valid for 8 bytes of writes; a counting event reads as one u64.
    let n = unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
    (n == 8).then_some(v)
}

/// Closes a perf event from [`open_perf_event`]: no signal is sent for it after this returns
/// (one already queued may still arrive).
pub fn close_perf_event(fd: i32) {
    // SAFETY: fd is a descriptor this module opened and nothing else closes.
    unsafe { libc::close(fd) };
}

/// Creates a timer on thread `tid`'s CPU clock (0: the calling thread) that notifies as `ev`
/// says; returns the kernel's timer id (the raw system call's, not glibc's `timer_t`).
fn timer_create(tid: i32, ev: &mut libc::sigevent) -> Result<i32, i32> {
    const CPUCLOCK_PERTHREAD_SCHED: libc::clockid_t = 4 | 2;
    let tid = if tid == 0 {
        super::threads::gettid()
    } else {
        tid
    };
    let mut id: i32 = 0;
    // SAFETY: ev is a valid sigevent and id a valid int for the kernel to write.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_timer_create,
            (!tid << 3) | CPUCLOCK_PERTHREAD_SCHED,
            ev as *mut libc::sigevent,
            &mut id as *mut i32,
        )
    };
    if rc != 0 {
        Err(errno())
    } else {
        Ok(id)
    }
}

/// Creates a timer on thread `tid`'s CPU clock (0: the calling thread) that sends `sig`
/// carrying `value` to that thread after every `period_ns` of its CPU time, and starts it.
/// Returns the kernel's timer id, or the errno.
pub fn create_cpu_timer(tid: i32, period_ns: u64, sig: i32, value: u64) -> Result<i32, i32> {
    // SAFETY: a zeroed sigevent is valid; the fields are filled below.
    let mut ev: libc::sigevent = unsafe { core::mem::zeroed() };
    ev.sigev_notify = libc::SIGEV_THREAD_ID;
    ev.sigev_signo = sig;
    ev.sigev_value = libc::sigval {
        sival_ptr: value as usize as *mut libc::c_void,
    };
    ev.sigev_notify_thread_id = if tid == 0 {
        super::threads::gettid()
    } else {
        tid
    };
    let id = timer_create(tid, &mut ev)?;
    let period = libc::timespec {
        tv_sec: (period_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (period_ns % 1_000_000_000).max(1) as libc::c_long,
    };
    let spec = libc::itimerspec {
        it_interval: period,
        it_value: period,
    };
    // SAFETY: id is the timer just created; spec is a valid itimerspec; no old value wanted.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_timer_settime,
            id,
            0,
            &spec as *const libc::itimerspec,
            core::ptr::null_mut::<libc::itimerspec>(),
        )
    };
    if rc != 0 {
        let e = errno();
        delete_cpu_timer(id);
        return Err(e);
    }
    Ok(id)
}

/// Deletes a timer from [`create_cpu_timer`].
pub fn delete_cpu_timer(id: i32) {
    // SAFETY: id is a timer this module created and nothing else deletes.
    unsafe { libc::syscall(libc::SYS_timer_delete, id) };
}

/// Whether this process may open per-thread perf events: opens one on the calling thread,
/// never enabled, and closes it.
pub fn perf_events_allowed() -> bool {
    open_task_clock(0, 1_000_000).map(close_perf_event).is_ok()
}

/// Whether this process may create thread CPU timers: creates one on the calling thread that
/// notifies nobody, never started, and deletes it.
pub fn cpu_timers_allowed() -> bool {
    // SAFETY: a zeroed sigevent is valid.
    let mut ev: libc::sigevent = unsafe { core::mem::zeroed() };
    ev.sigev_notify = libc::SIGEV_NONE;
    timer_create(0, &mut ev).map(delete_cpu_timer).is_ok()
}
