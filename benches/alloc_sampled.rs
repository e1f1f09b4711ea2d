//! The heap sampler's cost on an allocation-heavy workload (4 threads of `Vec`, `HashMap`
//! and `String` churn, `alloc/churn.rs`): through `vignette::alloc::Sampled<System>` with
//! sampling off, and on at 512 KiB (the default) and 64 KiB. `benches/alloc_system.rs` runs
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
    for mean in [512 * 1024u64, 64 * 1024] {
        let mut profiler = vignette::Profiler::builder()
            .sample_allocations(mean)
            // The heap alone: CPU samples at the slowest rate.
            .frequency(1)
            .build()
            .unwrap();
        profiler.start().unwrap();
        g.bench_function(format!("sampled_{}k", mean / 1024), |b| {
            b.iter(|| churn::churn(4, 2000))
        });
        let capture = profiler.stop().unwrap();
        let p = capture.to_profile();
        let heap = p.heap.unwrap();
        eprintln!(
            "mean {mean}: {} samples, {} sites, {} bytes mapped by the profiler",
            heap.samples,
            heap.sites.len(),
            profiler.mapped_bytes()
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
