//! Labels on what a thread is doing (`endpoint = /search`, `request = 1234`): the per-thread
//! storage the sampler reads into each sample.
//!
//! A thread's labels live in a block of its own thread-local storage that only the thread
//! itself writes, double-buffered: a change is written into the inactive half, then one store
//! makes it the active half. A reader that interrupts the thread (the signal handler, on that
//! thread) or that stopped it (the Windows sampler, the thread suspended) therefore always sees
//! a complete set: the active half is never being written.
//!
//! The reader does not touch thread-local storage (in a shared library that can go through
//! `__tls_get_addr`, which may allocate): the first label a thread sets registers its block's
//! address in a fixed, lock-free table keyed by thread id, and the thread's exit removes it.

// Without `std` labels cannot be set (only read, as empty): the writing half goes unused.
#![cfg_attr(not(feature = "std"), allow(dead_code))]

use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};

/// The most labels a thread carries at once; more are not recorded (and counted).
pub const MAX_LABELS: usize = 4;

/// Threads with labels at once; more are not recorded (and counted).
const REGISTRY_SLOTS: usize = 4096;

/// The farthest a thread's entry lies from its home slot. Bounds every lookup (the handler
/// looks up every sampled thread once any has labels), however many removed entries the
/// table has gathered; a thread that finds no room within it is not recorded (and counted).
const MAX_PROBE: usize = 64;

/// A key's word in a label set: its interned index, with this bit set when the value is an
/// interned string rather than an integer.
pub const STRING_VALUE: u32 = 1 << 31;

/// A consistent copy of a thread's labels: `len` pairs of (key word, value). (`repr(C)`: the C
/// API hands it out as 56 opaque bytes.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct LabelSet {
    /// Pairs in use.
    pub len: u8,
    /// Key words (see [`STRING_VALUE`]).
    pub keys: [u32; MAX_LABELS],
    /// Values: integers, or interned string indices.
    pub values: [u64; MAX_LABELS],
}

// SAFETY: integers only; all-zero is the empty set.
unsafe impl crate::sys::mem::Zeroed for LabelSet {}

impl LabelSet {
    /// The pairs in use.
    pub fn pairs(&self) -> impl Iterator<Item = (u32, u64)> + Clone + '_ {
        let n = (self.len as usize).min(MAX_LABELS);
        self.keys
            .iter()
            .copied()
            .zip(self.values.iter().copied())
            .take(n)
    }

    /// Sets `key` to `value` in this set (replacing the key's value if present); `false`
    /// when the set is full. (In place: building a new set and copying it whole would read
    /// back bytes just stored in smaller pieces, which stalls the CPU.)
    pub fn insert(&mut self, key: u32, value: u64) -> bool {
        let n = (self.len as usize).min(MAX_LABELS);
        let base = key & !STRING_VALUE;
        let i = match self
            .keys
            .iter()
            .take(n)
            .position(|k| k & !STRING_VALUE == base)
        {
            Some(i) => i,
            None if n < MAX_LABELS => {
                self.len += 1;
                n
            }
            None => return false,
        };
        if let (Some(k), Some(v)) = (self.keys.get_mut(i), self.values.get_mut(i)) {
            (*k, *v) = (key, value);
        }
        true
    }
}

/// One half of a thread's block.
struct Half {
    len: AtomicU32,
    keys: [AtomicU32; MAX_LABELS],
    values: [AtomicU64; MAX_LABELS],
}

impl Half {
    const fn new() -> Half {
        Half {
            len: AtomicU32::new(0),
            keys: [const { AtomicU32::new(0) }; MAX_LABELS],
            values: [const { AtomicU64::new(0) }; MAX_LABELS],
        }
    }

    fn load(&self) -> LabelSet {
        let mut s = LabelSet {
            len: self.len.load(Relaxed).min(MAX_LABELS as u32) as u8,
            ..LabelSet::default()
        };
        let n = s.len as usize;
        for ((k, v), (a, b)) in (s.keys.iter_mut().zip(s.values.iter_mut()))
            .zip(self.keys.iter().zip(&self.values))
            .take(n)
        {
            *k = a.load(Relaxed);
            *v = b.load(Relaxed);
        }
        s
    }

    fn store(&self, s: &LabelSet) {
        self.len.store(s.len as u32, Relaxed);
        // Only the pairs in use: a reader reads no further than `len`.
        for ((a, b), (k, v)) in self.keys.iter().zip(&self.values).zip(s.pairs()) {
            a.store(k, Relaxed);
            b.store(v, Relaxed);
        }
    }
}

/// A thread's labels, double-buffered (see the module docs).
pub(crate) struct Block {
    active: AtomicU32,
    /// Whether the block is in the registry (written by its thread only).
    registered: AtomicU32,
    halves: [Half; 2],
}

impl Block {
    const fn new() -> Block {
        Block {
            active: AtomicU32::new(0),
            registered: AtomicU32::new(0),
            halves: [Half::new(), Half::new()],
        }
    }

    /// The labels now.
    ///
    /// # Signal safety
    /// Async-signal-safe, and consistent when the owning thread is interrupted or suspended:
    /// atomic loads of the half it is not writing.
    fn read(&self) -> LabelSet {
        let i = self.active.load(Acquire) as usize & 1;
        self.halves.get(i).map(Half::load).unwrap_or_default()
    }

    /// Makes `s` the labels (by the owning thread only).
    fn write(&self, s: &LabelSet) {
        let next = (self.active.load(Relaxed) as usize & 1) ^ 1;
        if let Some(h) = self.halves.get(next) {
            h.store(s);
            // The compiler must not move the half's stores after the flip: a handler on this
            // thread reads the active half right after it.
            core::sync::atomic::compiler_fence(Release);
            self.active.store(next as u32, Release);
        }
    }
}

/// One registry entry: a thread id (0 empty, -1 removed) and its block's address.
struct Entry {
    tid: AtomicI32,
    block: AtomicUsize,
}

static REGISTRY: [Entry; REGISTRY_SLOTS] = [const {
    Entry {
        tid: AtomicI32::new(0),
        block: AtomicUsize::new(0),
    }
}; REGISTRY_SLOTS];

/// Threads ever registered (a reader skips the lookup while none is).
static REGISTERED: AtomicU64 = AtomicU64::new(0);

/// Labels not recorded: set beyond [`MAX_LABELS`], or by threads beyond the registry's room.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Where thread `tid`'s probe sequence starts.
fn home(tid: i32) -> usize {
    (tid as u32).wrapping_mul(0x9E37_79B9) as usize % REGISTRY_SLOTS
}

/// Registers `block` as thread `tid`'s; `false` when the registry is full.
fn register(tid: i32, block: &Block) -> bool {
    let start = home(tid);
    for i in 0..MAX_PROBE {
        let Some(e) = REGISTRY.get((start + i) % REGISTRY_SLOTS) else {
            break;
        };
        let t = e.tid.load(Acquire);
        if t == tid {
            e.block.store(block as *const Block as usize, Release);
            return true;
        }
        if (t == 0 || t == -1) && e.tid.compare_exchange(t, tid, AcqRel, Acquire).is_ok() {
            e.block.store(block as *const Block as usize, Release);
            REGISTERED.fetch_add(1, Relaxed);
            return true;
        }
    }
    false
}

/// Removes thread `tid`'s entry (at its exit).
fn unregister(tid: i32) {
    if let Some(e) = find(tid) {
        e.block.store(0, Release);
        e.tid.store(-1, Release);
    }
}

/// Thread `tid`'s entry.
///
/// # Signal safety
/// Async-signal-safe: at most [`MAX_PROBE`] atomic loads over a static table.
fn find(tid: i32) -> Option<&'static Entry> {
    let start = home(tid);
    for i in 0..MAX_PROBE {
        let e = REGISTRY.get((start + i) % REGISTRY_SLOTS)?;
        match e.tid.load(Acquire) {
            0 => return None,
            t if t == tid => return Some(e),
            _ => {}
        }
    }
    None
}

/// Thread `tid`'s labels, if it has any registered.
///
/// # Signal safety
/// Async-signal-safe and lock-free; reads only the static registry and the thread's block. The
/// caller must be that thread (a signal handler on it) or have it stopped (suspended): the
/// block lives in that thread's storage, which is freed when it exits.
pub fn read(tid: i32) -> Option<LabelSet> {
    let e = find(tid)?;
    let addr = e.block.load(Acquire);
    if addr == 0 {
        return None;
    }
    // SAFETY: a registered address is the live block of thread `tid` (removed at its exit,
    // before its storage goes), and the caller is that thread or has it stopped.
    let block = unsafe { &*(addr as *const Block) };
    Some(block.read())
}

/// The calling thread's labels, for a sample of it taken in a signal handler on it (empty
/// while no thread has any: then it costs one load).
///
/// # Signal safety
/// Async-signal-safe: one `gettid` system call (only once some thread has labels) and
/// [`read`].
pub fn of_current_thread() -> LabelSet {
    if REGISTERED.load(Relaxed) == 0 {
        return LabelSet::default();
    }
    read(crate::sys::threads::gettid()).unwrap_or_default()
}

/// Thread `tid`'s labels, for a sample taken while it is suspended (empty while no thread has
/// any).
///
/// # Signal safety
/// As [`read`]; no system call.
pub fn of_suspended_thread(tid: i32) -> LabelSet {
    if REGISTERED.load(Relaxed) == 0 {
        return LabelSet::default();
    }
    read(tid).unwrap_or_default()
}

/// Counts a label set not recorded (a session's table of distinct sets was full).
pub(crate) fn note_dropped() {
    DROPPED.fetch_add(1, Relaxed);
}

/// Names for a profile when labels cannot be set (no `std`): none.
#[cfg(not(feature = "std"))]
pub fn key_name(_: u32) -> &'static str {
    ""
}

/// See [`key_name`].
#[cfg(not(feature = "std"))]
pub fn string_text(_: u32) -> &'static str {
    ""
}

/// Labels dropped so far: beyond [`MAX_LABELS`] on a thread, or on threads the registry had no
/// room for.
pub fn dropped() -> u64 {
    DROPPED.load(Relaxed)
}

#[cfg(feature = "std")]
pub use owned::*;

#[cfg(feature = "std")]
mod owned {
    use super::*;
    use crate::sys::threads;
    use std::cell::Cell;
    use std::sync::Mutex;
    use std::vec::Vec;

    std::thread_local! {
        static BLOCK: Block = const { Block::new() };
        static REGISTERED: Registration = const { Registration(Cell::new(0)) };
    }

    /// Removes the thread's registry entry when the thread exits.
    struct Registration(Cell<i32>);

    impl Drop for Registration {
        fn drop(&mut self) {
            if self.0.get() > 0 {
                unregister(self.0.get());
            }
        }
    }

    /// Interned names: label keys, and string values.
    static KEYS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    static STRINGS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

    /// The index of `s` in `table`, interned if new (ahead of the hot path: allocates once per
    /// distinct name).
    fn intern(table: &Mutex<Vec<&'static str>>, s: &str) -> u32 {
        let mut t = table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = t.iter().position(|x| *x == s) {
            return i as u32;
        }
        t.push(std::boxed::Box::leak(s.into()));
        (t.len() - 1) as u32
    }

    /// The name of interned key `index` ("" if none).
    pub fn key_name(index: u32) -> &'static str {
        name(&KEYS, index).unwrap_or("")
    }

    /// The text of interned string `index` ("" if none).
    pub fn string_text(index: u32) -> &'static str {
        name(&STRINGS, index).unwrap_or("")
    }

    /// The interned name at `index` of `table`.
    fn name(table: &Mutex<Vec<&'static str>>, index: u32) -> Option<&'static str> {
        let t = table.lock().unwrap_or_else(|e| e.into_inner());
        t.get(index as usize).copied()
    }

    /// A label key, interned once (keep it: making one takes a lock).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct LabelKey(pub(crate) u32);

    impl LabelKey {
        /// The key named `name`.
        pub fn new(name: &str) -> LabelKey {
            LabelKey(intern(&KEYS, name) & !STRING_VALUE)
        }

        /// Its name.
        pub fn name(self) -> &'static str {
            name(&KEYS, self.0).unwrap_or("")
        }
    }

    /// A string label value, interned once (keep it: making one takes a lock).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct LabelStr(pub(crate) u32);

    impl LabelStr {
        /// The value `s`.
        pub fn new(s: &str) -> LabelStr {
            LabelStr(intern(&STRINGS, s))
        }

        /// Its text.
        pub fn text(self) -> &'static str {
            name(&STRINGS, self.0).unwrap_or("")
        }
    }

    /// A label's value: an integer or an interned string.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Value {
        /// An integer (a request id, a frame number).
        Int(i64),
        /// An interned string (an endpoint, a phase).
        Str(LabelStr),
    }

    impl From<i64> for Value {
        fn from(v: i64) -> Self {
            Value::Int(v)
        }
    }

    impl From<LabelStr> for Value {
        fn from(v: LabelStr) -> Self {
            Value::Str(v)
        }
    }

    /// Restores the calling thread's previous labels when dropped (see [`set`]).
    #[must_use = "the label is cleared when the guard is dropped"]
    pub struct LabelGuard {
        previous: LabelSet,
        /// Labels belong to the thread that set them.
        _not_send: core::marker::PhantomData<*const ()>,
    }

    impl Drop for LabelGuard {
        fn drop(&mut self) {
            BLOCK.with(|b| b.write(&self.previous));
        }
    }

    /// Labels what the calling thread does until the guard is dropped (which restores the
    /// labels before): `key` gets `value`, replacing that key's value if it has one. A few
    /// nanoseconds, no allocation, no lock (the thread's first label also registers the
    /// thread, once). Beyond [`MAX_LABELS`] at once the label is not recorded (counted in
    /// [`dropped`]).
    pub fn set(key: LabelKey, value: impl Into<Value>) -> LabelGuard {
        let (word, v) = match value.into() {
            Value::Int(i) => (key.0, i as u64),
            Value::Str(s) => (key.0 | STRING_VALUE, s.0 as u64),
        };
        let previous = BLOCK.with(|b| {
            ensure_registered(b);
            let previous = b.read();
            let mut next = previous;
            if next.insert(word, v) {
                b.write(&next);
            } else {
                DROPPED.fetch_add(1, Relaxed);
            }
            previous
        });
        LabelGuard {
            previous,
            _not_send: core::marker::PhantomData,
        }
    }

    /// A future that runs under labels: each poll, on whichever thread polls it, sets them
    /// and restores that thread's labels after (an async task moves between threads, and a
    /// thread runs many tasks: a guard held across `.await` would label the wrong work). Made
    /// by [`labelled`].
    pub struct Labelled<F> {
        labels: arrayvec::ArrayVec<(LabelKey, Value), MAX_LABELS>,
        inner: F,
    }

    /// `future`, polled under `labels` (see [`Labelled`]; at most [`MAX_LABELS`], more are
    /// counted in [`dropped`]). Polling allocates nothing.
    pub fn labelled<F: core::future::Future>(
        labels: impl IntoIterator<Item = (LabelKey, Value)>,
        future: F,
    ) -> Labelled<F> {
        let mut kept = arrayvec::ArrayVec::new();
        for l in labels {
            if kept.try_push(l).is_err() {
                DROPPED.fetch_add(1, Relaxed);
            }
        }
        Labelled {
            labels: kept,
            inner: future,
        }
    }

    impl<F: core::future::Future> core::future::Future for Labelled<F> {
        type Output = F::Output;
        fn poll(
            self: core::pin::Pin<&mut Self>,
            cx: &mut core::task::Context<'_>,
        ) -> core::task::Poll<F::Output> {
            // SAFETY: `inner` is structurally pinned: never moved out of `self`, and `labels`
            // (not pinned) is only read.
            let this = unsafe { self.get_unchecked_mut() };
            let guards: arrayvec::ArrayVec<LabelGuard, MAX_LABELS> =
                this.labels.iter().map(|&(k, v)| set(k, v)).collect();
            // SAFETY: as above.
            let result = unsafe { core::pin::Pin::new_unchecked(&mut this.inner) }.poll(cx);
            // Restored newest first, back to the thread's own labels.
            for g in guards.into_iter().rev() {
                drop(g);
            }
            result
        }
    }

    impl LabelGuard {
        /// The labels it restores, leaving them to [`restore`] (the C API's scopes).
        pub fn into_previous(self) -> LabelSet {
            let previous = self.previous;
            core::mem::forget(self);
            previous
        }
    }

    /// Makes `set` (from [`LabelGuard::into_previous`]) the calling thread's labels.
    pub fn restore(set: &LabelSet) {
        BLOCK.with(|b| b.write(set));
    }

    /// The calling thread's labels now.
    pub fn current() -> LabelSet {
        BLOCK.with(Block::read)
    }

    /// Registers the calling thread's block, the first time.
    fn ensure_registered(b: &Block) {
        if b.registered.load(Relaxed) != 0 {
            return;
        }
        b.registered.store(1, Relaxed);
        // Gone while the thread's thread-locals are destroyed (a label set from another's
        // destructor or an `atexit` handler): the thread is not registered then.
        let registered = REGISTERED.try_with(|r| {
            if r.0.get() == 0 {
                let tid = threads::gettid();
                if register(tid, b) {
                    r.0.set(tid);
                } else {
                    DROPPED.fetch_add(1, Relaxed);
                }
            }
        });
        if registered.is_err() {
            DROPPED.fetch_add(1, Relaxed);
        }
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;
    use crate::sys::threads::gettid;

    #[test]
    fn guards_nest_and_restore() {
        let (a, b) = (LabelKey::new("t.endpoint"), LabelKey::new("t.request"));
        assert_eq!(a, LabelKey::new("t.endpoint"), "interned once");
        assert_eq!(a.name(), "t.endpoint");
        let search = LabelStr::new("/search");
        assert_eq!(current().len, 0);
        {
            let _g = set(a, search);
            assert_eq!(
                read(gettid()).unwrap().pairs().collect::<Vec<_>>(),
                [(a.0 | STRING_VALUE, search.0 as u64)]
            );
            {
                let _h = set(b, 1234);
                let _i = set(a, 7);
                let now: Vec<_> = current().pairs().collect();
                assert_eq!(now, [(a.0, 7), (b.0, 1234)], "the key's value replaced");
            }
            assert_eq!(
                current().pairs().collect::<Vec<_>>(),
                [(a.0 | STRING_VALUE, search.0 as u64)]
            );
        }
        assert_eq!(current().len, 0);
        assert_eq!(read(gettid()).map(|s| s.len), Some(0));
    }

    /// A labelled future carries its labels to every thread that polls it, and leaves each
    /// thread's own labels as they were.
    #[test]
    fn a_labelled_future_is_labelled_wherever_it_is_polled() {
        use std::future::Future;
        use std::sync::Arc;
        use std::task::{Context, Poll, Wake, Waker};
        struct Noop;
        impl Wake for Noop {
            fn wake(self: Arc<Self>) {}
        }
        let (task, thread) = (LabelKey::new("t.task"), LabelKey::new("t.thread-own"));
        let seen = Arc::new(std::sync::Mutex::new(std::vec::Vec::new()));
        let record = seen.clone();
        let mut polls = 0;
        let fut = labelled(
            [(task, Value::Int(9))],
            std::future::poll_fn(move |_| {
                record.lock().unwrap().push(current());
                polls += 1;
                if polls < 3 {
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            }),
        );
        let mut fut = std::boxed::Box::pin(fut);
        let waker = Waker::from(Arc::new(Noop));
        for i in 0..3 {
            // Each poll on a new thread, which has a label of its own.
            std::thread::scope(|s| {
                s.spawn(|| {
                    let _own = set(thread, i);
                    let _ = fut.as_mut().poll(&mut Context::from_waker(&waker));
                    assert_eq!(
                        current().pairs().collect::<Vec<_>>(),
                        [(thread.0, i as u64)]
                    );
                });
            });
        }
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        for (i, s) in seen.iter().enumerate() {
            assert_eq!(
                s.pairs().collect::<Vec<_>>(),
                [(thread.0, i as u64), (task.0, 9)]
            );
        }
    }

    #[test]
    fn more_than_the_limit_are_counted_not_recorded() {
        let keys: Vec<_> = (0..MAX_LABELS + 1)
            .map(|i| LabelKey::new(&std::format!("t.k{i}")))
            .collect();
        let before = dropped();
        let guards: Vec<_> = keys.iter().map(|k| set(*k, 1)).collect();
        assert_eq!(current().len as usize, MAX_LABELS);
        assert!(dropped() > before);
        drop(guards);
    }

    #[test]
    fn a_thread_is_found_by_id_until_it_exits() {
        let key = LabelKey::new("t.thread");
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            let _g = set(key, 42);
            tx.send(gettid()).unwrap();
            done_rx.recv().unwrap();
        });
        let tid = rx.recv().unwrap();
        // (Reading another running thread's block is for tests only: the sampler reads a
        // thread only from its own handler or while it is suspended.)
        assert_eq!(
            read(tid).unwrap().pairs().collect::<Vec<_>>(),
            [(key.0, 42)]
        );
        done_tx.send(()).unwrap();
        h.join().unwrap();
        assert_eq!(read(tid), None, "removed when the thread exited");
    }

    /// A signal handler on the thread, interrupting it while it changes its labels as fast as
    /// it can, always reads one of the two complete sets it alternates between.
    #[test]
    fn a_handler_on_the_thread_reads_only_complete_sets() {
        use std::sync::atomic::AtomicBool;
        static BAD: AtomicU64 = AtomicU64::new(0);
        static READS: AtomicU64 = AtomicU64::new(0);
        static STOP: AtomicBool = AtomicBool::new(false);
        static KEYS: (AtomicU64, AtomicU64) = (AtomicU64::new(0), AtomicU64::new(0));
        extern "C" fn on_signal(_: i32) {
            if let Some(s) = read(gettid()) {
                READS.fetch_add(1, Relaxed);
                // The states the worker passes through: {}, {x=1}, {}, {x=2}, {x=2, y=2},
                // {x=2}, {}; a torn one would mix them (x=1 beside y, y without x, ...).
                let (x, y) = (KEYS.0.load(Relaxed) as u32, KEYS.1.load(Relaxed) as u32);
                let ok = match s.len {
                    0 => true,
                    1 => s.keys[0] == x && (s.values[0] == 1 || s.values[0] == 2),
                    2 => s.keys == [x, y, 0, 0] && s.values[..2] == [2, 2],
                    _ => false,
                };
                if !ok {
                    BAD.fetch_add(1, Relaxed);
                }
            }
        }
        let (x, y) = (LabelKey::new("t.x"), LabelKey::new("t.y"));
        KEYS.0.store(x.0 as u64, Relaxed);
        KEYS.1.store(y.0 as u64, Relaxed);
        // SAFETY: installs a handler for SIGUSR2 (unused by the other tests of this crate)
        // that only reads atomics.
        unsafe {
            let mut sa: libc::sigaction = core::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigaction(libc::SIGUSR2, &sa, core::ptr::null_mut());
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            tx.send(gettid()).unwrap();
            while !STOP.load(Relaxed) {
                let _a = set(x, 1);
                drop(_a);
                let _b = set(x, 2);
                let _c = set(y, 2);
            }
        });
        let tid = rx.recv().unwrap();
        while READS.load(Relaxed) < 20_000 {
            // SAFETY: signals a thread of this process, which handles SIGUSR2 above.
            unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGUSR2) };
        }
        STOP.store(true, Relaxed);
        worker.join().unwrap();
        assert_eq!(BAD.load(Relaxed), 0, "torn label sets seen");
    }
}
