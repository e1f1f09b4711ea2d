//! Clocks: monotonic and wall time, per-thread CPU time, and sleeping to a deadline.

fn read(clock: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// Nanoseconds on `CLOCK_MONOTONIC`.
///
/// # Signal safety
/// Async-signal-safe: `clock_gettime` is on POSIX's list (and is a vDSO call here).
pub fn monotonic_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC).unwrap_or(0)
}

/// Nanoseconds since the Unix epoch (`CLOCK_REALTIME`).
pub fn realtime_ns() -> u64 {
    read(libc::CLOCK_REALTIME).unwrap_or(0)
}

/// CPU time consumed so far by thread `tid` of this process, or `None` if it has exited.
///
/// Uses the kernel's per-thread CPU clock id for `tid` (`MAKE_THREAD_CPUCLOCK(tid, SCHED)`), which
/// any thread of the same process may read.
pub fn thread_cpu_ns(tid: i32) -> Option<u64> {
    const CPUCLOCK_PERTHREAD_SCHED: libc::clockid_t = 4 | 2;
    read((!tid << 3) | CPUCLOCK_PERTHREAD_SCHED)
}

/// CPU time consumed so far by the calling thread (`CLOCK_THREAD_CPUTIME_ID`).
///
/// # Signal safety
/// Async-signal-safe: `clock_gettime` is on POSIX's list (a system call for this clock).
pub fn own_thread_cpu_ns() -> Option<u64> {
    read(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time consumed so far by the whole process, exited threads included
/// (`CLOCK_PROCESS_CPUTIME_ID`).
pub fn process_cpu_ns() -> Option<u64> {
    read(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// Sleeps until `CLOCK_MONOTONIC` reaches `deadline_ns` (returns early on a signal).
pub fn sleep_until(deadline_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: ts is a valid timespec; a null remainder is allowed with TIMER_ABSTIME.
    unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &ts,
            core::ptr::null_mut(),
        )
    };
}

/// Whether [`wake`] ends a [`sleep_unless_changed`] at once (a futex), so that a sleeper need
/// not poll.
pub const WAKES: bool = true;

/// Sleeps until `CLOCK_MONOTONIC` reaches `deadline_ns`, unless `word` no longer holds `seen`,
/// or until another thread changes it and calls [`wake`] (a futex: the sleeper wakes at once,
/// not at its next poll).
pub fn sleep_unless_changed(deadline_ns: u64, word: &core::sync::atomic::AtomicU32, seen: u32) {
    let ts = libc::timespec {
        tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: FUTEX_WAIT_BITSET on a live u32 of ours, with an absolute CLOCK_MONOTONIC
    // deadline; it sleeps only while the word still holds `seen`, and returns at once
    // otherwise.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT_BITSET | libc::FUTEX_PRIVATE_FLAG,
            seen,
            &ts as *const libc::timespec,
            core::ptr::null::<u32>(),
            // FUTEX_BITSET_MATCH_ANY
            u32::MAX,
        )
    };
}

/// Wakes the threads sleeping on `flag` in [`sleep_unless_changed`] (change it first).
pub fn wake(flag: &core::sync::atomic::AtomicU32) {
    // SAFETY: FUTEX_WAKE on a live u32 of ours touches nothing else.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            flag.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        )
    };
}

/// Makes the calling thread's timed sleeps end on time: the kernel may otherwise extend them by
/// its default 50 µs timer slack, a fifth of an interval at 4000 Hz.
pub fn set_minimal_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes one integer and affects only the calling thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
}

/// Sleeps for `ns` nanoseconds.
pub fn sleep_ns(ns: u64) {
    sleep_until(monotonic_ns().saturating_add(ns));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_move_forward() {
        let a = monotonic_ns();
        sleep_ns(2_000_000);
        let b = monotonic_ns();
        assert!(b - a >= 2_000_000, "slept {} ns", b - a);
        assert!(realtime_ns() > 1_600_000_000_000_000_000);
    }

    #[test]
    fn thread_cpu_time_counts_work() {
        let tid = super::super::threads::gettid();
        let before = thread_cpu_ns(tid).unwrap();
        let mut x = 0u64;
        while thread_cpu_ns(tid).unwrap() - before < 5_000_000 {
            x = core::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        assert!(thread_cpu_ns(i32::MAX - 7).is_none());
    }
}
