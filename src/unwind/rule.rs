//! A lock-free cache of compact unwind rules ([`Rule`], one per architecture) keyed by
//! address, so that steady-state sampling does not re-run CFA programs.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::Rule;
use crate::error::Result;
use crate::sys::mem::Region;

/// A direct-mapped cache from lookup address to [`Rule`], shared by all handlers.
///
/// Each entry is one `u64`: a 32-bit tag from a hash of the address and the packed rule, so a
/// concurrent writer can never produce a torn entry. The entry index is the hash's top `bits`
/// and the tag the 31 bits below them (its low bit is always set, so an empty entry matches
/// nothing): two addresses are confused only if their 64-bit multiplicative hashes agree in
/// their top `bits + 31` bits (45 for the sampler's 2^14 entries).
pub struct RuleCache {
    entries: Region<AtomicU64>,
    shift: u32,
}

impl RuleCache {
    /// A cache of `2^bits` entries (`bits` from 4 to 24).
    pub fn new(bits: u32) -> Result<Self> {
        let bits = bits.clamp(4, 24);
        Ok(RuleCache {
            entries: Region::new(1 << bits)?,
            shift: 64 - bits,
        })
    }

    fn slot(&self, avma: u64) -> (usize, u64) {
        let h = avma.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // shift >= 40 (bits <= 24): the tag's bits lie just below the index's.
        let tag = ((h >> (self.shift - 32)) as u32 | 1) as u64;
        ((h >> self.shift) as usize, tag)
    }

    /// The cached rule for `avma`.
    ///
    /// # Signal safety
    /// Async-signal-safe: one atomic load.
    pub fn get(&self, avma: u64) -> Option<Rule> {
        let (i, tag) = self.slot(avma);
        let v = self.entries.get(i)?.load(Relaxed);
        (v >> 32 == tag).then(|| Rule::unpack(v as u32))
    }

    /// Caches `rule` for `avma`.
    ///
    /// # Signal safety
    /// Async-signal-safe: one atomic store.
    pub fn insert(&self, avma: u64, rule: Rule) {
        let (i, tag) = self.slot(avma);
        if let Some(e) = self.entries.get(i) {
            e.store(tag << 32 | rule.pack() as u64, Relaxed);
        }
    }

    /// Empties the cache (when modules change, cached addresses may mean other code).
    pub fn clear(&self) {
        for e in self.entries.iter() {
            e.store(0, Relaxed);
        }
    }

    /// Bytes mapped for the cache.
    pub fn mapped_bytes(&self) -> usize {
        self.entries.mapped_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unwind::pack_rule;

    #[test]
    fn caches_rules_by_address() {
        // One rule of each kind, whatever the architecture calls them.
        let rules: std::vec::Vec<Rule> = [(1, 8, 0), (2, 0x7fff, 16), (3, 16, 16), (0, 0, 0)]
            .iter()
            .map(|&(k, a, b)| Rule::unpack(pack_rule(k, a, b)))
            .collect();
        let cache = RuleCache::new(8).unwrap();
        for (i, r) in rules.iter().enumerate() {
            cache.insert(0x5555_0000 + i as u64, *r);
        }
        for (i, r) in rules.iter().enumerate() {
            assert_eq!(cache.get(0x5555_0000 + i as u64), Some(*r));
        }
        assert_eq!(cache.get(0x1234), None);
        cache.clear();
        assert_eq!(cache.get(0x5555_0000), None);
    }
}
