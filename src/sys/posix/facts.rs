//! What Linux and macOS tell about the system alike (see [`crate::metadata::system_facts`]).

/// The kernel's release (`uname -r`), written into `buf`.
pub fn os_release(buf: &mut [u8]) -> Option<&str> {
    // SAFETY: a zeroed utsname is a valid value for uname to fill.
    let mut u: libc::utsname = unsafe { core::mem::zeroed() };
    // SAFETY: `u` is a writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    // `c_char` is `i8` or `u8` by architecture.
    #[allow(clippy::unnecessary_cast)]
    let release = u.release.iter().take_while(|&&c| c != 0).map(|&c| c as u8);
    let mut n = 0;
    for (slot, b) in buf.iter_mut().zip(release) {
        *slot = b;
        n += 1;
    }
    core::str::from_utf8(buf.get(..n)?).ok()
}

/// Logical processors online.
pub fn cores() -> Option<u64> {
    // SAFETY: sysconf only reads a system setting.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    u64::try_from(n).ok().filter(|&n| n > 0)
}
