//! Loaded objects, from the dynamic loader's `dl_iterate_phdr`.
//!
//! Never call this from the signal handler: `dl_iterate_phdr` takes the loader lock.

use core::ffi::{c_void, CStr};

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
                && p.p_flags & libc::PF_R != 0
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
