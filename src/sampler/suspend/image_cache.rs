//! A cache of module memory for the unwinders: unwind info and code are read with
//! `ReadProcessMemory` or `mach_vm_read_overwrite` (which cannot fault), one system call
//! each, and a walk makes several per frame; the same few hundred functions are met sample
//! after sample. Reads are served from 64-byte blocks kept in a direct-mapped table allocated
//! at `build()`, which is emptied whenever the module tables change (a block then may belong
//! to another module).

use core::cell::RefCell;

use crate::error::Result;
use crate::sys::mem::Region;
use crate::sys::memory;
use crate::unwind::ImageReader;

const BLOCK: usize = 64;

/// The blocks and, per block, the address it holds plus one (0: empty).
pub(crate) struct ImageCache {
    tags: Region<u64>,
    blocks: Region<[u8; BLOCK]>,
    /// Reads served from the cache, and reads that went to the system.
    pub hits: u64,
    pub misses: u64,
}

impl ImageCache {
    /// A cache of `blocks` blocks (a power of two).
    pub fn new(blocks: usize) -> Result<Self> {
        Ok(ImageCache {
            tags: Region::new(blocks)?,
            blocks: Region::new(blocks)?,
            hits: 0,
            misses: 0,
        })
    }

    /// Forgets every block.
    pub fn clear(&mut self) {
        self.tags.fill(0);
    }

    pub fn mapped_bytes(&self) -> usize {
        self.tags.mapped_bytes() + self.blocks.mapped_bytes()
    }

    /// The block at `at` (a multiple of the block size), from the cache or read now.
    fn block(&mut self, at: u64) -> Option<&[u8; BLOCK]> {
        let i = ((at / BLOCK as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize
            & (self.tags.len().max(1) - 1);
        let tag = self.tags.get_mut(i)?;
        if *tag == at + 1 {
            self.hits += 1;
            return self.blocks.get(i);
        }
        self.misses += 1;
        let block = self.blocks.get_mut(i)?;
        if !memory::read(at, block) {
            *tag = 0;
            return None;
        }
        *tag = at + 1;
        Some(block)
    }

    /// Fills `buf` from `avma` through the cache; a block that cannot be read whole (at the
    /// end of a mapping) is read directly instead.
    fn read(&mut self, avma: u64, buf: &mut [u8]) -> bool {
        let mut done = 0;
        while done < buf.len() {
            let at = avma + done as u64;
            let start = at - at % BLOCK as u64;
            let off = (at - start) as usize;
            let n = (BLOCK - off).min(buf.len() - done);
            let Some(dst) = buf.get_mut(done..done + n) else {
                return false;
            };
            match self.block(start) {
                Some(block) => match block.get(off..off + n) {
                    Some(src) => dst.copy_from_slice(src),
                    None => return false,
                },
                None => {
                    if !memory::read(at, dst) {
                        return false;
                    }
                }
            }
            done += n;
        }
        true
    }

    /// The cache as an [`ImageReader`] for one walk.
    pub fn reader(&mut self) -> CachedImage<'_> {
        CachedImage(RefCell::new(self))
    }
}

/// Module memory read through an [`ImageCache`].
pub(crate) struct CachedImage<'a>(RefCell<&'a mut ImageCache>);

impl ImageReader for CachedImage<'_> {
    fn read(&self, avma: u64, buf: &mut [u8]) -> bool {
        match self.0.try_borrow_mut() {
            Ok(mut cache) => cache.read(avma, buf),
            Err(_) => memory::read(avma, buf),
        }
    }
}
