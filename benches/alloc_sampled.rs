//! The heap sampler's cost on an allocation-heavy workload (4 threads of `Vec`, `HashMap`
//! and `String` churn, `alloc/churn.rs`): through `vignette::alloc::Sampled<System>` with
//! sampling off, with a profiler at 1 Hz not sampling allocations, and sampling them at
//! 512 KiB (the default) and 64 KiB. `benches/alloc_system.rs` runs
//! the same workload on `System` alone; BENCHMARKS.md compares them.
#![allow(missing_docs)] // criterion_group! generates undocumented items

#[path = "alloc/churn.rs"]
mod churn;

use std::alloc::System;

use criterion::{criterion_group, criterion_main, Criterion};
use vignette::alloc::Sampled;

#[global_allocator]
static ALLOC: Sampled<System> = Sampled::new(System);

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("alloc_churn");
    g.sample_size(20);
    g.bench_function("sampled_off", |b| b.iter(|| churn::churn(4, 2000)));
    // A profiler running (the heap sampler needs one), at the slowest CPU rate: what the heap
    // sampler adds is measured against it (the workload starts 4 threads per iteration,
    // which the profiler's sampler thread finds and arms).
    for mean in [0, 512 * 1024u64, 64 * 1024] {
        let mut builder = vignette::Profiler::builder().frequency(1);
        if mean > 0 {
            builder = builder.sample_allocations(mean);
        }
        let mut profiler = builder.build().unwrap();
        profiler.start().unwrap();
        let name = match mean {
            0 => "profiler_1hz".to_string(),
            m => format!("sampled_{}k", m / 1024),
        };
        g.bench_function(name, |b| b.iter(|| churn::churn(4, 2000)));
        let capture = profiler.stop().unwrap();
        let Some(heap) = capture.to_profile().heap else {
            continue;
        };
        eprintln!(
            "mean {mean}: {} samples, {} sites, {} bytes mapped by the profiler",
            heap.samples,
            heap.sites.len(),
            profiler.mapped_bytes()
        );
    }
    g.finish();
    // What one sample costs the allocating thread: every allocation sampled (a mean of one
    // byte) against none, one thread, a 64-byte allocation freed at once, 12 frames deep.
    let mut g = c.benchmark_group("alloc_one");
    for mean in [0, 1] {
        let mut builder = vignette::Profiler::builder().frequency(1);
        if mean > 0 {
            builder = builder.sample_allocations(mean);
        }
        let mut profiler = builder.build().unwrap();
        profiler.start().unwrap();
        let name = if mean > 0 {
            "every_one_sampled"
        } else {
            "none_sampled"
        };
        g.bench_function(name, |b| b.iter(|| deep(12)));
        drop(profiler);
    }
    g.finish();
}

/// A 64-byte allocation, freed at once, `depth` calls down.
#[inline(never)]
fn deep(depth: u32) -> usize {
    match depth {
        0 => std::hint::black_box(Vec::<u8>::with_capacity(64)).capacity(),
        d => std::hint::black_box(deep(d - 1)) + 1,
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
