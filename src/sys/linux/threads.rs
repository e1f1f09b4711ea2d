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

#[cfg(test)]
mod tests {
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
}
