//! Clocks: monotonic and wall time, per-thread CPU time, and sleeping to a deadline.

use super::api;
use super::threads::Handle;

/// Nanoseconds on the performance counter (monotonic).
///
/// # Suspension safety
/// No lock, no system call on common hardware.
pub fn monotonic_ns() -> u64 {
    let (mut count, mut freq) = (0i64, 0i64);
    // SAFETY: both are writable integers; these calls cannot fail on Windows XP and later.
    unsafe {
        api::QueryPerformanceCounter(&mut count);
        api::QueryPerformanceFrequency(&mut freq);
    }
    if freq <= 0 {
        return 0;
    }
    (count as u128 * 1_000_000_000 / freq as u128) as u64
}

/// Nanoseconds since the Unix epoch.
pub fn realtime_ns() -> u64 {
    let mut t = api::FILETIME::default();
    // SAFETY: t is a writable FILETIME.
    unsafe { api::GetSystemTimePreciseAsFileTime(&mut t) };
    // FILETIME counts 100 ns units since 1601-01-01.
    t.to_u64()
        .saturating_sub(116_444_736_000_000_000)
        .saturating_mul(100)
}

/// CPU time (user and kernel) consumed so far by thread `tid`, or `None` if it has exited.
///
/// Windows accounts thread times at its clock interrupt, so this moves in steps of about
/// 15.6 ms (1 ms when an application raised the timer resolution): at 1000 Hz a busy thread
/// is found due 15 or 16 intervals at once, and its sample carries that weight. Profiles stay
/// proportional; they hold fewer, heavier samples than on Linux.
pub fn thread_cpu_ns(tid: i32) -> Option<u64> {
    let h = Handle::open(tid, api::THREAD_QUERY_LIMITED_INFORMATION)?;
    cpu_ns_of(h.0)
}

/// [`thread_cpu_ns`] of the thread open as `h` (which needs query rights); `None` if it has
/// exited. (Windows' `QueryThreadCycleTime` would be finer, but counts cycles, not time, and
/// wine 8 returns a constant.)
pub(crate) fn cpu_ns_of(h: api::HANDLE) -> Option<u64> {
    // SAFETY: waiting with a zero timeout only reads the thread's state.
    if unsafe { api::WaitForSingleObject(h, 0) } == api::WAIT_OBJECT_0 {
        return None;
    }
    let mut t = [api::FILETIME::default(); 4];
    let [c, e, k, u] = &mut t;
    // SAFETY: four writable FILETIMEs and an open handle.
    let ok = unsafe { api::GetThreadTimes(h, c, e, k, u) };
    (ok != 0).then(|| (t[2].to_u64() + t[3].to_u64()) * 100)
}

/// Sleeps until [`monotonic_ns`] reaches `deadline_ns`, on a high-resolution waitable timer
/// where the system has one (Windows 10 1803 and later), else `Sleep`.
pub fn sleep_until(deadline_ns: u64) {
    let now = monotonic_ns();
    if deadline_ns <= now {
        return;
    }
    let ns = deadline_ns - now;
    // SAFETY: a timer created, waited on and closed here; relative due times are negative
    // 100 ns counts.
    unsafe {
        let timer = api::CreateWaitableTimerExW(
            core::ptr::null_mut(),
            core::ptr::null(),
            api::CREATE_WAITABLE_TIMER_HIGH_RESOLUTION,
            api::TIMER_ALL_ACCESS,
        );
        if timer.is_null() {
            api::Sleep(ns.div_ceil(1_000_000) as u32);
            return;
        }
        let due = -((ns / 100).max(1) as i64);
        if api::SetWaitableTimer(
            timer,
            &due,
            0,
            core::ptr::null_mut(),
            core::ptr::null_mut(),
            0,
        ) != 0
        {
            api::WaitForSingleObject(timer, api::INFINITE);
        } else {
            api::Sleep(ns.div_ceil(1_000_000) as u32);
        }
        api::CloseHandle(timer);
    }
}

/// Sleeps for `ns` nanoseconds.
pub fn sleep_ns(ns: u64) {
    sleep_until(monotonic_ns().saturating_add(ns));
}

/// Whether [`wake`] ends a sleep at once: not here, the sampler polls.
pub const WAKES: bool = false;

/// Sleeps until `deadline_ns` (the sampler polls its stop flag between such sleeps here;
/// Linux wakes it at once).
pub fn sleep_unless_changed(deadline_ns: u64, _word: &core::sync::atomic::AtomicU32, _seen: u32) {
    sleep_until(deadline_ns);
}

/// Nothing to wake here (see [`sleep_unless_changed`]).
pub fn wake(_flag: &core::sync::atomic::AtomicU32) {}

/// CPU time consumed so far by the whole process: not measured here (profiles then count no
/// [`crate::Lost::unseen`]).
pub fn process_cpu_ns() -> Option<u64> {
    None
}
