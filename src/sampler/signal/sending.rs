//! Which thread to interrupt when, and what its signal carries: the sending policy of the
//! sampler thread (and of `sample_once`).

use core::sync::atomic::Ordering::*;

use crate::collector::{Collector, SlotRec, SlotState};
use crate::profile::Clock;
use crate::sys::time;

use super::Shared;

const TAG: u64 = 0x5647; // "VG"

/// What a signal carries: packed into the 64-bit `sigval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    pub generation: u16,
    pub slot: u16,
    pub weight: u16,
}

impl Token {
    pub fn pack(self) -> u64 {
        TAG << 48 | (self.generation as u64) << 32 | (self.slot as u64) << 16 | self.weight as u64
    }

    /// # Signal safety
    /// Async-signal-safe.
    pub fn unpack(v: u64) -> Option<Token> {
        (v >> 48 == TAG).then_some(Token {
            generation: (v >> 32) as u16,
            slot: (v >> 16) as u16,
            weight: v as u16,
        })
    }
}

/// How long a thread may leave a signal unanswered before it is sent another.
pub(super) const ANSWER_TIMEOUT_NS: u64 = 100_000_000;

/// How often the waits for answers look again.
const ANSWER_POLL_NS: u64 = 20_000;

/// The sampler thread's loop state for one signal round.
pub(crate) struct Round {
    pub tick: u32,
    pub timeout_ticks: u32,
}

/// Sends one round of signals: to every tracked live thread (clock `Wall`, with `wall_weight`)
/// or to every thread that used at least one interval of CPU since its last sample (clock
/// `Cpu`). Threads that have not answered their previous signal are skipped and counted.
pub(crate) fn signal_round(
    c: &mut Collector,
    shared: &Shared,
    clock: Clock,
    interval_ns: u64,
    wall_weight: u32,
    generation: u32,
    round: &Round,
) {
    for i in 0..c.slots_len {
        let Some(&SlotRec {
            tid, state, fresh, ..
        }) = c.slots.get(i)
        else {
            break;
        };
        if state != SlotState::Live {
            continue;
        }
        if fresh {
            // A slot's previous thread may have exited with a signal unanswered.
            if let Some(ack) = shared.acks.get(i) {
                ack.store(0, Release);
            }
            if let Some(s) = c.slot_mut(i) {
                s.fresh = false;
            }
        }
        let Some(weight) = c.due_weight(i, clock, wall_weight, interval_ns, || {
            time::thread_cpu_ns(tid)
        }) else {
            continue;
        };
        let Some(ack) = shared.acks.get(i) else {
            continue;
        };
        let sent = ack.load(Acquire);
        if sent != 0 && round.tick.wrapping_sub(sent) < round.timeout_ticks {
            count_unanswered(c, i, weight as u64, shared.signal);
            continue;
        }
        // A thread whose last signal is still pending because it blocks the signal is not
        // signalled again: another signal would only wait behind the first (or, for a
        // real-time signal, take one more of the user's pending-signal slots each time). Its
        // intervals count as blocked; its mask is looked at again once a second. (A thread
        // seen with the signal blocked while it was only running vignette's handler answers,
        // which clears `sent`, and is signalled as usual.)
        if sent != 0
            && c.slots.get(i).is_some_and(|s| s.blocks_signal)
            && still_blocks(c, i, shared.signal)
        {
            c.lost.signal_blocked += weight as u64;
            continue;
        }
        ack.store(round.tick.max(1), Release);
        if let Some(s) = c.slot_mut(i) {
            s.sent_weight = weight;
        }
        let token = Token {
            generation: generation as u16,
            slot: i as u16,
            weight: weight.min(u16::MAX as u32) as u16,
        };
        if let Err(errno) = shared.sender.send(tid, token.pack()) {
            ack.store(0, Release);
            if errno == libc::ESRCH {
                c.mark_dead(i);
            } else {
                c.lost.unanswered += weight as u64;
            }
        }
    }
}

/// Waits up to `timeout_ns` for every thread's outstanding signal to be answered, then
/// forgets those still outstanding, counting the intervals they stood for as unanswered (a
/// sample a thread publishes later is never drained).
pub(crate) fn wait_for_answers(shared: &Shared, c: &mut Collector, timeout_ns: u64) {
    let deadline = time::monotonic_ns() + timeout_ns;
    let acks = shared.acks.get(..c.slots_len).unwrap_or(&[]);
    while acks.iter().any(|a| a.load(Acquire) != 0) && time::monotonic_ns() < deadline {
        time::sleep_ns(ANSWER_POLL_NS);
    }
    for (i, a) in acks.iter().enumerate() {
        if a.swap(0, AcqRel) != 0 {
            let weight = c.slots.get(i).map_or(1, |s| s.sent_weight.max(1));
            count_unanswered(c, i, weight as u64, shared.signal);
        }
    }
}

/// How often a thread whose signals go unanswered is looked at again for blocking them.
pub(crate) const BLOCK_CHECK_NS: u64 = 1_000_000_000;

/// Counts the `intervals` slot `i`'s unanswered signal leaves unsampled: as `signal_blocked`
/// when its thread blocks `signal` (looked up at most once a second per thread), else as
/// `unanswered`.
pub(crate) fn count_unanswered(c: &mut Collector, i: usize, intervals: u64, signal: i32) {
    let now = time::monotonic_ns();
    let blocked = match c.slot_mut(i) {
        Some(s) if s.block_checked_ns == 0 || now >= s.block_checked_ns + BLOCK_CHECK_NS => {
            look_at_mask(s, signal, now)
        }
        Some(s) => s.blocks_signal,
        None => false,
    };
    match blocked {
        true => c.lost.signal_blocked += intervals,
        false => c.lost.unanswered += intervals,
    }
}

/// Whether slot `i`'s thread, seen blocking `signal`, still does (its mask read again when
/// the last look is a second old).
fn still_blocks(c: &mut Collector, i: usize, signal: i32) -> bool {
    let now = time::monotonic_ns();
    match c.slot_mut(i) {
        Some(s) if now >= s.block_checked_ns + BLOCK_CHECK_NS => look_at_mask(s, signal, now),
        Some(s) => s.blocks_signal,
        None => false,
    }
}

/// Reads whether slot `s`'s thread blocks `signal` (at `now`, monotonic) into the slot, and
/// returns it; a thread already gone keeps what was last seen of it.
pub(crate) fn look_at_mask(s: &mut SlotRec, signal: i32, now: u64) -> bool {
    s.block_checked_ns = now;
    if let Some(blocks) = crate::sys::threads::blocks_signal(s.tid, signal) {
        s.blocks_signal = blocks;
    }
    s.blocks_signal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_foreign_values() {
        let t = Token {
            generation: 7,
            slot: 300,
            weight: 2,
        };
        assert_eq!(Token::unpack(t.pack()), Some(t));
        assert_eq!(Token::unpack(12345), None);
        assert_eq!(Token::unpack(0), None);
    }
}
