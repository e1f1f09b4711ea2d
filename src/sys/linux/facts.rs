//! What the system is, for profiles (see [`crate::metadata::system_facts`]).

pub use super::super::posix::facts::{cores, os_release};
use super::fs::Fd;

/// The operating system's name in profiles.
pub const OS: &str = "linux";

/// The CPU's model name from `/proc/cpuinfo` (x86's `model name`), written into `buf`.
pub fn cpu_model(buf: &mut [u8]) -> Option<&str> {
    let mut text = [0u8; 4096];
    let n = Fd::open(c"/proc/cpuinfo", libc::O_RDONLY | libc::O_CLOEXEC)?.read_all(&mut text)?;
    let read = text.get(..n)?;
    // Cut inside a character: what is before it.
    let valid = core::str::from_utf8(read).map_or_else(|e| e.valid_up_to(), |t| t.len());
    let text = core::str::from_utf8(read.get(..valid)?).ok()?;
    let model = text.lines().find_map(|l| {
        l.strip_prefix("model name")?
            .split_once(':')
            .map(|(_, v)| v.trim())
    })?;
    let len = model.len().min(buf.len());
    let len = (0..=len).rev().find(|&i| model.is_char_boundary(i))?;
    buf.get_mut(..len)?
        .copy_from_slice(model.as_bytes().get(..len)?);
    core::str::from_utf8(buf.get(..len)?).ok()
}

/// Total memory, from `sysinfo`.
pub fn memory_bytes() -> Option<u64> {
    // SAFETY: a zeroed sysinfo is a valid value for the call to fill.
    let mut info: libc::sysinfo = unsafe { core::mem::zeroed() };
    // SAFETY: `info` is a writable sysinfo.
    if unsafe { libc::sysinfo(&mut info) } != 0 {
        return None;
    }
    (info.totalram as u64).checked_mul(info.mem_unit.max(1) as u64)
}
