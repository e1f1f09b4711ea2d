//! `benches/alloc_sampled.rs`'s workload on `System` alone: the baseline its figures are
//! compared with.
#![allow(missing_docs)] // criterion_group! generates undocumented items

#[path = "alloc/churn.rs"]
mod churn;

use criterion::{criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("alloc_churn");
    g.sample_size(20);
    g.bench_function("system", |b| b.iter(|| churn::churn(4, 2000)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
