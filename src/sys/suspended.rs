//! What the systems that sample by suspending threads (Windows, macOS) share: why a thread
//! could not be captured, and the copy of its stack.

/// Why a thread could not be sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureError {
    /// The thread has exited (or cannot be suspended).
    Gone,
    /// Its registers could not be read.
    NoContext,
}

/// Copies a suspended thread's live stack into `buf`: from `sp` up to `top` (the stack's
/// upper end, 0 if unknown), at most `buf.len()` bytes, through `read` (which must fail
/// rather than fault). A copy that meets unreadable memory is retried shorter. Returns the
/// bytes copied (a multiple of 8; 0 if none could be).
///
/// # Suspension safety
/// As `read`: no allocation, no lock.
pub fn copy_stack(
    sp: u64,
    top: u64,
    buf: &mut [u8],
    read: impl Fn(u64, &mut [u8]) -> bool,
) -> usize {
    // A top the thread does not seem to be under (a fiber or coroutine on another stack)
    // leaves only what the buffer holds.
    let want = match top.checked_sub(sp) {
        Some(len) if len > 0 => usize::try_from(len).unwrap_or(usize::MAX).min(buf.len()),
        _ => buf.len(),
    };
    let mut len = want & !7;
    while len >= 8 {
        if buf.get_mut(..len).is_some_and(|b| read(sp, b)) {
            return len;
        }
        len = (len / 2) & !7;
    }
    0
}
