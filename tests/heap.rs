//! The heap sampler on a workload whose truth is known: three sites allocating bytes in the
//! ratio 1:2:7, one freeing half of what it allocated, one leaking all of it, one freeing all.
//! The profile's estimates per site must be within 10% of the truth, and the leak must rank
//! first by bytes in use.

mod common;

use std::alloc::System;
use std::hint::black_box;

use vignette::alloc::Sampled;
use vignette::Profile;

#[global_allocator]
static ALLOC: Sampled<System> = Sampled::new(System);

/// Sizes from 16 bytes to 32 KiB, from a fixed sequence.
struct Sizes(u64);

impl Sizes {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        16 + (self.0 % (32 * 1024)) as usize
    }
}

#[inline(never)]
fn alloc_half_freed(size: usize, keep: &mut Vec<Vec<u8>>, n: usize) {
    let v = black_box(vec![1u8; size]);
    if n.is_multiple_of(2) {
        keep.push(v);
    }
}

#[inline(never)]
fn alloc_leaked(size: usize, keep: &mut Vec<Vec<u8>>) {
    keep.push(black_box(vec![2u8; size]));
}

#[inline(never)]
fn alloc_freed(size: usize) {
    drop(black_box(vec![3u8; size]));
}

/// Bytes (allocated, still live) at each site, estimated.
fn site_bytes(p: &Profile, site: &str) -> (u64, u64) {
    let heap = p.heap.as_ref().expect("the profile has the heap");
    let mut sum = (0, 0);
    for s in &heap.sites {
        if common::stack_names(p, s.stack)
            .iter()
            .any(|n| n.contains(site))
        {
            sum.0 += s.alloc_bytes;
            sum.1 += s.inuse_bytes;
        }
    }
    sum
}

fn within(estimate: u64, truth: u64, what: &str) {
    let err = (estimate as f64 - truth as f64) / truth as f64;
    eprintln!(
        "{what}: estimated {estimate}, truth {truth} ({:+.2}%)",
        err * 100.0
    );
    assert!(
        err.abs() <= 0.10,
        "{what}: estimated {estimate}, truth {truth} ({:+.1}%)",
        err * 100.0
    );
}

#[test]
fn estimates_per_site_are_within_ten_percent_and_the_leak_ranks_first() {
    let _lock = common::profiler_lock();
    vignette::alloc::set_seed(0x5eed);
    let mut profiler = vignette::Profiler::builder()
        .sample_allocations(64 * 1024)
        .build()
        .unwrap();
    // The sampler thread keeps the modules and stack mappings the walks use.
    profiler.start().unwrap();
    let mut sizes = Sizes(0x1234_5678_9abc_def1);
    let (mut half, mut leak) = (Vec::new(), Vec::new());
    // Truth: bytes allocated at each site, and still live.
    let (mut t_half, mut t_leak, mut t_freed) = (0u64, 0u64, 0u64);
    let mut kept_half = 0u64;
    let total = 320u64 << 20;
    let mut n = 0usize;
    while t_half + t_leak + t_freed < total {
        // One unit to the half-freed site, two to the leak, seven to the freed one.
        let size = sizes.next();
        match n % 10 {
            0 => {
                if n.is_multiple_of(20) {
                    kept_half += size as u64;
                }
                alloc_half_freed(size, &mut half, n / 10);
                t_half += size as u64;
            }
            1 | 2 => {
                alloc_leaked(size, &mut leak);
                t_leak += size as u64;
            }
            _ => {
                alloc_freed(size);
                t_freed += size as u64;
            }
        }
        n += 1;
    }
    let p = profiler.stop().unwrap().to_profile();
    let heap = p.heap.as_ref().unwrap();
    assert_eq!(heap.mean_bytes, 64 * 1024);
    assert!(heap.samples > 4000, "{heap:?}");
    let (a_half, i_half) = site_bytes(&p, "alloc_half_freed");
    let (a_leak, i_leak) = site_bytes(&p, "alloc_leaked");
    let (a_freed, i_freed) = site_bytes(&p, "alloc_freed");
    within(a_half, t_half, "allocated, half-freed site");
    within(a_leak, t_leak, "allocated, leaking site");
    within(a_freed, t_freed, "allocated, freeing site");
    within(i_half, kept_half, "in use, half-freed site");
    within(i_leak, t_leak, "in use, leaking site");
    assert!(
        i_freed < t_freed / 100,
        "in use at the freeing site: {i_freed}"
    );
    // The leak ranks first by bytes in use.
    let top = heap.sites.iter().max_by_key(|s| s.inuse_bytes).unwrap();
    let names = common::stack_names(&p, top.stack);
    eprintln!(
        "{heap:?}\n{names:#?}",
        heap = (heap.samples, heap.sites.len(), heap.lost)
    );
    assert!(
        names.iter().any(|n| n.contains("alloc_leaked")),
        "{names:#?}"
    );
    // The allocator's own frames are left out: the innermost frame is the program's.
    assert!(
        !names[0].contains("vignette::alloc"),
        "innermost frame: {}",
        names[0]
    );
    black_box((&half, &leak));
    drop((half, leak));
}
