//! The signal handler: what it does with a signal (check the token, walk the interrupted
//! stack, put the sample in the ring) and how it is installed and released. Everything here
//! runs under the contract in the [`super`] module docs.

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering::*};

use crate::error::Result;
use crate::labels;
use crate::ring::SampleMeta;
use crate::sys::fault_guard;
use crate::sys::fault_guard::ReadMode;
use crate::sys::mem::MapBox;
use crate::sys::signal::{Interrupted, Origin};
use crate::sys::stack::{CopyBuffer, LiveStack};
use crate::sys::{signal, time};
use crate::unwind::{fp, only_ip, walk_above, EndReason, NoCode, Regs, Unwinder};

use super::{Shared, Token};

/// The profiler whose handler state is live, or null.
static ACTIVE: AtomicPtr<Shared> = AtomicPtr::new(core::ptr::null_mut());
/// Handlers currently between loading and releasing `ACTIVE`.
static IN_HANDLER: AtomicUsize = AtomicUsize::new(0);

/// How long releasing the handler waits for handlers still running (a thread stopped by a
/// debugger mid-sample may never finish).
const RELEASE_TIMEOUT_NS: u64 = 1_000_000_000;

/// How often releasing the handler looks again.
const RELEASE_POLL_NS: u64 = 50_000;

impl Shared {
    /// Walks the interrupted thread's stack into `frames`, reading it as `mode` says (see
    /// [`fault_guard::read_mode`]).
    ///
    /// # Signal safety
    /// Async-signal-safe: pins the stack and code snapshots, then walks with bounds-checked
    /// reads that cannot fault.
    fn unwind(&self, regs: &Regs, mode: ReadMode, frames: &mut [u64]) -> Walked {
        match mode {
            ReadMode::Guarded(_) => self.unwind_with(regs, Reader::Live(mode, None), frames, 0),
            ReadMode::Copied => {
                let copy = CopyBuffer::new(self.sender.pid());
                let reader = Reader::Live(mode, Some(&copy));
                let mut walked = self.unwind_with(regs, reader, frames, 0);
                if copy.refused.get() {
                    (walked.len, walked.end) = only_ip(regs, frames, EndReason::NoSafeRead);
                }
                walked
            }
        }
    }

    /// Walks a stack as `reader` says into `frames`, leaving out frames at or below
    /// `above_sp` (see [`walk_frames`](crate::unwind::walk_above)).
    ///
    /// # Signal safety
    /// Async-signal-safe, as [`Shared::unwind`].
    fn unwind_with(
        &self,
        regs: &Regs,
        reader: Reader<'_>,
        frames: &mut [u64],
        above_sp: u64,
    ) -> Walked {
        // The code map table the walk uses, or (frame pointers, or no table) the current one:
        // its epoch tells the drain which modules were mapped.
        let mut code_epoch = self.code.epoch();
        let walked = self.stacks.read(|ranges| {
            let mut stack = match reader {
                Reader::Live(mode, copy) => {
                    // SAFETY: `mode` was chosen for this signal, and the reader lives only
                    // inside this handler.
                    unsafe { LiveStack::new(ranges, regs.sp(), mode, copy) }?
                }
                // SAFETY: the caller of `walk_own_stack` checked the guard, and walks its own
                // stack.
                Reader::Own => unsafe { LiveStack::own(ranges, regs.sp()) },
            };
            // Frames the loader holds differently now than the table lists (a module unloaded
            // since, JIT code in its place) are marked, so the drain never attributes them to
            // a module that was not there.
            // A thread's own walk leaves out frames by their stack pointers: the hybrid walker.
            let unwinder = match above_sp {
                0 => self.unwinder,
                _ => Unwinder::Cfi,
            };
            Some(match unwinder {
                Unwinder::FramePointers => {
                    let walked = fp::walk(regs, &stack, frames);
                    self.code.read(|code| {
                        code_epoch = code.epoch;
                        code.mark_unlisted(frames.get_mut(..walked.0).unwrap_or_default());
                    });
                    walked
                }
                Unwinder::Cfi => match self.code.read(|code| {
                    code_epoch = code.epoch;
                    let rules = Some(&self.rules);
                    let walked = walk_above(regs, &mut stack, code, rules, frames, above_sp);
                    code.mark_unlisted(frames.get_mut(..walked.0).unwrap_or_default());
                    walked
                }) {
                    Some(walked) => walked,
                    None => walk_above(regs, &mut stack, &NoCode, None, frames, above_sp),
                },
            })
        });
        let (len, end) = match walked.flatten() {
            Some(walked) => walked,
            None => only_ip(regs, frames, EndReason::NoStackBounds),
        };
        Walked {
            len,
            end,
            code_epoch,
        }
    }

    /// Records one sample of the interrupted thread.
    ///
    /// # Signal safety
    /// Async-signal-safe: see [`Shared::record`]; the work runs on one of vignette's handler
    /// stacks, since the interrupted stack may be an alternate signal stack a program's own
    /// handler has nearly filled.
    fn take_sample(&self, token: Token, regs: &Regs, interrupted: &Interrupted) {
        let generation = self.generation.load(Acquire);
        if token.generation != generation as u16 {
            return;
        }
        let on_handler_stack = self.handler_stacks.run(&mut |entry_sp| {
            let mode = fault_guard::read_mode(
                interrupted.alt_stack,
                entry_sp,
                interrupted.frame_bytes,
                interrupted.faults_blocked,
            );
            self.record(token, generation, regs, Some(mode));
        });
        if !on_handler_stack {
            // Every handler stack is busy: the interrupted address only, from here.
            self.record(token, generation, regs, None);
        }
        if let Some(ack) = self.acks.get(token.slot as usize) {
            ack.store(0, Release);
        }
    }

    /// Publishes a sample of session `generation` in the ring: the stack walked with `mode`,
    /// or without one only the interrupted address. Under an overhead budget, some are timed.
    ///
    /// # Signal safety
    /// Async-signal-safe: lock-free ring claim, bounded frame walk over bounds-checked reads,
    /// `clock_gettime` (a vDSO call, no system call on common clock sources; under an
    /// overhead budget, the thread's CPU clock twice in every 8th sample) and atomics.
    fn record(&self, token: Token, generation: u32, regs: &Regs, mode: Option<ReadMode>) {
        let cpu_at = match self.pacing.count_handled() {
            true => time::own_thread_cpu_ns(),
            false => None,
        };
        match self.ring.claim() {
            None => {
                self.ring_full.fetch_add(token.weight as u64, Relaxed);
            }
            Some(mut slot) => {
                let time_ns = time::monotonic_ns();
                let frames = slot.frames();
                let walked = match mode {
                    Some(mode) => self.unwind(regs, mode, frames),
                    None => {
                        let (len, end) = only_ip(regs, frames, EndReason::NoStackBounds);
                        Walked {
                            len,
                            end,
                            code_epoch: self.code.epoch(),
                        }
                    }
                };
                slot.publish(SampleMeta {
                    time_ns,
                    thread: token.slot as u32,
                    weight: token.weight as u32,
                    len: walked.len as u32,
                    end: walked.end as u8,
                    generation,
                    code_epoch: walked.code_epoch,
                    labels: labels::of_current_thread(),
                });
            }
        }
        if let (Some(at), Some(now)) = (cpu_at, cpu_at.and_then(|_| time::own_thread_cpu_ns())) {
            self.pacing.add_timed(now.saturating_sub(at));
        }
    }
}

/// How a walk reads the stack.
#[derive(Clone, Copy)]
enum Reader<'a> {
    /// The interrupted thread's, from its handler, as [`fault_guard::read_mode`] chose (with
    /// the buffer [`ReadMode::Copied`] needs).
    Live(ReadMode, Option<&'a CopyBuffer>),
    /// The calling thread's own, through guarded loads.
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    Own,
}

/// Walks the calling thread's own stack from `regs` (read by the thread itself, see
/// [`crate::sys::here`]) into `frames`, leaving out the frames at or below `above_sp`, with
/// the live profiler's code map; `None` while no profiler is live, or where a read could fault
/// (the fault guard is not installed, or this thread blocks `SIGSEGV`). Gives the frames'
/// count, how the walk ended and the code map epoch it used (see [`SampleMeta::code_epoch`]).
///
/// # Signal safety
/// Async-signal-safe, as the handler's own walk (it is the heap sampler's, which runs inside
/// the allocator).
#[cfg_attr(not(feature = "std"), allow(dead_code))]
pub(crate) fn walk_own_stack(
    regs: &Regs,
    above_sp: u64,
    frames: &mut [u64],
) -> Option<(usize, EndReason, u32)> {
    if !fault_guard::armed() || signal::faults_blocked_in_this_thread() {
        return None;
    }
    IN_HANDLER.fetch_add(1, SeqCst);
    let shared = ACTIVE.load(SeqCst);
    let walked = (!shared.is_null()).then(|| {
        // SAFETY: as in the handler: IN_HANDLER was incremented before ACTIVE was loaded, and
        // `release_handler` waits for it to reach zero before the Shared is freed.
        let shared = unsafe { &*shared };
        shared.unwind_with(regs, Reader::Own, frames, above_sp.max(1))
    });
    IN_HANDLER.fetch_sub(1, SeqCst);
    walked.map(|w| (w.len, w.end, w.code_epoch))
}

/// What a walk produced besides its frames.
struct Walked {
    len: usize,
    end: EndReason,
    /// The code map epoch the walk saw (see [`SampleMeta::code_epoch`]).
    code_epoch: u32,
}

/// The signal handler.
///
/// # Signal safety
/// This is the handler; see the module docs for its contract.
extern "C" fn on_signal(_sig: i32, info: *mut libc::siginfo_t, uctx: *mut c_void) {
    let _errno = signal::ErrnoGuard::save();
    // SAFETY: the kernel passes a valid siginfo to a SA_SIGINFO handler.
    let Some(origin) = (unsafe { signal::origin(info) }) else {
        return;
    };
    IN_HANDLER.fetch_add(1, SeqCst);
    let shared = ACTIVE.load(SeqCst);
    if !shared.is_null() && !uctx.is_null() {
        // SAFETY: `release_handler` clears ACTIVE and waits for IN_HANDLER to reach zero before
        // the Shared it pointed to is freed, and we incremented IN_HANDLER before loading it.
        let shared = unsafe { &*shared };
        if let Some(token) = shared.token_of(origin) {
            // SAFETY: the kernel passes a valid ucontext to a SA_SIGINFO handler.
            let (regs, interrupted) = unsafe {
                (
                    signal::regs(uctx),
                    signal::interrupted(uctx, shared.min_signal_frame),
                )
            };
            shared.take_sample(token, &regs, &interrupted);
        }
    }
    IN_HANDLER.fetch_sub(1, SeqCst);
}

impl Shared {
    /// The token of a signal vignette caused: queued by this process (another process may
    /// queue this signal too), from one of its CPU timers (the overrun adds to the weight), or
    /// from one of its perf events (looked up by descriptor; weighed by the thread's own CPU
    /// clock, see [`super::shared::PerfAccount`]). `None` for any other, and for a perf
    /// event's signal that came before a whole interval of the thread's CPU time did.
    ///
    /// # Signal safety
    /// Async-signal-safe: reads `origin`, atomics, and (perf events) the thread's CPU clock.
    fn token_of(&self, origin: Origin) -> Option<Token> {
        match origin {
            Origin::Queued { pid, value } if pid == self.sender.pid() => Token::unpack(value),
            Origin::Queued { .. } => None,
            Origin::Timer { value, overrun } => Token::unpack(value).map(|t| Token {
                weight: t.weight.saturating_add(overrun.min(u16::MAX as u32) as u16),
                ..t
            }),
            Origin::Poll { fd } => {
                let token = Token::unpack(self.perf_tokens.get(fd as usize)?.load(Acquire))?;
                let Some(account) = self.perf_accounts.get(token.slot as usize) else {
                    return Some(token);
                };
                let weight = account.take_due(time::own_thread_cpu_ns)?;
                Some(Token { weight, ..token })
            }
        }
    }
}

/// Installs the handler for `shared.signal` and makes `shared` the live state.
/// Fails if another profiler is live or a foreign handler owns the signal.
pub(crate) fn claim_handler(shared: &MapBox<Shared>) -> Result<()> {
    let ptr = &**shared as *const Shared as *mut Shared;
    if ACTIVE
        .compare_exchange(core::ptr::null_mut(), ptr, SeqCst, SeqCst)
        .is_err()
    {
        return Err(crate::Error::AlreadyExists);
    }
    if let Err(e) = signal::install(shared.signal, on_signal) {
        ACTIVE.store(core::ptr::null_mut(), SeqCst);
        return Err(e);
    }
    // Without the guard (it could not be installed), samples keep only their first address.
    fault_guard::ensure_installed();
    if !AT_FORK.swap(true, SeqCst) {
        // SAFETY: registers a child handler that lives for the whole program.
        unsafe { libc::pthread_atfork(None, None, Some(close_inherited_perf_events)) };
    }
    Ok(())
}

/// Whether vignette's handler still owns `shared.signal`, taking it back when the program has
/// left the signal at its default action or ignored it (the rule `build()` follows). `false`
/// while the program has a handler of its own there: then no signal of vignette's may be sent
/// or armed, since it would reach that handler.
pub(crate) fn owns_signal(shared: &Shared) -> bool {
    match signal::disposition(shared.signal, on_signal) {
        Ok(signal::Disposition::Ours) => true,
        Ok(signal::Disposition::Free) => signal::install(shared.signal, on_signal).is_ok(),
        Ok(signal::Disposition::Foreign) | Err(_) => false,
    }
}

/// Signals the sampler thread sends itself to calibrate a delivery, per batch.
const CALIBRATION_SIGNALS: u64 = 8;
/// Batches of them; the least mean counts.
const CALIBRATION_BATCHES: u32 = 3;

/// What delivering one signal costs (the send, the kernel's entry into the handler, the
/// handler's token check, the return), in ns: measured on the calling thread, the sampler
/// thread, which unblocks the signal and sends itself signals of no session (the handler
/// returns at once), timed by its own CPU clock. 0 if the program has a handler of its own
/// on the signal, which none of vignette's may reach.
pub(crate) fn calibrate_delivery(shared: &Shared) -> u64 {
    if !owns_signal(shared) {
        return 0;
    }
    let token = Token {
        // No session has it: the handler takes no sample.
        generation: (shared.generation.load(Acquire) as u16).wrapping_add(0x8000),
        slot: 0,
        weight: 1,
    }
    .pack();
    let me = crate::sys::threads::gettid();
    signal::unblock_in_this_thread(shared.signal);
    // The least of a few batches: the first pays for cold caches and pages (and, under an
    // emulator, for translating the handler), which no later signal does.
    let mut least = u64::MAX;
    for _ in 0..CALIBRATION_BATCHES {
        let before = time::own_thread_cpu_ns();
        for _ in 0..CALIBRATION_SIGNALS {
            // Handled before the call returns: the signal is unblocked in this thread.
            let _ = shared.sender.send(me, token);
        }
        if let (Some(b), Some(a)) = (before, time::own_thread_cpu_ns()) {
            least = least.min(a.saturating_sub(b) / CALIBRATION_SIGNALS);
        }
    }
    signal::block_in_this_thread(shared.signal);
    match least {
        u64::MAX => 0,
        least => least,
    }
}

/// Whether the fork handler is registered.
static AT_FORK: AtomicBool = AtomicBool::new(false);

/// In a child just forked: closes the descriptors of the parent's perf events, which would
/// otherwise keep them (and their signals to the parent's threads) alive for as long as the
/// child lives, and the sampler thread's others (exit watches of the parent's threads, the
/// thread count), which would take the child's descriptors. (CPU timers are not inherited.)
/// It also forgets the parent's sampler threads' CPU time, which the child's process clock
/// does not hold.
///
/// # Signal safety
/// Async-signal-safe (`close` and atomic stores only), as a fork handler must be.
extern "C" fn close_inherited_perf_events() {
    crate::collector::forget_sampler_cpu();
    let shared = ACTIVE.load(SeqCst);
    if shared.is_null() {
        return;
    }
    // SAFETY: ACTIVE points to a live Shared (this child's copy of the parent's); only this
    // thread exists in the child.
    let shared = unsafe { &*shared };
    // The held descriptors' bits, not the perf tokens' 64 Ki entries: reading those would
    // fault in every page of them.
    for (i, word) in shared.held_fds.iter().enumerate() {
        let mut bits = word.load(Relaxed);
        if bits == 0 {
            continue;
        }
        word.store(0, Relaxed);
        while bits != 0 {
            let fd = i * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if let Some(token) = shared.perf_tokens.get(fd) {
                token.store(0, Relaxed);
            }
            // SAFETY: a descriptor the sampler thread opened and held when the process forked.
            unsafe { libc::close(fd as i32) };
        }
    }
}

/// [`release_handler`] in a child after `fork()`: the handlers counted in flight were the
/// parent's other threads, which do not exist here, so the count starts again from zero.
pub(crate) fn release_inherited_handler(shared: &Shared) {
    let ptr = shared as *const Shared as *mut Shared;
    if ACTIVE
        .compare_exchange(ptr, core::ptr::null_mut(), SeqCst, SeqCst)
        .is_ok()
    {
        IN_HANDLER.store(0, SeqCst);
    }
}

/// Detaches the handler from `shared` and waits until no handler still uses it. The handler
/// itself stays installed (it ignores signals from then on), so a signal still in flight can
/// never meet the default action, which for `SIGPROF` would kill the process.
///
/// Returns `false` if a handler was still running after a second (its thread is stopped, say
/// by a debugger, in the middle of it): the caller must then never free `shared`.
pub(crate) fn release_handler(shared: &Shared) -> bool {
    let ptr = shared as *const Shared as *mut Shared;
    if ACTIVE
        .compare_exchange(ptr, core::ptr::null_mut(), SeqCst, SeqCst)
        .is_ok()
    {
        let deadline = time::monotonic_ns() + RELEASE_TIMEOUT_NS;
        while IN_HANDLER.load(SeqCst) != 0 {
            if time::monotonic_ns() > deadline {
                return false;
            }
            time::sleep_ns(RELEASE_POLL_NS);
        }
    }
    true
}
