//! Threads of this process: ids, names, and enumeration of `/proc/self/task` with raw
//! `getdents64`, so listing threads never allocates.

use super::fs::{Fd, PathBuf};

/// The calling thread's kernel thread id.
///
/// # Signal safety
/// Async-signal-safe: one raw system call.
pub fn gettid() -> i32 {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// This process's id.
///
/// # Signal safety
/// Async-signal-safe: `getpid` is on POSIX's list.
pub fn getpid() -> i32 {
    // SAFETY: getpid cannot fail.
    unsafe { libc::getpid() }
}

/// Calls `f` with the id of every thread now in this process. Returns `false` if
/// `/proc/self/task` could not be read.
pub fn for_each_thread(mut f: impl FnMut(i32)) -> bool {
    let Some(dir) = Fd::open(c"/proc/self/task", libc::O_DIRECTORY) else {
        return false;
    };
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: buf is valid for writes of buf.len() bytes; getdents64 fills it with records.
        let n =
            unsafe { libc::syscall(libc::SYS_getdents64, dir.raw(), buf.as_mut_ptr(), buf.len()) };
        if n <= 0 {
            return n == 0;
        }
        let records = buf.get(..n as usize).unwrap_or_default();
        let mut off = 0usize;
        // linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name[].
        while let Some(&[lo, hi]) = records.get(off + 16..off + 18) {
            let reclen = u16::from_ne_bytes([lo, hi]) as usize;
            let Some(name) = records.get(off + 19..off + reclen) else {
                break;
            };
            let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            if let Some(tid) = name.get(..end).and_then(parse_decimal) {
                f(tid);
            }
            off += reclen;
        }
    }
}

/// This process's thread count, read again and again through one open `/proc/self/task`:
/// the kernel gives that directory a link count of 2 plus the number of threads, so one
/// `fstat` (about 0.5 µs) answers whatever the number of threads, where listing them costs
/// about 0.4 µs each and reading `/proc/self/status` about 30 µs.
pub struct ThreadCount {
    task: Fd,
}

impl ThreadCount {
    /// Opens `/proc/self/task`, or `None`.
    pub fn open() -> Option<ThreadCount> {
        Fd::open(c"/proc/self/task", libc::O_DIRECTORY).map(|task| ThreadCount { task })
    }

    /// Its descriptor.
    pub fn fd(&self) -> i32 {
        self.task.raw()
    }

    /// The number of threads now.
    pub fn read(&self) -> Option<usize> {
        // SAFETY: a zeroed stat is valid for fstat to fill.
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        // SAFETY: the descriptor is open and st is writable.
        if unsafe { libc::fstat(self.task.raw(), &mut st) } != 0 {
            return None;
        }
        (st.st_nlink as usize).checked_sub(2)
    }
}

/// The last process or thread id the kernel gave out in this pid namespace
/// (`/proc/sys/kernel/ns_last_pid`), read again and again through one open descriptor: while
/// it stays the same, no thread was born anywhere in the namespace.
pub struct LastPid {
    file: Fd,
}

impl LastPid {
    /// Opens the counter, or `None`.
    pub fn open() -> Option<LastPid> {
        Fd::open(c"/proc/sys/kernel/ns_last_pid", 0).map(|file| LastPid { file })
    }

    /// Its descriptor.
    pub fn fd(&self) -> i32 {
        self.file.raw()
    }

    /// The last id given out (about 1 µs).
    pub fn read(&self) -> Option<i32> {
        let mut buf = [0u8; 16];
        let n = self.file.read_at(&mut buf, 0)?;
        let text = buf.get(..n)?;
        parse_decimal(text.strip_suffix(b"\n").unwrap_or(text))
    }
}

fn parse_decimal(s: &[u8]) -> Option<i32> {
    if s.is_empty() || s.len() > 10 {
        return None;
    }
    let mut v: i64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as i64;
    }
    i32::try_from(v).ok()
}

/// Reads thread `tid`'s name (`/proc/self/task/<tid>/comm`, at most 15 bytes) into `out`;
/// returns its length, 0 if the thread is gone.
pub fn thread_name(tid: i32, out: &mut [u8; 16]) -> usize {
    let mut path = PathBuf::<48>::new();
    path.push(b"/proc/self/task/")
        .push_u64(tid as u64)
        .push(b"/comm");
    let Some(fd) = path.as_cstr().and_then(|p| Fd::open(p, 0)) else {
        return 0;
    };
    let n = fd.read_all(out).unwrap_or(0).min(out.len());
    let n = out.iter().take(n).position(|&b| b == b'\n').unwrap_or(n);
    out.iter_mut().skip(n).for_each(|b| *b = 0);
    n
}

/// Whether thread `tid` blocks `signal` (the `SigBlk` mask of `/proc/self/task/<tid>/status`);
/// `None` if the thread is gone or the file says nothing.
pub fn blocks_signal(tid: i32, signal: i32) -> Option<bool> {
    let mut path = PathBuf::<48>::new();
    path.push(b"/proc/self/task/")
        .push_u64(tid as u64)
        .push(b"/status");
    let fd = Fd::open(path.as_cstr()?, 0)?;
    // The masks come after the name, state, ids and memory figures: about 1 KiB in.
    let mut buf = [0u8; 4096];
    let n = fd.read_all(&mut buf)?.min(buf.len());
    let mask = blocked_mask(buf.get(..n)?)?;
    let bit = u32::try_from(signal.checked_sub(1)?).ok()?;
    Some(mask.checked_shr(bit)? & 1 == 1)
}

/// The `SigBlk:` line's mask in a thread's `status` text.
fn blocked_mask(status: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"SigBlk:";
    let at = status.windows(KEY.len()).position(|w| w == KEY)?;
    let hex = status.get(at + KEY.len()..)?;
    let mut mask = 0u64;
    let mut digits = 0;
    for &c in hex
        .iter()
        .skip_while(|c| c.is_ascii_whitespace() && **c != b'\n')
    {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => break,
        };
        mask = mask.checked_mul(16)? | d as u64;
        digits += 1;
    }
    (digits > 0).then_some(mask)
}

/// A set of threads of this process whose exits can be waited for without listing them:
/// one `pidfd` per thread (`PIDFD_THREAD`, Linux 6.9 and later) in an epoll set, which
/// becomes ready when any of them exits.
pub struct ExitWatch {
    epoll: Fd,
}

impl ExitWatch {
    /// An empty watch, or `None` where epoll cannot be used.
    pub fn new() -> Option<ExitWatch> {
        // SAFETY: epoll_create1 takes flags only.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        (fd >= 0).then(|| ExitWatch { epoll: Fd::own(fd) })
    }

    /// Its epoll descriptor.
    pub fn fd(&self) -> i32 {
        self.epoll.raw()
    }

    /// Watches thread `tid`; returns the descriptor that watches it (close it with
    /// [`ExitWatch::forget`]), or `None` where this kernel cannot watch a single thread, the
    /// thread is gone or no descriptor is left.
    pub fn watch(&self, tid: i32) -> Option<i32> {
        /// `PIDFD_THREAD`: a descriptor for the thread, not its process.
        const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;
        // SAFETY: pidfd_open takes a thread id and flags.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, tid, PIDFD_THREAD) } as i32;
        if fd < 0 {
            return None;
        }
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: fd as u64,
        };
        // SAFETY: both descriptors are open; ev is a valid epoll_event.
        if unsafe { libc::epoll_ctl(self.epoll.raw(), libc::EPOLL_CTL_ADD, fd, &mut ev) } != 0 {
            Self::forget(fd);
            return None;
        }
        Some(fd)
    }

    /// Stops watching through `fd` (from [`ExitWatch::watch`]) and closes it.
    pub fn forget(fd: i32) {
        // SAFETY: fd is a pidfd `watch` opened; closing it also removes it from the epoll set.
        unsafe { libc::close(fd) };
    }

    /// Whether a watched thread has exited (and is still watched): one `epoll_wait` that
    /// does not block.
    pub fn any_exited(&self) -> bool {
        // SAFETY: a zeroed epoll_event is valid.
        let mut ev: [libc::epoll_event; 1] = unsafe { core::mem::zeroed() };
        // SAFETY: ev has room for the one event asked for.
        unsafe { libc::epoll_wait(self.epoll.raw(), ev.as_mut_ptr(), 1, 0) > 0 }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_thread_blocking_a_signal_is_seen_to() {
        assert_eq!(
            blocked_mask(
                b"Name:\tx\nSigPnd:\t0000000000000000\nSigBlk:\t0000000000004001\nSigIgn:\t1\n"
            ),
            Some(0x4001)
        );
        assert_eq!(blocked_mask(b"SigBlk:\t\n"), None);
        assert_eq!(blocked_mask(b"Name: x\n"), None);
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            // SAFETY: blocks SIGURG in this thread only.
            unsafe {
                let mut set: libc::sigset_t = core::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGURG);
                libc::pthread_sigmask(libc::SIG_BLOCK, &set, core::ptr::null_mut());
            }
            tx.send(gettid()).unwrap();
            done_rx.recv().unwrap();
        });
        let tid = rx.recv().unwrap();
        assert_eq!(blocks_signal(tid, libc::SIGURG), Some(true));
        assert_eq!(blocks_signal(tid, libc::SIGPROF), Some(false));
        assert_eq!(blocks_signal(gettid(), libc::SIGURG), Some(false));
        done_tx.send(()).unwrap();
        t.join().unwrap();
    }

    use super::*;

    #[test]
    fn lists_this_thread_and_others() {
        let me = gettid();
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::Builder::new()
            .name("lister-peer".into())
            .spawn(move || {
                tx.send(gettid()).unwrap();
                stop_rx.recv().ok();
            })
            .unwrap();
        let peer = rx.recv().unwrap();
        let mut seen = std::vec::Vec::new();
        assert!(for_each_thread(|tid| seen.push(tid)));
        assert!(seen.contains(&me) && seen.contains(&peer), "{seen:?}");
        let mut name = [0u8; 16];
        let n = thread_name(peer, &mut name);
        assert_eq!(&name[..n], b"lister-peer");
        stop_tx.send(()).unwrap();
        t.join().unwrap();
        // join returns when the thread has finished, a moment before the kernel removes its
        // /proc entry (longer under qemu): wait for that, with a generous deadline.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while thread_name(peer, &mut name) != 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "thread {peer} still listed"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn parses_only_decimal_ids() {
        assert_eq!(parse_decimal(b"1234"), Some(1234));
        assert_eq!(parse_decimal(b"."), None);
        assert_eq!(parse_decimal(b"99999999999"), None);
    }

    /// The count equals the listing, follows a thread's birth and exit, and the exit watch
    /// becomes ready only once the watched thread has exited.
    #[test]
    fn counts_threads_and_watches_their_exits() {
        let listed = || {
            let mut n = 0;
            assert!(for_each_thread(|_| n += 1));
            n
        };
        let count = ThreadCount::open().unwrap();
        let watch = ExitWatch::new().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        // Other tests' threads come and go: compare the count with a listing made right after.
        let before = count.read().unwrap();
        assert!(before >= 1 && before.abs_diff(listed()) <= 8, "{before}");
        let t = std::thread::spawn(move || {
            tx.send(gettid()).unwrap();
            stop_rx.recv().ok();
        });
        let peer = rx.recv().unwrap();
        let Some(fd) = watch.watch(peer) else {
            // Kernels before 6.9 cannot watch one thread; the sampler then lists at each look.
            stop_tx.send(()).unwrap();
            t.join().unwrap();
            return;
        };
        assert!(!watch.any_exited(), "the thread is alive");
        stop_tx.send(()).unwrap();
        t.join().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !watch.any_exited() {
            assert!(std::time::Instant::now() < deadline, "exit not seen");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        ExitWatch::forget(fd);
        assert!(!watch.any_exited(), "forgotten");
    }

    #[test]
    fn the_last_pid_moves_with_each_thread_born() {
        let Some(last) = LastPid::open() else {
            return;
        };
        let before = last.read().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(gettid()).unwrap())
            .join()
            .unwrap();
        let born = rx.recv().unwrap();
        let after = last.read().unwrap();
        // Other processes' births may come between; ids wrap at pid_max.
        assert!(after >= born || after < before, "{before} {born} {after}");
        assert_ne!(before, after);
    }
}
