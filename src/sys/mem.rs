//! Fixed-size arrays in anonymous memory mappings.
//!
//! Every buffer the sampling path touches is a [`Region`], mapped and zeroed by the system in
//! `build()` (`mmap` on Linux, `VirtualAlloc` on Windows: each backend's `pages`). Mapping
//! pages instead of using the global allocator keeps the core `no_std` and means the profiler
//! never calls `malloc`, not even while it is being built.

use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

use super::pages::{map, unmap, zero_in_child};
use crate::error::{Error, Result};

/// Types for which all-zero bytes are a valid value (integers, atomics, arrays of them).
///
/// # Safety
/// The implementor promises that the all-zero bit pattern is a valid, initialised `Self`.
pub unsafe trait Zeroed {}

macro_rules! zeroed {
    ($($t:ty),*) => { $(
        // SAFETY: all-zero bytes are a valid value of this integer or atomic type.
        unsafe impl Zeroed for $t {}
    )* };
}
zeroed!(
    u8,
    u16,
    u32,
    u64,
    usize,
    core::sync::atomic::AtomicU8,
    core::sync::atomic::AtomicU32,
    core::sync::atomic::AtomicU64,
    core::sync::atomic::AtomicUsize,
    core::sync::atomic::AtomicBool
);
// SAFETY: an array of zero-valid elements is zero-valid.
unsafe impl<T: Zeroed, const N: usize> Zeroed for [T; N] {}

/// A zero-initialised array of `T` in its own anonymous mapping, unmapped on drop.
pub struct Region<T: Zeroed> {
    ptr: NonNull<T>,
    len: usize,
    bytes: usize,
    _owns: PhantomData<T>,
}

// SAFETY: a Region owns its mapping exclusively, like a Box<[T]>.
unsafe impl<T: Zeroed + Send> Send for Region<T> {}
// SAFETY: shared access only hands out &T, like a Box<[T]>.
unsafe impl<T: Zeroed + Sync> Sync for Region<T> {}

impl<T: Zeroed> Region<T> {
    /// Maps `len` zeroed elements. `len` may be 0.
    pub fn new(len: usize) -> Result<Self> {
        let bytes = len
            .checked_mul(core::mem::size_of::<T>())
            .ok_or(Error::OutOfMemory)?
            .max(1);
        let ptr = map(bytes)?;
        Ok(Region {
            // SAFETY: `map` succeeded, so ptr is not null.
            ptr: unsafe { NonNull::new_unchecked(ptr.cast()) },
            len,
            bytes,
            _owns: PhantomData,
        })
    }

    /// Maps `len` zeroed elements that a child forked from this process finds zeroed again
    /// rather than copied: for tables only the sampling engine reads, which never runs in a
    /// forked child (a fork then costs the parent neither their page tables nor a
    /// copy-on-write fault per page written after it).
    pub fn not_inherited(len: usize) -> Result<Self> {
        let region = Self::new(len)?;
        // SAFETY: exactly the mapping `new` made.
        unsafe { zero_in_child(region.ptr.as_ptr().cast(), region.bytes) };
        Ok(region)
    }

    /// Bytes mapped for this region.
    pub fn mapped_bytes(&self) -> usize {
        self.bytes
    }
}

impl<T: Zeroed> Deref for Region<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the mapping holds `len` zero-initialised (hence valid, by `Zeroed`) elements,
        // page-aligned, and lives as long as self.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Zeroed> DerefMut for Region<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in deref; &mut self guarantees exclusive access.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Zeroed> Drop for Region<T> {
    fn drop(&mut self) {
        // SAFETY: ptr/bytes describe exactly the mapping made in `new`, unmapped only here.
        // Elements are Zeroed plain data with no destructors to run.
        unsafe { unmap(self.ptr.as_ptr().cast(), self.bytes) };
    }
}

/// One `T` in its own anonymous mapping: a `Box` that needs no allocator. Its address is
/// stable, so a raw pointer to it can be handed to the signal handler or the sampler thread.
pub struct MapBox<T> {
    ptr: NonNull<T>,
}

// SAFETY: MapBox owns its T exclusively, like Box<T>.
unsafe impl<T: Send> Send for MapBox<T> {}
// SAFETY: shared access only hands out &T, like Box<T>.
unsafe impl<T: Sync> Sync for MapBox<T> {}

impl<T> MapBox<T> {
    /// Moves `value` into a new mapping.
    pub fn new(value: T) -> Result<Self> {
        let bytes = core::mem::size_of::<T>().max(1);
        assert!(core::mem::align_of::<T>() <= 4096);
        let ptr = map(bytes)?.cast::<T>();
        // SAFETY: the fresh mapping is page-aligned (enough for T) and large enough.
        unsafe { ptr.write(value) };
        Ok(MapBox {
            // SAFETY: `map` succeeded, so ptr is not null.
            ptr: unsafe { NonNull::new_unchecked(ptr) },
        })
    }

    /// Gives up ownership; [`MapBox::from_raw`] takes it back.
    pub fn into_raw(self) -> *mut T {
        let p = self.ptr.as_ptr();
        core::mem::forget(self);
        p
    }

    /// Takes back ownership given up by [`MapBox::into_raw`].
    ///
    /// # Safety
    /// `ptr` must come from `into_raw` and not have been taken back already.
    pub unsafe fn from_raw(ptr: *mut T) -> Self {
        MapBox {
            // SAFETY: into_raw never returns null.
            ptr: unsafe { NonNull::new_unchecked(ptr) },
        }
    }
}

impl<T> Deref for MapBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: ptr holds an initialised T that we own.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for MapBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: ptr holds an initialised T that we own exclusively.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T> Drop for MapBox<T> {
    fn drop(&mut self) {
        // SAFETY: the T is initialised and dropped once; then its mapping is unmapped.
        unsafe {
            core::ptr::drop_in_place(self.ptr.as_ptr());
            unmap(self.ptr.as_ptr().cast(), core::mem::size_of::<T>().max(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_zeroed_and_writable() {
        let mut r = Region::<u64>::new(1000).unwrap();
        assert_eq!(r.len(), 1000);
        assert!(r.iter().all(|&x| x == 0));
        r[999] = 7;
        assert_eq!(r[999], 7);
        assert!(r.mapped_bytes() >= 8000);
        assert_eq!(Region::<u8>::new(0).unwrap().len(), 0);
    }

    #[test]
    fn absurd_sizes_fail_cleanly() {
        assert_eq!(
            Region::<u64>::new(usize::MAX / 4).err(),
            Some(Error::OutOfMemory)
        );
    }
}
