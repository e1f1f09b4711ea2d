//! Names of JIT-compiled code, from the symbol map a runtime writes for `perf` (Node's
//! `--perf-basic-prof`, the JVM's perf-map agents, LuaJIT, .NET): `/tmp/perf-<pid>.map`, one
//! `START SIZE name` line per piece of code (hexadecimal), a later line for the same address
//! describing newer code. Read when a session or chunk closes, never on the signal path; only
//! the lines that cover a sampled frame outside every module are kept, and they travel in the
//! profile, so those frames are named on any machine (the map is gone with the process).

use crate::error::Result;
use crate::sys::mem::{Region, Zeroed};

/// Lines kept per profile; more are counted in [`JitTable::dropped`].
const MAX_ENTRIES: usize = 4096;
/// Bytes of names kept per profile.
const MAX_NAME_BYTES: usize = 256 * 1024;
/// A name is cut to this many bytes (at a character boundary).
#[cfg(any(target_os = "linux", target_os = "android"))]
const MAX_NAME: usize = 255;
/// Bytes read from a map at most: a runtime that has run for days may write hundreds of MB.
#[cfg(any(target_os = "linux", target_os = "android"))]
const MAX_MAP_BYTES: u64 = 64 << 20;
/// The read buffer: a line longer than this is skipped.
#[cfg(any(target_os = "linux", target_os = "android"))]
const BLOCK: usize = 64 * 1024;

#[derive(Clone, Copy)]
pub(crate) struct JitRec {
    pub start: u64,
    pub size: u64,
    name_at: u32,
    name_len: u32,
}

// SAFETY: integers only; zero is valid.
unsafe impl Zeroed for JitRec {}

/// The map's lines that name sampled code, in file order.
pub(crate) struct JitTable {
    kept: Kept,
    /// Where a map is read into.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    block: Region<u8>,
}

/// The lines kept.
struct Kept {
    entries: Region<JitRec>,
    len: usize,
    names: Region<u8>,
    names_len: usize,
    /// Lines that named sampled code but found no room.
    dropped: u64,
}

impl JitTable {
    /// An empty table (its memory is touched only when a map is read).
    pub fn new() -> Result<Self> {
        Ok(JitTable {
            kept: Kept {
                entries: Region::new(MAX_ENTRIES)?,
                len: 0,
                names: Region::new(MAX_NAME_BYTES)?,
                names_len: 0,
                dropped: 0,
            },
            #[cfg(any(target_os = "linux", target_os = "android"))]
            block: Region::new(BLOCK)?,
        })
    }

    /// Bytes mapped for it.
    pub fn mapped_bytes(&self) -> usize {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let block = self.block.mapped_bytes();
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let block = 0;
        self.kept.entries.mapped_bytes() + self.kept.names.mapped_bytes() + block
    }

    /// Forgets every entry.
    pub fn clear(&mut self) {
        self.kept.len = 0;
        self.kept.names_len = 0;
        self.kept.dropped = 0;
    }

    /// Lines that named sampled code but found no room.
    #[cfg(all(test, any(target_os = "linux", target_os = "android")))]
    pub fn dropped(&self) -> u64 {
        self.kept.dropped
    }

    /// The entries: start address, size, name.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64, &str)> + Clone + '_ {
        self.kept.iter()
    }

    #[cfg(all(test, any(target_os = "linux", target_os = "android")))]
    fn line(&mut self, line: &[u8], sorted: &[u64]) {
        self.kept.line(line, sorted)
    }
}

impl Kept {
    fn iter(&self) -> impl Iterator<Item = (u64, u64, &str)> + Clone + '_ {
        self.entries.iter().take(self.len).map(|e| {
            let (at, len) = (e.name_at as usize, e.name_len as usize);
            let name = self.names.get(at..at + len).unwrap_or_default();
            (e.start, e.size, core::str::from_utf8(name).unwrap_or(""))
        })
    }

    /// Keeps the line `start size name` if it covers one of `sorted` (addresses, ascending).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn offer(&mut self, start: u64, size: u64, name: &[u8], sorted: &[u64]) {
        let i = sorted.partition_point(|&a| a < start);
        if sorted.get(i).is_none_or(|&a| a - start >= size) {
            return;
        }
        // Valid UTF-8 only (the longest valid prefix), cut at a character boundary.
        let name = match core::str::from_utf8(name) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&name[..e.valid_up_to()]).unwrap_or(""),
        };
        let mut cut = name.len().min(MAX_NAME);
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        let bytes = &name.as_bytes()[..cut];
        let at = self.names_len;
        let (Some(entry), Some(room)) = (
            self.entries.get_mut(self.len),
            self.names.get_mut(at..at + bytes.len()),
        ) else {
            self.dropped += 1;
            return;
        };
        room.copy_from_slice(bytes);
        *entry = JitRec {
            start,
            size,
            name_at: at as u32,
            name_len: bytes.len() as u32,
        };
        self.len += 1;
        self.names_len += bytes.len();
    }

    /// Parses one line of a map and offers it.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn line(&mut self, line: &[u8], sorted: &[u64]) {
        let mut fields = line.splitn(3, |&b| b == b' ');
        let (Some(start), Some(size), Some(name)) = (fields.next(), fields.next(), fields.next())
        else {
            return;
        };
        if let (Some(start), Some(size)) = (hex(start), hex(size)) {
            let name = name.strip_suffix(b"\r").unwrap_or(name);
            self.offer(start, size, name, sorted);
        }
    }
}

impl JitTable {
    /// Reads `/tmp/perf-<pid>.map` for the code at `sorted` (addresses outside every module,
    /// ascending), replacing what the table held. A map that is missing, not a regular file,
    /// not owned by this process's user, or unreadable leaves the table empty.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn read(&mut self, pid: u32, sorted: &[u64]) {
        use crate::sys::fs::Fd;
        self.clear();
        if sorted.is_empty() {
            return;
        }
        let mut path = [0u8; 32];
        let len = format_path(&mut path, pid);
        let Ok(path) = core::ffi::CStr::from_bytes_with_nul(&path[..len + 1]) else {
            return;
        };
        // Never a link planted in /tmp, never a FIFO that would block.
        let Some(fd) = Fd::open(path, libc::O_NOFOLLOW | libc::O_NONBLOCK) else {
            return;
        };
        // SAFETY: a zeroed stat is a valid buffer for fstat to fill.
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        // SAFETY: fd is open; st is valid for writes. geteuid cannot fail.
        let (ok, uid) = unsafe { (libc::fstat(fd.raw(), &mut st) == 0, libc::geteuid()) };
        if !ok || st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_uid != uid {
            return;
        }
        self.read_tail(&fd, st.st_size as u64, MAX_MAP_BYTES, sorted);
    }

    /// Parses the last `max` bytes of the map open at `fd` (`size` bytes long): a runtime
    /// appends, so the newest code is at the end; a line cut by the start is skipped.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn read_tail(&mut self, fd: &crate::sys::fs::Fd, size: u64, max: u64, sorted: &[u64]) {
        let start = size.saturating_sub(max);
        // SAFETY: lseek on our own descriptor; a failure leaves it at the start, which only
        // reads more.
        let at = unsafe { libc::lseek(fd.raw(), start as libc::off_t, libc::SEEK_SET) };
        let (block, kept) = (&mut self.block, &mut self.kept);
        // The map may grow while it is read: what was written after the size was taken, up to
        // a block more, is read too.
        let (mut held, mut read, mut skipping) = (0usize, 0u64, at > 0);
        while read < max + BLOCK as u64 {
            let Some(n) = block.get_mut(held..).and_then(|rest| fd.read(rest)) else {
                break;
            };
            if n == 0 {
                break;
            }
            read += n as u64;
            let filled = held + n;
            let mut from = 0;
            while let Some(end) = block[from..filled].iter().position(|&b| b == b'\n') {
                if !skipping {
                    kept.line(&block[from..from + end], sorted);
                }
                skipping = false;
                from += end + 1;
            }
            if from == 0 && filled == block.len() {
                // A line longer than the buffer: skip to its end.
                skipping = true;
                held = 0;
            } else {
                block.copy_within(from..filled, 0);
                held = filled - from;
            }
        }
        if !skipping && held > 0 {
            kept.line(&block[..held], sorted);
        }
    }
}

/// Writes `/tmp/perf-<pid>.map` and a NUL into `out`; returns the length without the NUL.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn format_path(out: &mut [u8; 32], pid: u32) -> usize {
    let (head, tail) = (b"/tmp/perf-", b".map");
    out[..head.len()].copy_from_slice(head);
    let mut digits = [0u8; 10];
    let mut n = 0;
    let mut v = pid;
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let mut at = head.len();
    for d in digits[..n].iter().rev() {
        out[at] = *d;
        at += 1;
    }
    out[at..at + tail.len()].copy_from_slice(tail);
    at += tail.len();
    out[at] = 0;
    at
}

/// A hexadecimal number, with or without `0x` (perf maps are written both ways).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn hex(s: &[u8]) -> Option<u64> {
    let digits = (s.strip_prefix(b"0x"))
        .or_else(|| s.strip_prefix(b"0X"))
        .unwrap_or(s);
    crate::sys::maps::hex(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn keeps_the_lines_that_name_sampled_code() {
        let mut t = JitTable::new().unwrap();
        let sorted = [0x1000, 0x2050, 0x9000];
        t.line(b"1000 10 LazyCompile:*hot /app.js:3", &sorted);
        t.line(b"2000 100 Builtin:Call", &sorted);
        t.line(b"3000 100 never sampled", &sorted);
        t.line(b"0x9000 1 stub\r", &sorted);
        t.line(b"zz 10 bad start", &sorted);
        t.line(b"4000 10", &sorted);
        let got: Vec<_> = t.iter().collect();
        assert_eq!(
            got,
            [
                (0x1000, 0x10, "LazyCompile:*hot /app.js:3"),
                (0x2000, 0x100, "Builtin:Call"),
                (0x9000, 1, "stub"),
            ]
        );
        // Invalid UTF-8 keeps its valid prefix; long names are cut at a character boundary.
        t.clear();
        t.line(b"1000 1 ok\xff\xfe", &sorted);
        let long = [b"1000 1 ".as_slice(), "é".repeat(200).as_bytes()].concat();
        t.line(&long, &sorted);
        let got: Vec<_> = t.iter().map(|(_, _, n)| n.len()).collect();
        assert_eq!(got, [2, 254]);
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn a_full_table_counts_what_it_drops() {
        let mut t = JitTable::new().unwrap();
        for _ in 0..MAX_ENTRIES + 3 {
            t.line(b"10 10 f", &[0x10]);
        }
        assert_eq!((t.iter().count(), t.dropped()), (MAX_ENTRIES, 3));
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn reads_this_process_map_with_lines_across_blocks() {
        use std::io::Write;
        let pid = std::process::id();
        let path = std::format!("/tmp/perf-{pid}.map");
        let mut f = std::fs::File::create(&path).unwrap();
        // Enough lines to span several read blocks, one of them far longer than a block.
        for i in 0..20_000u64 {
            writeln!(f, "{:x} 10 fn_{i}", 0x10_0000 + i * 0x10).unwrap();
        }
        writeln!(f, "abc 1 {}", "x".repeat(BLOCK * 2)).unwrap();
        write!(f, "ffff0 10 last_line_without_newline").unwrap();
        drop(f);
        let mut t = JitTable::new().unwrap();
        let sorted = [
            0xabc,
            0xffff5,
            0x10_0000 + 7 * 0x10 + 3,
            0x10_0000 + 19_999 * 0x10,
        ];
        t.read(pid, &sorted);
        std::fs::remove_file(&path).unwrap();
        let names: Vec<_> = t.iter().map(|(_, _, n)| n.to_string()).collect();
        assert_eq!(names, ["fn_7", "fn_19999", "last_line_without_newline"]);
        // No map: an empty table.
        t.read(pid, &sorted);
        assert_eq!(t.iter().count(), 0);
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn a_long_map_is_read_from_its_end() {
        let path = std::env::temp_dir().join(std::format!("jit-tail-{}", std::process::id()));
        let lines: std::string::String = (0..1000u64)
            .map(|i| std::format!("{:x} 10 fn_{i}\n", 0x1000 + i * 0x10))
            .collect();
        std::fs::write(&path, &lines).unwrap();
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        let fd = crate::sys::fs::Fd::open(&c, 0).unwrap();
        let mut t = JitTable::new().unwrap();
        // The last 100 bytes hold the last few lines, the first of them cut.
        let sorted = [0x1000 + 990 * 0x10, 0x1000 + 999 * 0x10, 0x1000];
        let mut sorted = sorted.to_vec();
        sorted.sort_unstable();
        t.read_tail(&fd, lines.len() as u64, 100, &sorted);
        std::fs::remove_file(&path).unwrap();
        let names: std::vec::Vec<_> = t.iter().map(|(_, _, n)| n.to_string()).collect();
        assert_eq!(names, ["fn_999"]);
    }
}
