//! Loaded objects, from the dynamic loader's `dl_iterate_phdr`.
//!
//! Never call this from the signal handler: `dl_iterate_phdr` takes the loader lock.

use core::ffi::{c_void, CStr};

/// A program header's "readable" flag (`PF_R`, which not every C library's header names).
pub(crate) const PF_R: u32 = 4;

/// An ELF program header of a loaded object.
pub type Phdr = libc::Elf64_Phdr;

/// One object the loader has mapped: the executable, a shared library, or the vDSO.
pub struct LoadedObject<'a> {
    /// The loader's name for it: a path, `""` for the main executable, `linux-vdso.so.1`.
    pub name: &'a [u8],
    /// Load bias: added to a `p_vaddr` to get the address in this process.
    pub bias: u64,
    /// Its program headers.
    pub phdrs: &'a [Phdr],
    /// The loader's count of objects ever loaded, then unloaded (change detection).
    pub adds_subs: (u64, u64),
}

impl LoadedObject<'_> {
    /// The bytes of segment `phdr` as mapped in memory (its `p_filesz` bytes), or empty if the
    /// segment is not also covered by a loaded `PT_LOAD` (only then is it guaranteed mapped).
    pub fn segment(&self, phdr: &Phdr) -> &[u8] {
        let covered = self.phdrs.iter().any(|l| {
            l.p_type == libc::PT_LOAD
                && l.p_vaddr <= phdr.p_vaddr
                && phdr.p_vaddr.saturating_add(phdr.p_filesz)
                    <= l.p_vaddr.saturating_add(l.p_filesz)
        });
        if !covered || phdr.p_filesz == 0 {
            return &[];
        }
        let start = self.bias.wrapping_add(phdr.p_vaddr);
        // SAFETY: the segment lies inside a PT_LOAD segment's file-backed part, which the loader
        // has mapped readable for as long as the object stays loaded; we hold the loader lock
        // for the duration of the callback that this borrow cannot outlive.
        unsafe { core::slice::from_raw_parts(start as usize as *const u8, phdr.p_filesz as usize) }
    }
}

impl LoadedObject<'_> {
    /// The `len` bytes at `avma`, which must lie inside one of this object's readable,
    /// file-backed `PT_LOAD` segments (empty otherwise).
    pub fn slice(&self, avma: u64, len: u64) -> &[u8] {
        let inside = self.phdrs.iter().any(|p| {
            let start = self.bias.wrapping_add(p.p_vaddr);
            p.p_type == libc::PT_LOAD
                && p.p_flags & PF_R != 0
                && start <= avma
                && avma.saturating_add(len) <= start.saturating_add(p.p_filesz)
        });
        if !inside || len == 0 {
            return &[];
        }
        // SAFETY: as in `segment`: inside a loaded PT_LOAD segment's file-backed part, mapped
        // readable while the object stays loaded, and the loader lock is held for the callback
        // this borrow cannot outlive.
        unsafe { core::slice::from_raw_parts(avma as usize as *const u8, len as usize) }
    }
}

/// Calls `f` for every loaded object, under the loader lock.
pub fn for_each_object(mut f: impl FnMut(&LoadedObject<'_>)) {
    let mut f: &mut dyn FnMut(&LoadedObject<'_>) = &mut f;
    extern "C" fn callback(info: *mut libc::dl_phdr_info, size: usize, data: *mut c_void) -> i32 {
        // SAFETY: data is the `&mut &mut dyn FnMut` passed below, alive during the iteration.
        let f = unsafe { &mut *(data as *mut &mut dyn FnMut(&LoadedObject<'_>)) };
        // SAFETY: the loader passes a valid dl_phdr_info of at least `size` bytes.
        let info = unsafe { &*info };
        let name = if info.dlpi_name.is_null() {
            &[][..]
        } else {
            // SAFETY: a non-null dlpi_name is a NUL-terminated string owned by the loader.
            unsafe { CStr::from_ptr(info.dlpi_name) }.to_bytes()
        };
        let phdrs = if info.dlpi_phdr.is_null() {
            &[][..]
        } else {
            // SAFETY: the loader guarantees dlpi_phnum headers at dlpi_phdr.
            unsafe { core::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) }
        };
        let has_counts = size >= core::mem::offset_of!(libc::dl_phdr_info, dlpi_tls_modid);
        f(&LoadedObject {
            name,
            bias: info.dlpi_addr,
            phdrs,
            adds_subs: if has_counts {
                (info.dlpi_adds, info.dlpi_subs)
            } else {
                (0, 0)
            },
        });
        0
    }
    // SAFETY: the callback only uses `data` as the closure reference we pass.
    unsafe { libc::dl_iterate_phdr(Some(callback), (&mut f) as *mut _ as *mut c_void) };
}

/// glibc's `struct dl_find_object` (2.35 on) for x86_64 and aarch64, with room to spare.
#[repr(C)]
struct DlFindObject {
    flags: u64,
    map_start: usize,
    map_end: usize,
    link_map: usize,
    eh_frame: usize,
    /// glibc's `__dflo_reserved[7]`, and more room than any later version adds.
    reserved: [u64; 16],
}

/// The loaded object holding an address, as glibc's `_dl_find_object` reports it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoundObject {
    /// The loader's `link_map` of the object (its identity while loaded).
    pub link_map: usize,
    /// The end of the object's mapping.
    pub map_end: usize,
}

/// glibc's `_dl_find_object` (2.35 on): which loaded object holds an address, lock-free and
/// async-signal-safe (glibc documents it AS-Safe: it is meant for unwinders). An object that
/// `dlclose` unloaded is no longer found as soon as `dlclose` returns.
#[derive(Clone, Copy)]
pub struct FindObject(unsafe extern "C" fn(*mut c_void, *mut DlFindObject) -> i32);

impl FindObject {
    /// Looks the function up (off the signal path: `dlsym` takes the loader lock); `None`
    /// where the C library has none (glibc before 2.35, musl).
    pub fn resolve() -> Option<FindObject> {
        // SAFETY: dlsym with a NUL-terminated name; the symbol, when present, has the
        // signature declared in glibc's <dlfcn.h>.
        unsafe {
            let f = libc::dlsym(libc::RTLD_DEFAULT, c"_dl_find_object".as_ptr());
            (!f.is_null()).then(|| {
                FindObject(core::mem::transmute::<
                    *mut c_void,
                    unsafe extern "C" fn(*mut c_void, *mut DlFindObject) -> i32,
                >(f))
            })
        }
    }

    /// The object holding `avma` now, if any.
    ///
    /// # Signal safety
    /// Async-signal-safe: `_dl_find_object` reads the loader's lock-free copy of its list.
    pub fn find(self, avma: u64) -> Option<FoundObject> {
        let mut out = DlFindObject {
            flags: 0,
            map_start: 0,
            map_end: 0,
            link_map: 0,
            eh_frame: 0,
            reserved: [0; 16],
        };
        // SAFETY: `out` is a writable dl_find_object with room to spare; the address is only
        // compared, never dereferenced.
        let rc = unsafe { (self.0)(avma as usize as *mut c_void, &mut out) };
        (rc == 0 && out.map_end > out.map_start).then_some(FoundObject {
            link_map: out.link_map,
            map_end: out.map_end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// glibc (2.35 on) finds the object holding an address, and nothing where none is.
    #[test]
    fn the_loader_finds_the_object_holding_an_address() {
        let Some(find) = FindObject::resolve() else {
            eprintln!("no _dl_find_object in this C library");
            return;
        };
        let here = FindObject::resolve as *const () as u64;
        let found = find.find(here).expect("this executable is loaded");
        assert!(found.link_map != 0 && found.map_end as u64 > here);
        assert_eq!(find.find(0x1000), None);
    }
}
