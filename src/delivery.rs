//! Delivery: vignette's own thread takes chunks (on a timer) or windows (when a trigger fires)
//! and hands each to the application's callback, so "write a profile every 10 s" or "upload
//! the last 30 s when the UI hangs" is a few lines.
//!
//! Triggers: a manual one ([`Triggers::fire`]), a hang watchdog fed by [`Heartbeat`]s (a
//! thread marks progress with one store; when a heartbeat is later than its threshold, the
//! capture names that thread), and a panic hook ([`Triggers::catch_panics`]). The delivery
//! thread looks for them every [`POLL`]; nothing here runs in a signal handler.
// Off the signal path: the signal path's lints (lib.rs) do not bind this module.
#![cfg_attr(
    not(test),
    allow(
        clippy::panic,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing
    )
)]

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;
use std::vec::Vec;

use crate::collector::TriggerRec;
use crate::error::{Error, Result};
use crate::profile::{Capture, CaptureConfig, TriggerKind};
use crate::sampler::series::Exchange;
use crate::sys::{threads, time};

/// How often the delivery thread looks for due chunks, triggers and late heartbeats.
pub const POLL: Duration = Duration::from_millis(10);

/// Triggers fired and not yet served; more are dropped (and counted) until one is served.
const MAX_PENDING: usize = 16;

/// How long a panicking thread waits for its window to be delivered before it unwinds on.
const PANIC_WAIT: Duration = Duration::from_secs(2);

/// Fires captures on the delivery thread: manually, from heartbeats that stop, or on a
/// panic. Cheap to clone and to share between threads; firing never blocks on the capture.
#[derive(Clone)]
pub struct Triggers(Arc<State>);

struct State {
    pending: Mutex<Vec<TriggerRec>>,
    beats: Mutex<Vec<Arc<Beat>>>,
    /// Triggers fired, and served (delivered, or failed), in order.
    fired: AtomicU64,
    served: AtomicU64,
    /// Fired while `MAX_PENDING` were waiting, so never served.
    dropped: AtomicU64,
    delivered: AtomicU64,
    /// Chunks whose callback panicked (each lost; the panic is delivered as a trigger).
    failed: AtomicU64,
    /// The heap in use that fires a heap trigger (0: none), and whether it is over it now
    /// (it fires once per crossing).
    heap_over: AtomicU64,
    heap_fired: AtomicBool,
    /// The delivery thread's id: a panic there (in the callback) cannot wait for itself.
    delivery_tid: AtomicI32,
    stop: AtomicBool,
}

struct Beat {
    tid: i32,
    name: std::string::String,
    threshold_ns: u64,
    /// Monotonic nanoseconds of the last beat.
    last_ns: AtomicU64,
    /// The beat a hang was reported at (reported once per silence).
    reported_ns: AtomicU64,
    live: AtomicBool,
}

/// A thread's heartbeat for the hang watchdog ([`Triggers::heartbeat`]). Call
/// [`Heartbeat::beat`] whenever the thread makes progress (each frame, each request, each loop
/// turn); dropping it stops the watch.
pub struct Heartbeat(Arc<Beat>);

impl Heartbeat {
    /// Marks progress now: one clock read and one atomic store, no allocation, no lock.
    pub fn beat(&self) {
        self.0.last_ns.store(time::monotonic_ns(), Relaxed);
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.live.store(false, Relaxed);
    }
}

impl Triggers {
    fn new() -> Triggers {
        Triggers(Arc::new(State {
            pending: Mutex::new(Vec::with_capacity(MAX_PENDING)),
            beats: Mutex::new(Vec::new()),
            fired: AtomicU64::new(0),
            served: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            delivery_tid: AtomicI32::new(0),
            heap_over: AtomicU64::new(0),
            heap_fired: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        }))
    }

    /// Captures now (a flight recorder's window; otherwise the chunk since the last one),
    /// marked as a manual trigger by the calling thread with `note`. Returns at once; the
    /// delivery thread captures within 10 ms.
    pub fn fire(&self, note: &str) {
        self.0.push(TriggerRec::new(
            TriggerKind::Manual,
            threads::gettid(),
            0,
            note,
        ));
    }

    /// Watches the calling thread: when its heartbeat has been silent for longer than
    /// `threshold`, a capture is taken, marked as a hang of this thread with `name` as the note
    /// (once per silence: the next hang is reported after the thread beats again). The
    /// heartbeat starts beaten now.
    pub fn heartbeat(&self, name: &str, threshold: Duration) -> Heartbeat {
        let now = time::monotonic_ns();
        let beat = Arc::new(Beat {
            tid: threads::gettid(),
            name: name.into(),
            threshold_ns: u64::try_from(threshold.as_nanos()).unwrap_or(u64::MAX),
            last_ns: AtomicU64::new(now),
            reported_ns: AtomicU64::new(0),
            live: AtomicBool::new(true),
        });
        lock(&self.0.beats).push(beat.clone());
        Heartbeat(beat)
    }

    /// Captures when the heap in use, as the allocation sampler estimates it
    /// ([`crate::Builder::sample_allocations`]), grows past `bytes`: once per crossing (it fires
    /// again after the heap fell below 90% of `bytes`), marked as a heap trigger whose note
    /// says how much was in use. 0 turns it off. Looked at every 10 ms.
    pub fn heap_over(&self, bytes: u64) {
        self.0.heap_fired.store(false, Relaxed);
        self.0.heap_over.store(bytes, Relaxed);
    }

    /// Installs a panic hook (after the one already installed, which still runs) that
    /// captures when a thread panics, marked with the panicking thread and the message, and
    /// waits up to 2 s for the capture to be delivered, so that a panic that aborts the
    /// process is still reported. The hook does nothing once the profiler is gone.
    pub fn catch_panics(&self) {
        let weak: Weak<State> = Arc::downgrade(&self.0);
        let previous = std::panic::take_hook();
        std::panic::set_hook(std::boxed::Box::new(move |info| {
            if let Some(state) = weak.upgrade() {
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| {
                        info.payload()
                            .downcast_ref::<std::string::String>()
                            .map(|s| s.as_str())
                    })
                    .unwrap_or("");
                let note = match info.location() {
                    Some(l) => std::format!("{message} ({}:{})", l.file(), l.line()),
                    None => message.into(),
                };
                let ticket = state.push(TriggerRec::new(
                    TriggerKind::Panic,
                    threads::gettid(),
                    0,
                    &note,
                ));
                // A panic in the callback, on the delivery thread: its capture comes after
                // the callback returns, so waiting here would only stall delivery.
                let own = threads::gettid() == state.delivery_tid.load(Relaxed);
                let deadline = std::time::Instant::now() + PANIC_WAIT;
                while !own
                    && ticket.is_some_and(|t| state.served.load(Acquire) < t)
                    && !state.stop.load(Relaxed)
                    && std::time::Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            previous(info);
        }));
    }

    /// Chunks and windows handed to the callback so far.
    pub fn delivered(&self) -> u64 {
        self.0.delivered.load(Acquire)
    }

    /// Chunks and windows lost because the callback panicked on them (each panic is then
    /// delivered as a [`TriggerKind::Panic`] capture when [`Triggers::catch_panics`] is on).
    pub fn failed(&self) -> u64 {
        self.0.failed.load(Acquire)
    }

    /// Triggers that fired while 16 others were waiting, and so were not captured.
    pub fn dropped(&self) -> u64 {
        self.0.dropped.load(Relaxed)
    }
}

impl State {
    /// Queues `t`; returns its ticket (the `served` count that includes it), `None` if the
    /// queue was full.
    fn push(&self, t: TriggerRec) -> Option<u64> {
        let mut q = lock(&self.pending);
        if q.len() >= MAX_PENDING {
            self.dropped.fetch_add(1, Relaxed);
            return None;
        }
        q.push(t);
        Some(self.fired.fetch_add(1, AcqRel) + 1)
    }

    /// The oldest pending trigger, if any.
    fn pop(&self) -> Option<TriggerRec> {
        let mut q = lock(&self.pending);
        (!q.is_empty()).then(|| q.remove(0))
    }

    /// Queues a heap trigger when the heap in use crossed its threshold.
    fn check_heap(&self) {
        let over = self.heap_over.load(Relaxed);
        let Some(tables) = crate::alloc::tables().filter(|_| over > 0) else {
            return;
        };
        let live = tables.inuse_bytes();
        if live > over && !self.heap_fired.swap(true, Relaxed) {
            let note = std::format!("heap in use {live} bytes, over {over}",);
            self.push(TriggerRec::new(TriggerKind::Heap, 0, 0, &note));
        } else if live < over / 10 * 9 {
            self.heap_fired.store(false, Relaxed);
        }
    }

    /// Queues a hang trigger for every heartbeat silent past its threshold (once per
    /// silence), and forgets dropped heartbeats.
    fn check_heartbeats(&self) {
        let now = time::monotonic_ns();
        let mut hung = Vec::new();
        {
            let mut beats = lock(&self.beats);
            beats.retain(|b| b.live.load(Relaxed));
            for b in beats.iter() {
                let last = b.last_ns.load(Relaxed);
                let late = now.saturating_sub(last);
                if late > b.threshold_ns && b.reported_ns.swap(last, Relaxed) != last {
                    hung.push(TriggerRec::new(TriggerKind::Hang, b.tid, late, &b.name));
                }
            }
        }
        for t in hung {
            self.push(t);
        }
    }
}

/// A mutex's contents, even if a thread panicked while holding it (the data stays valid:
/// every critical section here is a push, a pop or a scan).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The running delivery thread.
pub(crate) struct Delivery {
    thread: JoinHandle<()>,
    triggers: Triggers,
}

/// The exchange, sent to the delivery thread.
struct ExchangePtr(*const Exchange);
// SAFETY: `Exchange` is Sync, and the profiler keeps it alive until the delivery thread has
// been joined (`Delivery::finish` runs before the profiler drops it).
unsafe impl Send for ExchangePtr {}

impl Delivery {
    /// Starts the delivery thread: a chunk every `every` (if given), and one per trigger.
    ///
    /// # Safety
    /// `exchange` stays valid, with the sampler thread serving it, until [`Delivery::finish`]
    /// returns; nothing else requests chunks meanwhile.
    pub unsafe fn start(
        exchange: *const Exchange,
        config: CaptureConfig,
        every: Option<Duration>,
        mut on_chunk: std::boxed::Box<dyn FnMut(&Capture<'_>) + Send>,
    ) -> Result<Delivery> {
        let triggers = Triggers::new();
        let state = triggers.0.clone();
        let exchange = ExchangePtr(exchange);
        let every_ns = every.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1));
        let thread = std::thread::Builder::new()
            .name("vignette-deliver".into())
            .spawn(move || {
                let exchange = exchange;
                state.delivery_tid.store(threads::gettid(), Relaxed);
                // SAFETY: per `start`'s contract.
                let exchange = unsafe { &*exchange.0 };
                let mut next_due = every_ns.map(|e| time::monotonic_ns().saturating_add(e));
                while !state.stop.load(Acquire) {
                    std::thread::sleep(POLL);
                    state.check_heartbeats();
                    state.check_heap();
                    let now = time::monotonic_ns();
                    let trigger = state.pop();
                    let due = next_due.is_some_and(|d| now >= d);
                    if trigger.is_none() && !due {
                        continue;
                    }
                    if due {
                        next_due = every_ns.map(|e| now.saturating_add(e));
                    }
                    // SAFETY: this thread is the only reader, and holds no output reference.
                    let served = unsafe { exchange.request(trigger.unwrap_or(TriggerRec::NONE)) };
                    if served.is_ok() {
                        // SAFETY: served, and the next request is this thread's own.
                        let c = unsafe { exchange.output() };
                        let capture = config.capture(c);
                        // A panicking callback costs its chunk, not the delivery thread.
                        let delivered =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                on_chunk(&capture)
                            }));
                        match delivered {
                            Ok(()) => state.delivered.fetch_add(1, AcqRel),
                            Err(_) => state.failed.fetch_add(1, AcqRel),
                        };
                    }
                    if trigger.is_some() {
                        state.served.fetch_add(1, AcqRel);
                    }
                }
            })
            .map_err(|_| Error::Sys {
                call: "spawning the delivery thread",
                errno: 0,
            })?;
        Ok(Delivery { thread, triggers })
    }

    /// The triggers of this delivery.
    pub fn triggers(&self) -> Triggers {
        self.triggers.clone()
    }

    /// Stops the delivery thread and waits for it (a callback in progress finishes first).
    pub fn finish(self) {
        self.triggers.0.stop.store(true, Release);
        let _ = self.thread.join();
    }
}
