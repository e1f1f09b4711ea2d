//! Clocks: monotonic and wall time, per-thread CPU time, and sleeping to a deadline.

use super::api;

/// Nanoseconds on the monotonic clock (`CLOCK_UPTIME_RAW` does not advance in sleep, as
/// `CLOCK_MONOTONIC` on Linux).
///
/// # Suspension safety
/// Reads the commpage: no lock, no system call.
pub fn monotonic_ns() -> u64 {
    // SAFETY: takes a clock id and returns a value.
    unsafe { api::clock_gettime_nsec_np(libc::CLOCK_UPTIME_RAW) }
}

/// Nanoseconds since the Unix epoch.
pub fn realtime_ns() -> u64 {
    // SAFETY: as above.
    unsafe { api::clock_gettime_nsec_np(libc::CLOCK_REALTIME) }
}

/// CPU time (user and system) consumed so far by thread `tid` (its Mach port name), or
/// `None` if it has exited. The kernel reports it in microseconds.
pub fn thread_cpu_ns(tid: i32) -> Option<u64> {
    let info: api::thread_basic_info =
        api::thread_info_of(tid as api::mach_port_t, api::THREAD_BASIC_INFO)?;
    let ns = |t: api::time_value_t| {
        t.seconds.max(0) as u64 * 1_000_000_000 + t.microseconds.max(0) as u64 * 1_000
    };
    Some(ns(info.user_time) + ns(info.system_time))
}

/// Sleeps until [`monotonic_ns`] reaches `deadline_ns`.
pub fn sleep_until(deadline_ns: u64) {
    loop {
        let now = monotonic_ns();
        if deadline_ns <= now {
            return;
        }
        let ns = deadline_ns - now;
        let t = libc::timespec {
            tv_sec: (ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (ns % 1_000_000_000) as libc::c_long,
        };
        // SAFETY: `t` is a valid timespec; an interrupted sleep is resumed by the loop.
        unsafe { libc::nanosleep(&t, core::ptr::null_mut()) };
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
