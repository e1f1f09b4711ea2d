//! Reading small files (`/proc`, ELF headers) with raw system calls, without allocating.

use core::ffi::CStr;

/// An open file descriptor, closed on drop.
pub struct Fd(i32);

impl Fd {
    /// Opens `path` read-only; `None` when it cannot be opened.
    pub fn open(path: &CStr, flags: i32) -> Option<Fd> {
        // SAFETY: path is a valid NUL-terminated string; open has no other preconditions.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC | flags) };
        (fd >= 0).then_some(Fd(fd))
    }

    /// The raw descriptor.
    /// Takes ownership of descriptor `fd` (closed on drop).
    pub fn own(fd: i32) -> Fd {
        Fd(fd)
    }

    pub fn raw(&self) -> i32 {
        self.0
    }

    /// Reads into `buf`, retrying on EINTR; returns bytes read (0 at end of file).
    pub fn read(&self, buf: &mut [u8]) -> Option<usize> {
        loop {
            // SAFETY: buf is valid for writes of buf.len() bytes.
            let n = unsafe { libc::read(self.0, buf.as_mut_ptr().cast(), buf.len()) };
            if n >= 0 {
                return Some(n as usize);
            }
            if errno() != libc::EINTR {
                return None;
            }
        }
    }

    /// Reads up to `buf.len()` bytes at `offset`, filling as much as the file has.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Option<usize> {
        let mut done = 0;
        while let Some(rest) = buf.get_mut(done..).filter(|r| !r.is_empty()) {
            // SAFETY: rest is valid for writes of rest.len() bytes.
            let n = unsafe {
                libc::pread(
                    self.0,
                    rest.as_mut_ptr().cast(),
                    rest.len(),
                    (offset + done as u64) as libc::off_t,
                )
            };
            if n == 0 {
                break;
            }
            if n < 0 {
                if errno() == libc::EINTR {
                    continue;
                }
                return None;
            }
            done += n as usize;
        }
        Some(done)
    }

    /// Reads the whole file (or as much as fits) into `buf`.
    pub fn read_all(&self, buf: &mut [u8]) -> Option<usize> {
        let mut done = 0;
        while let Some(rest) = buf.get_mut(done..).filter(|r| !r.is_empty()) {
            match self.read(rest)? {
                0 => break,
                n => done += n,
            }
        }
        Some(done)
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: we own this descriptor and close it once.
        unsafe { libc::close(self.0) };
    }
}

/// The calling thread's `errno`.
///
/// # Signal safety
/// Async-signal-safe: reads a thread-local integer.
pub fn errno() -> i32 {
    // SAFETY: the pointer is valid for this thread's lifetime.
    unsafe { *errno_location() }
}

/// Sets the calling thread's `errno`.
///
/// # Signal safety
/// Async-signal-safe: writes a thread-local integer.
pub fn set_errno(value: i32) {
    // SAFETY: the pointer is valid for this thread's lifetime.
    unsafe { *errno_location() = value };
}

/// This thread's `errno` (glibc and musl name its accessor `__errno_location`, Android's
/// bionic `__errno`).
///
/// # Signal safety
/// Async-signal-safe: returns a thread-local address.
fn errno_location() -> *mut i32 {
    #[cfg(target_os = "android")]
    // SAFETY: always a valid pointer to the calling thread's errno.
    return unsafe { libc::__errno() };
    #[cfg(not(target_os = "android"))]
    // SAFETY: always a valid pointer to the calling thread's errno.
    return unsafe { libc::__errno_location() };
}

/// The process's soft limit on open descriptors (`RLIMIT_NOFILE`), at most `u32::MAX`; 0 if
/// it cannot be read.
pub fn descriptor_limit() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid rlimit for the kernel to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    lim.rlim_cur.min(u32::MAX as libc::rlim_t) as usize
}

/// Reads the target of the symbolic link `path` into `buf`; returns its length.
pub fn readlink(path: &CStr, buf: &mut [u8]) -> Option<usize> {
    // SAFETY: path is NUL-terminated and buf is valid for buf.len() bytes.
    let n = unsafe { libc::readlink(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (n >= 0).then_some(n as usize)
}

/// A small formatter for NUL-terminated paths such as `/proc/self/task/<tid>/comm`.
pub struct PathBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> PathBuf<N> {
    /// An empty path.
    pub fn new() -> Self {
        PathBuf {
            buf: [0; N],
            len: 0,
        }
    }

    /// Appends bytes (silently truncating at capacity, which `as_cstr` then rejects).
    pub fn push(&mut self, bytes: &[u8]) -> &mut Self {
        for &b in bytes {
            match self.buf.get_mut(self.len).filter(|_| self.len + 1 < N) {
                Some(slot) => {
                    *slot = b;
                    self.len += 1;
                }
                None => self.len = N,
            }
        }
        self
    }

    /// Appends a decimal number.
    pub fn push_u64(&mut self, mut v: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        // u64::MAX has 20 digits, so the slots never run out.
        while let Some(d) = i.checked_sub(1).and_then(|j| digits.get_mut(j)) {
            i -= 1;
            *d = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.push(digits.get(i..).unwrap_or_default())
    }

    /// The path as a C string, or `None` if it overflowed or holds a NUL.
    pub fn as_cstr(&mut self) -> Option<&CStr> {
        *self.buf.get_mut(self.len)? = 0;
        CStr::from_bytes_with_nul(self.buf.get(..=self.len)?).ok()
    }
}

impl<const N: usize> Default for PathBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_proc_paths() {
        let mut p = PathBuf::<64>::new();
        p.push(b"/proc/self/task/").push_u64(12345).push(b"/comm");
        assert_eq!(
            p.as_cstr().unwrap().to_bytes(),
            b"/proc/self/task/12345/comm"
        );
        let mut tiny = PathBuf::<4>::new();
        tiny.push(b"/proc");
        assert!(tiny.as_cstr().is_none());
    }

    #[test]
    fn reads_proc_files() {
        let fd = Fd::open(c"/proc/self/comm", 0).unwrap();
        let mut buf = [0u8; 64];
        let n = fd.read_all(&mut buf).unwrap();
        assert!(n > 1 && buf[n - 1] == b'\n');
        assert!(Fd::open(c"/definitely/not/here", 0).is_none());
    }
}
