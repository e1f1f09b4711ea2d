//! The sampling interval over a session, when an overhead budget changes it.

/// Changes kept per session (4 KiB); a budget reviews its rate 20 times a second and changes
/// it when the load does, so a chunk of a minute rarely needs more.
pub(crate) const MAX_RATE_CHANGES: usize = 256;

/// From which moment (monotonic ns) the sampler ticked at which interval (ns), in time order;
/// empty while it ticks at the requested interval. An interval of 0 says that from then on
/// it changed too often to record: the samples' weights still count the intervals each
/// stands for.
pub(crate) struct RateLog {
    entries: [(u64, u64); MAX_RATE_CHANGES],
    len: usize,
}

impl RateLog {
    pub(crate) const fn new() -> Self {
        RateLog {
            entries: [(0, 0); MAX_RATE_CHANGES],
            len: 0,
        }
    }

    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    /// The changes, oldest first.
    pub(crate) fn entries(&self) -> &[(u64, u64)] {
        self.entries.get(..self.len).unwrap_or(&[])
    }

    /// The interval in effect at `at_ns`, if one was recorded by then.
    fn at(&self, at_ns: u64) -> Option<u64> {
        (self.entries().iter().rev())
            .find(|e| e.0 <= at_ns)
            .map(|e| e.1)
    }

    /// Records that the sampler ticks every `interval_ns` from `at_ns` on, in a session
    /// that asked for `requested_ns`.
    #[cfg_attr(any(windows, target_os = "macos"), allow(dead_code))]
    pub(crate) fn set(&mut self, at_ns: u64, interval_ns: u64, requested_ns: u64) {
        if self.len > 0 || interval_ns != requested_ns {
            self.note(at_ns, interval_ns);
        }
    }

    /// Records that the interval is `interval_ns` from `at_ns` on (no earlier than the last
    /// change); nothing if that is the interval already in effect. Once full, the last entry
    /// says from when changes went unrecorded.
    fn note(&mut self, at_ns: u64, interval_ns: u64) {
        let Some(last) = self.len.checked_sub(1) else {
            self.push(at_ns, interval_ns);
            return;
        };
        let (last_at, last_interval) = self.entries[last];
        if last_interval == interval_ns || last_interval == 0 || at_ns < last_at {
            return;
        }
        if self.len == MAX_RATE_CHANGES - 1 {
            self.push(at_ns, 0);
        } else {
            self.push(at_ns, interval_ns);
        }
    }

    fn push(&mut self, at_ns: u64, interval_ns: u64) {
        if let Some(e) = self.entries.get_mut(self.len) {
            *e = (at_ns, interval_ns);
            self.len += 1;
        }
    }

    /// A session that continues `prev` from `start_ns`: the interval `prev` ended with.
    pub(crate) fn continue_from(&mut self, prev: &RateLog, start_ns: u64) {
        self.clear();
        if let Some(&(_, interval)) = prev.entries().last() {
            self.push(start_ns, interval);
        }
    }

    /// Adds `src`'s changes from `since_ns` on, starting with the interval in effect then.
    pub(crate) fn absorb(&mut self, src: &RateLog, since_ns: u64) {
        if let Some(interval) = src.at(since_ns) {
            self.note(since_ns, interval);
        }
        for &(at, interval) in src.entries().iter().filter(|e| e.0 > since_ns) {
            self.note(at, interval);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_kept_in_order_and_repeats_dropped() {
        let mut log = RateLog::new();
        log.note(10, 2_000);
        log.note(20, 2_000);
        log.note(30, 5_000);
        log.note(25, 9_000);
        assert_eq!(log.entries(), &[(10, 2_000), (30, 5_000)]);
    }

    #[test]
    fn a_full_log_says_from_when_changes_went_unrecorded() {
        let mut log = RateLog::new();
        for i in 0..1000u64 {
            log.note(i, 1_000 + i % 2);
        }
        assert_eq!(log.entries().len(), MAX_RATE_CHANGES);
        assert_eq!(
            log.entries().last(),
            Some(&(MAX_RATE_CHANGES as u64 - 1, 0))
        );
        assert_eq!(
            log.entries()[MAX_RATE_CHANGES - 2].1,
            1_000 + (MAX_RATE_CHANGES as u64 - 2) % 2
        );
    }

    #[test]
    fn a_window_starts_with_the_interval_in_effect() {
        let mut seg = RateLog::new();
        seg.note(10, 2_000);
        seg.note(50, 4_000);
        let mut window = RateLog::new();
        window.absorb(&seg, 30);
        assert_eq!(window.entries(), &[(30, 2_000), (50, 4_000)]);
        let mut next = RateLog::new();
        next.continue_from(&seg, 100);
        assert_eq!(next.entries(), &[(100, 4_000)]);
    }
}
