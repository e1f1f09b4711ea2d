//! The loader's list of modules (the executable and its DLLs).

use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering::SeqCst};

use super::api;

/// Loads and unloads counted by [`on_change`] while [`watch`] is in effect.
static CHANGES: AtomicU64 = AtomicU64::new(0);
/// The loader's registration cookie while watching, else null.
static COOKIE: AtomicPtr<core::ffi::c_void> = AtomicPtr::new(core::ptr::null_mut());

/// The loader's notification: called on the loading or unloading thread, under the loader
/// lock, for every DLL loaded or unloaded. It only counts.
unsafe extern "system" fn on_change(
    _reason: u32,
    _data: *const core::ffi::c_void,
    _: *mut core::ffi::c_void,
) {
    CHANGES.fetch_add(1, SeqCst);
}

/// Starts counting the loader's loads and unloads (`LdrRegisterDllNotification`); `false` if
/// the system refuses, and then [`changes`] stays `None`. Undone by [`unwatch`], which must
/// come before vignette's code could be unloaded (a `vignette.dll` freed).
pub fn watch() -> bool {
    if !COOKIE.load(SeqCst).is_null() {
        return true;
    }
    let mut cookie = core::ptr::null_mut();
    // SAFETY: `on_change` is a valid notification function that touches only an atomic; the
    // cookie is written by the call.
    let status = unsafe {
        api::LdrRegisterDllNotification(0, on_change, core::ptr::null_mut(), &mut cookie)
    };
    if status < 0 || cookie.is_null() {
        return false;
    }
    COOKIE.store(cookie, SeqCst);
    true
}

/// Stops what [`watch`] started.
pub fn unwatch() {
    let cookie = COOKIE.swap(core::ptr::null_mut(), SeqCst);
    if !cookie.is_null() {
        // SAFETY: the cookie came from LdrRegisterDllNotification and is unregistered once.
        unsafe { api::LdrUnregisterDllNotification(cookie) };
    }
}

/// How many loads and unloads happened since watching began; `None` when not watching.
///
/// # Suspension safety
/// One atomic load.
pub fn changes() -> Option<u64> {
    (!COOKIE.load(SeqCst).is_null()).then(|| CHANGES.load(SeqCst))
}

/// Most modules listed per pass.
pub const MAX_MODULES: usize = 1024;

/// One loaded module.
pub struct LoadedModule<'a> {
    /// Where the image is mapped (its `HMODULE`).
    pub base: u64,
    /// `SizeOfImage`: the image spans `base..base + size`.
    pub size: u64,
    /// Its full path, as UTF-8 (characters that do not convert as `?`).
    pub path: &'a [u8],
}

impl LoadedModule<'_> {
    /// What tells one module from another in the list: its range and its path.
    pub fn key(&self) -> (u64, u64, &[u8]) {
        (self.base, self.size, self.path)
    }
}

/// Calls `f` with every loaded module (at most [`MAX_MODULES`]), in the loader's order.
/// Returns whether the list was complete.
///
/// Takes the loader lock: never while a thread is suspended.
pub fn for_each_module(mut f: impl FnMut(&LoadedModule<'_>)) -> bool {
    let mut handles = [core::ptr::null_mut(); MAX_MODULES];
    let mut needed = 0u32;
    // SAFETY: `handles` is writable for the size passed.
    let ok = unsafe {
        api::K32EnumProcessModules(
            api::GetCurrentProcess(),
            handles.as_mut_ptr(),
            core::mem::size_of_val(&handles) as u32,
            &mut needed,
        )
    };
    if ok == 0 {
        return false;
    }
    let listed = needed as usize / core::mem::size_of::<api::HANDLE>();
    let mut wide = [0u16; 1024];
    let mut utf8 = [0u8; 1024 * 3];
    for &h in handles.iter().take(listed) {
        let mut info = api::MODULEINFO {
            lpBaseOfDll: core::ptr::null_mut(),
            SizeOfImage: 0,
            EntryPoint: core::ptr::null_mut(),
        };
        // SAFETY: `info` is writable for its size; a module unloaded meanwhile fails cleanly.
        let ok = unsafe {
            api::K32GetModuleInformation(
                api::GetCurrentProcess(),
                h,
                &mut info,
                core::mem::size_of::<api::MODULEINFO>() as u32,
            )
        };
        if ok == 0 {
            continue;
        }
        // SAFETY: `wide` is writable for the length passed.
        let n = unsafe { api::GetModuleFileNameW(h, wide.as_mut_ptr(), wide.len() as u32) };
        let path = to_utf8(wide.get(..n as usize).unwrap_or(&[]), &mut utf8);
        f(&LoadedModule {
            base: info.lpBaseOfDll as u64,
            size: info.SizeOfImage as u64,
            path,
        });
    }
    listed <= MAX_MODULES
}

/// UTF-16 to UTF-8 into `out` (unpaired surrogates become `?`; cut where `out` is full).
fn to_utf8<'a>(wide: &[u16], out: &'a mut [u8]) -> &'a [u8] {
    let mut n = 0;
    for c in char::decode_utf16(wide.iter().copied()) {
        let c = c.unwrap_or('?');
        let mut b = [0u8; 4];
        let s = c.encode_utf8(&mut b);
        let Some(dst) = out.get_mut(n..n + s.len()) else {
            break;
        };
        dst.copy_from_slice(s.as_bytes());
        n += s.len();
    }
    out.get(..n).unwrap_or(&[])
}
