//! This process's threads: ids, the list of live ones, names, and handles to them.

use super::api;

/// The calling thread's id.
pub fn gettid() -> i32 {
    // SAFETY: no arguments, no failure.
    unsafe { api::GetCurrentThreadId() as i32 }
}

/// This process's id.
pub fn getpid() -> i32 {
    // SAFETY: no arguments, no failure.
    unsafe { api::GetCurrentProcessId() as i32 }
}

/// Calls `f` with the id of every live thread of this process (a Toolhelp snapshot). Returns
/// whether the list was complete (`false` if the snapshot could not be taken).
///
/// Not while any thread is suspended: the snapshot allocates in the system's heap.
pub fn for_each_thread(mut f: impl FnMut(i32)) -> bool {
    let pid = getpid() as u32;
    // SAFETY: a snapshot of the system's threads, closed below.
    let snap = unsafe { api::CreateToolhelp32Snapshot(api::TH32CS_SNAPTHREAD, 0) };
    if snap == api::INVALID_HANDLE_VALUE || snap.is_null() {
        return false;
    }
    let mut e = api::THREADENTRY32 {
        dwSize: core::mem::size_of::<api::THREADENTRY32>() as u32,
        ..Default::default()
    };
    // SAFETY: `e` is a THREADENTRY32 with its size set, as Thread32First/Next require.
    let mut ok = unsafe { api::Thread32First(snap, &mut e) } != 0;
    while ok {
        if e.th32OwnerProcessID == pid {
            f(e.th32ThreadID as i32);
        }
        // SAFETY: as above.
        ok = unsafe { api::Thread32Next(snap, &mut e) } != 0;
    }
    // SAFETY: the snapshot handle is ours.
    unsafe { api::CloseHandle(snap) };
    true
}

/// Writes thread `tid`'s name (its `SetThreadDescription`, as UTF-8, ASCII kept and anything
/// else as `?`, cut to 15 bytes) into `out` and returns its length (0 if it has none).
pub fn thread_name(tid: i32, out: &mut [u8; 16]) -> usize {
    let Some(h) = Handle::open(tid, api::THREAD_QUERY_LIMITED_INFORMATION) else {
        return 0;
    };
    // UNICODE_STRING { u16 length, u16 max, pad, *u16 buffer } followed by the characters.
    #[repr(C, align(8))]
    struct NameInfo {
        len: u16,
        max: u16,
        buffer: *const u16,
        chars: [u16; 128],
    }
    let mut info = NameInfo {
        len: 0,
        max: 0,
        buffer: core::ptr::null(),
        chars: [0; 128],
    };
    let mut ret = 0u32;
    // SAFETY: `info` is a writable buffer of the size passed; the kernel fills the header and
    // points `buffer` inside it.
    let status = unsafe {
        api::NtQueryInformationThread(
            h.0,
            api::THREAD_NAME_INFORMATION_CLASS,
            (&mut info as *mut NameInfo).cast(),
            core::mem::size_of::<NameInfo>() as u32,
            &mut ret,
        )
    };
    if status < 0 || info.buffer.is_null() {
        return 0;
    }
    let base = &info as *const NameInfo as usize;
    let at = info.buffer as usize;
    let chars = (info.len / 2) as usize;
    // The characters must lie inside `info`.
    if at < base || at + chars * 2 > base + core::mem::size_of::<NameInfo>() {
        return 0;
    }
    // SAFETY: checked just above to lie inside `info`, which the kernel filled.
    let name = unsafe { core::slice::from_raw_parts(at as *const u16, chars) };
    let mut n = 0;
    for (dst, &c) in out.iter_mut().take(15).zip(name) {
        *dst = if (0x20..0x7f).contains(&c) {
            c as u8
        } else {
            b'?'
        };
        n += 1;
    }
    n
}

/// An open thread handle, closed on drop.
pub struct Handle(pub(crate) api::HANDLE);

// SAFETY: a kernel handle may be used from any thread.
unsafe impl Send for Handle {}

impl Handle {
    /// Opens thread `tid` with `access`, if it exists.
    pub fn open(tid: i32, access: u32) -> Option<Self> {
        // SAFETY: OpenThread takes plain values and returns null on failure.
        let h = unsafe { api::OpenThread(access, 0, tid as u32) };
        (!h.is_null()).then_some(Handle(h))
    }

    /// Takes ownership of a raw handle (from [`Handle::into_raw`]); dropping it closes it.
    pub fn from_raw(raw: api::HANDLE) -> Self {
        Handle(raw)
    }

    /// Gives up ownership: the raw handle, to be closed by a later [`Handle::from_raw`]'s drop.
    pub fn into_raw(self) -> api::HANDLE {
        let h = self.0;
        core::mem::forget(self);
        h
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: our handle, closed once.
        unsafe { api::CloseHandle(self.0) };
    }
}
