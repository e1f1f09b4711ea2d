//! dyld's list of images (the executable and its dylibs), and a count of its changes.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};

use super::{api, memory};

/// Images added and removed, counted by [`on_change`] once registered.
static CHANGES: AtomicU64 = AtomicU64::new(0);
/// Whether the callbacks are registered with dyld (for the rest of the process's life: dyld
/// cannot unregister them).
static REGISTERED: AtomicBool = AtomicBool::new(false);
/// Whether a profiler is watching (between [`watch`] and [`unwatch`]).
static WATCHING: AtomicBool = AtomicBool::new(false);

/// dyld's notification, on the loading or unloading thread under dyld's lock, for every
/// image added (and, once, for each already loaded) or removed. It only counts.
unsafe extern "C" fn on_change(_header: *const core::ffi::c_void, _slide: isize) {
    CHANGES.fetch_add(1, SeqCst);
}

/// Starts counting dyld's image additions and removals. The first call registers the
/// callbacks for good (dyld has no way to remove them; they only count), and so first keeps
/// the image that holds vignette's code loaded for good: a `libvignette.dylib` closed with
/// `dlclose` stays mapped, so that dyld never calls into unmapped code.
pub fn watch() -> bool {
    if !REGISTERED.swap(true, SeqCst) {
        pin_own_image();
        // SAFETY: `on_change` touches only an atomic, and its image is never unloaded now.
        unsafe {
            api::_dyld_register_func_for_add_image(on_change);
            api::_dyld_register_func_for_remove_image(on_change);
        }
    }
    WATCHING.store(true, SeqCst);
    true
}

/// Takes a reference to the image holding this code that is never released
/// (`dlopen(RTLD_NOLOAD | RTLD_NODELETE)` of its own path).
fn pin_own_image() {
    // SAFETY: Dl_info is plain data; all-zero is valid.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    let here = on_change as *const core::ffi::c_void;
    // SAFETY: `here` is an address in this image; `info` is writable.
    if unsafe { libc::dladdr(here, &mut info) } == 0 || info.dli_fname.is_null() {
        return;
    }
    // SAFETY: a path dyld itself gave; RTLD_NOLOAD only references an image already loaded.
    unsafe { libc::dlopen(info.dli_fname, libc::RTLD_NOLOAD | libc::RTLD_NODELETE) };
}

/// Stops reporting changes (the callbacks go on counting).
pub fn unwatch() {
    WATCHING.store(false, SeqCst);
}

/// How many images were added and removed since the callbacks were registered; `None` when
/// not watching.
///
/// # Suspension safety
/// Two atomic loads.
pub fn changes() -> Option<u64> {
    WATCHING.load(SeqCst).then(|| CHANGES.load(SeqCst))
}

/// Most images listed per pass.
pub const MAX_MODULES: usize = 4096;

/// Longest path kept.
const MAX_PATH: usize = 1024;

/// One loaded image.
pub struct LoadedModule<'a> {
    /// Its Mach-O header: the load address.
    pub base: u64,
    /// Its path, as dyld knows it.
    pub path: &'a [u8],
}

impl LoadedModule<'_> {
    /// What tells one image from another in the list: its address and its path.
    pub fn key(&self) -> (u64, u64, &[u8]) {
        (self.base, 0, self.path)
    }
}

/// Calls `f` with every loaded image (at most [`MAX_MODULES`]), in dyld's order. Returns
/// whether the list was complete.
///
/// dyld's indexed list may shift while another thread loads or unloads an image: the path is
/// read without faulting, and a change is counted and makes the next pass list again. Takes
/// dyld's lock: never while a thread is suspended.
pub fn for_each_module(mut f: impl FnMut(&LoadedModule<'_>)) -> bool {
    // SAFETY: no arguments.
    let count = unsafe { api::_dyld_image_count() };
    let mut path = [0u8; MAX_PATH];
    for i in 0..count.min(MAX_MODULES as u32) {
        // SAFETY: an index below the count; dyld returns null for one that went away.
        let (header, name) =
            unsafe { (api::_dyld_get_image_header(i), api::_dyld_get_image_name(i)) };
        if header.is_null() {
            continue;
        }
        let len = if name.is_null() {
            0
        } else {
            c_string(name as u64, &mut path)
        };
        f(&LoadedModule {
            base: header as u64,
            path: path.get(..len).unwrap_or(&[]),
        });
    }
    count as usize <= MAX_MODULES
}

/// Reads the NUL-terminated string at `at` into `out` without faulting; its length (cut
/// where `out` is full or memory stops being readable).
fn c_string(at: u64, out: &mut [u8]) -> usize {
    let mut len = 0;
    while len < out.len() {
        let mut chunk = [0u8; 64];
        // Never across a page boundary: the next page may be unmapped.
        let page_left = 4096 - ((at + len as u64) % 4096) as usize;
        let n = chunk.len().min(page_left).min(out.len() - len);
        let Some(part) = chunk.get_mut(..n) else {
            break;
        };
        if !memory::read(at + len as u64, part) {
            break;
        }
        for &b in part.iter() {
            if b == 0 {
                return len;
            }
            if let Some(dst) = out.get_mut(len) {
                *dst = b;
            }
            len += 1;
        }
    }
    len
}
