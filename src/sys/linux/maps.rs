//! `/proc/self/maps`, read without allocating: the readable and writable mappings, which hold
//! every thread's stack (and the alternate signal stacks).

use super::fs::Fd;

/// Calls `f(start, end)` for every mapping that is readable and writable, in address order.
/// Returns `false` if the file could not be read.
pub fn for_each_writable_mapping(mut f: impl FnMut(u64, u64)) -> bool {
    let Some(fd) = Fd::open(c"/proc/self/maps", 0) else {
        return false;
    };
    let mut chunk = [0u8; 4096];
    // The start of the current line (we only need its first ~40 bytes).
    let mut line = [0u8; 64];
    let mut line_len = 0usize;
    loop {
        let Some(n) = fd.read(&mut chunk) else {
            return false;
        };
        if n == 0 {
            if line_len > 0 {
                parse_line(line.get(..line_len).unwrap_or_default(), &mut f);
            }
            return true;
        }
        for &b in chunk.get(..n).unwrap_or_default() {
            if b == b'\n' {
                parse_line(line.get(..line_len).unwrap_or_default(), &mut f);
                line_len = 0;
            } else if let Some(slot) = line.get_mut(line_len) {
                *slot = b;
                line_len += 1;
            }
        }
    }
}

/// Parses `start-end perms ...` and reports the range if perms start with `rw`.
fn parse_line(line: &[u8], f: &mut impl FnMut(u64, u64)) {
    let mut fields = line.split(|&b| b == b' ');
    let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
        return;
    };
    if !perms.starts_with(b"rw") {
        return;
    }
    let mut ends = range.split(|&b| b == b'-');
    if let (Some(Some(start)), Some(Some(end))) = (ends.next().map(hex), ends.next().map(hex)) {
        if start < end {
            f(start, end);
        }
    }
}

/// A hexadecimal number of at most 16 digits (no `0x`), as `/proc` and perf maps write them.
pub(crate) fn hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &c| {
        let d = (c as char).to_digit(16)?;
        Some(acc << 4 | d as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines() {
        let mut got = std::vec::Vec::new();
        let mut push = |a, b| got.push((a, b));
        parse_line(
            b"7ffd1000-7ffd3000 rw-p 00000000 00:00 0   [stack]",
            &mut push,
        );
        parse_line(
            b"55550000-55551000 r-xp 00000000 08:01 42  /bin/x",
            &mut push,
        );
        parse_line(b"garbage", &mut push);
        parse_line(b"zz-10 rw-p", &mut push);
        assert_eq!(got, [(0x7ffd1000, 0x7ffd3000)]);
    }

    #[test]
    fn finds_this_threads_stack() {
        let local = 0u64;
        let addr = &local as *const u64 as u64;
        let mut found = false;
        assert!(for_each_writable_mapping(
            |s, e| found |= (s..e).contains(&addr)
        ));
        assert!(found);
    }
}
