//! The sampling machinery: the signal handler ([`handler`]), the state it shares with the rest
//! of the profiler ([`shared`]), which thread to interrupt when ([`sending`]), and the sampler
//! thread's loop (here).
//!
//! # What the handler may do
//! The handler runs on the interrupted thread at any instruction, possibly inside `malloc` or
//! while that thread holds a lock. So it, and everything it calls:
//! - never allocates, never takes a lock (not even an uncontended one), never panics;
//! - never calls the dynamic loader or libgcc's unwinder, never does `std::io`;
//! - touches only memory mapped before sampling began ([`Shared`]), and reads the interrupted
//!   stack only inside bounds from the mapping snapshot ([`crate::stacks`]);
//! - saves and restores `errno`.
//!
//! Each signal carries a token (sent with `rt_tgsigqueueinfo`): a tag, the session generation,
//! the sampler's index for the thread and the sample's weight. Signals without our token (from
//! `kill`, a timer, another process) are ignored; signals of an earlier session are discarded.

pub(crate) mod handler;
pub(crate) mod sending;
pub(crate) mod shared;
mod timed;
mod watch;

pub(crate) use handler::{claim_handler, release_handler, release_inherited_handler};
// The heap sampler's (`crate::alloc`, which needs `std`).
#[cfg(feature = "std")]
pub(crate) use handler::walk_own_stack;
use sending::ANSWER_TIMEOUT_NS;
pub(crate) use sending::{signal_round, wait_for_answers, Round, Token};
pub(crate) use shared::Shared;
pub(crate) use timed::choose as choose_backend;

use core::ffi::c_void;
use core::sync::atomic::Ordering::*;

use super::pace::{Pacer, Spent};
use super::series::Series;
use crate::collector::{Collector, SamplerCpu, SlotState};
use crate::profile::{Backend, Clock};
use crate::profiler::Target;
use crate::sys::fault_guard;
use crate::sys::mem::{MapBox, Region};
use crate::sys::{signal, spawn, threads, time};
use watch::{ThreadWatch, Tracked};

/// How often the sampler thread looks whether the process's threads changed ([`watch`]).
const SCAN_NS: u64 = 10_000_000;

/// How soon `/proc/self/maps` is read again when samples met stacks it did not list.
const STACK_REFRESH_NS: u64 = 5_000_000;

/// How long stopping waits for the last signals sent to be answered.
const FINAL_ANSWER_NS: u64 = 20_000_000;

/// What the sampler thread works with; owned by it while it runs.
pub(crate) struct Job {
    pub shared: *const Shared,
    /// The active session's tables.
    pub collector: Collector,
    /// Rotation and the flight recorder.
    pub series: Series,
    pub clock: Clock,
    pub backend: Backend,
    pub interval_ns: u64,
    pub generation: u32,
    /// What the sampler thread holds per tracked thread, by slot.
    tracked: Region<Tracked>,
}

/// The sampler thread's entry point.
pub(super) extern "C" fn sampler_main(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `start` passes a Job pointer it keeps alive (and does not touch) until it has
    // joined this thread.
    let job = unsafe { &mut *(arg as *mut Job) };
    // SAFETY: the profiler frees Shared only after joining this thread.
    let shared = unsafe { &*job.shared };
    run(job, shared);
    core::ptr::null_mut()
}

fn run(job: &mut Job, shared: &Shared) {
    // This thread's CPU time is vignette's, not the application's, until it ends.
    let _sampler_cpu = SamplerCpu::start();
    signal::block_in_this_thread(shared.signal);
    spawn::set_current_name(c"vignette");
    time::set_minimal_timer_slack();
    let me = threads::gettid();
    let c = &mut job.collector;
    // Threads alive now start their CPU accounting now; threads born later, at zero.
    // The namespace's last id given out, read before listing (see `watch`).
    let last_pid = threads::LastPid::open();
    let last_pid_listed = last_pid.as_ref().and_then(threads::LastPid::read);
    let scan = c.scan_threads(me, 1, |tid| time::thread_cpu_ns(tid).unwrap_or(0));
    c.reset_cpu_marks();
    shared.stacks.refresh();
    shared.refresh_modules(&mut c.modules, false);
    let mut watch = ThreadWatch::new(
        shared,
        scan,
        last_pid,
        last_pid_listed,
        time::monotonic_ns(),
    );
    match job.backend {
        Backend::PerfEvents | Backend::CpuTimers => timed::run(job, shared, me, &mut watch),
        _ => {
            watch.sync(shared, c, &mut job.tracked, None, 1);
            signal_each_tick(job, shared, me, &mut watch);
            watch.release_all(shared, &mut job.collector, &mut job.tracked, None);
        }
    }
    wait_for_answers(shared, &mut job.collector, FINAL_ANSWER_NS);
    drain(&mut job.collector, shared, job.generation);
}

/// The sampler thread's loop under [`Backend::SamplerThread`]: every interval, signal each
/// thread due a sample (every thread, or under `Clock::Cpu` those that used an interval of
/// CPU since their last one), then drain the ring.
fn signal_each_tick(job: &mut Job, shared: &Shared, me: i32, watch: &mut ThreadWatch) {
    let c = &mut job.collector;
    let interval = job.interval_ns;
    let delivery_ns = match shared.pacing.budget_ppm != 0 {
        true => handler::calibrate_delivery(shared),
        false => 0,
    };
    let mut tick = 0u32;
    let mut now = time::monotonic_ns();
    let mut pacer = Pacer::new(interval, now, &shared.pacing, delivery_ns);
    let mut next_scan = now + SCAN_NS;
    let mut next_maps = now;
    let mut wall_weight = 1;
    let mut taken = false;
    while shared.stop.load(Acquire) == 0 {
        if now >= next_scan {
            if let Some((scan, _)) = watch.scan_if_changed(c, me, now, interval) {
                if scan.changed {
                    shared.stacks.refresh();
                }
                watch.sync(shared, c, &mut job.tracked, None, 0);
            }
            next_scan = now + SCAN_NS;
        }
        // Libraries loaded or unloaded since the last tick reach the handler now.
        shared.refresh_modules(&mut c.modules, false);
        // A fault handler installed after ours would see our recovered faults: stay on top.
        fault_guard::ensure_installed();
        tick = tick.wrapping_add(1);
        let round = Round {
            tick,
            timeout_ticks: (ANSWER_TIMEOUT_NS / pacer.period_ns()).max(2) as u32,
        };
        // The program has a handler of its own on the signal: send nothing (it would reach
        // that handler) and count what is not sampled meanwhile.
        match (handler::owns_signal(shared), job.clock) {
            (true, _) => {
                // (Only under the CPU clock: the wall clock counts each tick as it goes.)
                if core::mem::take(&mut taken) {
                    c.count_signal_taken(interval);
                }
                signal_round(
                    c,
                    shared,
                    job.clock,
                    interval,
                    wall_weight,
                    job.generation,
                    &round,
                );
            }
            (false, Clock::Wall) => c.lost.signal_taken += wall_weight as u64 * c.live() as u64,
            (false, Clock::Cpu) => taken = true,
        }
        let generation = job.generation;
        let mut drain_into = |c: &mut Collector| {
            drain(c, shared, generation);
        };
        drain_into(c);
        if c.take_stack_misses() > 0 && now >= next_maps {
            shared.stacks.refresh();
            next_maps = now + STACK_REFRESH_NS;
        }
        job.series.tick(c, &mut drain_into, &shared.ring_full);
        pacer.review(now, &shared.pacing, |handler_ns, delivery_ns| Spent {
            process_ns: time::process_cpu_ns().unwrap_or(0),
            vignette_ns: time::own_thread_cpu_ns().unwrap_or(0) + handler_ns + delivery_ns,
        });
        c.rates.set(now, pacer.period_ns(), interval);
        job.series.sleep_serving(
            pacer.next_tick(),
            c,
            &mut drain_into,
            &shared.ring_full,
            &shared.stop,
        );
        now = time::monotonic_ns();
        // Fell behind (the machine is overloaded)? Skip the missed ticks, and let the next
        // wall-clock samples stand for them.
        wall_weight = pacer.tick(now);
    }
    if taken {
        c.count_signal_taken(interval);
    } else if job.clock == Clock::Cpu && pacer.period_ns() > interval {
        // Ticks many intervals apart (an overhead budget): one more round, so that what each
        // live thread used since its last sample is weighed, not left unseen.
        let round = Round {
            tick: tick.wrapping_add(1),
            timeout_ticks: 2,
        };
        signal_round(c, shared, job.clock, interval, 1, job.generation, &round);
    }
}

/// Drains the ring into the session's tables (see [`Collector::drain`]).
pub(crate) fn drain(c: &mut Collector, shared: &Shared, generation: u32) -> usize {
    c.drain(
        &shared.ring,
        |modules| shared.refresh_modules(modules, false),
        generation,
    )
}

impl Job {
    /// The job of a profiler whose shared state is `shared`.
    pub fn new(
        shared: &MapBox<Shared>,
        collector: Collector,
        series: Series,
        clock: Clock,
        backend: Backend,
        interval_ns: u64,
    ) -> crate::error::Result<Job> {
        let collector_slots = collector.slots.len();
        Ok(Job {
            shared: &**shared,
            collector,
            series,
            clock,
            backend,
            interval_ns,
            generation: 0,
            tracked: Region::not_inherited(collector_slots)?,
        })
    }

    /// Bytes mapped for the job's tables.
    pub fn mapped_bytes(&self) -> usize {
        self.collector.mapped_bytes()
            + self
                .series
                .recorder
                .as_ref()
                .map_or(0, |r| r.mapped_bytes())
    }
}

/// Samples `target` now, from the calling thread (the sampler thread not running), into the
/// open session `generation`; threads that do not answer within `timeout_ns` are counted as
/// lost. Returns how many samples were kept.
pub(crate) fn sample_now(
    shared: &Shared,
    job: &mut Job,
    generation: u32,
    target: Target,
    timeout_ns: u64,
) -> crate::error::Result<usize> {
    let c = &mut job.collector;
    c.scan_threads(-1, 1, |_| 0);
    if !handler::owns_signal(shared) {
        // The program's own handler would get the signals.
        c.lost.signal_taken += match target {
            Target::AllThreads => c.live() as u64,
            Target::Thread(_) => 1,
        };
        return Ok(0);
    }
    shared.stacks.refresh();
    shared.refresh_modules(&mut c.modules, false);
    match target {
        Target::AllThreads => {
            for i in 0..c.slots_len {
                let Some(&s) = c.slots.get(i) else { break };
                if s.state == SlotState::Live {
                    send_sample_signal(shared, c, generation, i, s.tid);
                }
            }
        }
        Target::Thread(tid) => {
            let i = c
                .find_thread(tid)
                .ok_or(crate::error::Error::NoSuchThread(tid))?;
            send_sample_signal(shared, c, generation, i, tid);
        }
    }
    wait_for_answers(shared, c, timeout_ns);
    Ok(drain(c, shared, generation))
}

/// Sends thread `tid` (slot `slot`) a sampling signal of session `generation`, marking it as
/// awaited; a thread found dead is marked so.
pub(crate) fn send_sample_signal(
    shared: &Shared,
    c: &mut Collector,
    generation: u32,
    slot: usize,
    tid: i32,
) {
    let Some(ack) = shared.acks.get(slot) else {
        return;
    };
    ack.store(1, Release);
    if let Some(s) = c.slot_mut(slot) {
        s.sent_weight = 1;
    }
    let token = Token {
        generation: generation as u16,
        slot: slot as u16,
        weight: 1,
    };
    if let Err(errno) = shared.sender.send(tid, token.pack()) {
        ack.store(0, Release);
        if errno == libc::ESRCH {
            c.mark_dead(slot);
        }
    }
}
