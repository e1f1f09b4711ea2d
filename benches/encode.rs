//! Encoding: the size of a steady workload's profile per sample, encode and decode throughput,
//! and the same profile's size as Speedscope JSON and gzipped pprof (symbolized from the
//! binaries on this machine), with the time the tools take to convert it. (pprof aggregates
//! equal stacks and keeps no per-sample times, so it is smaller than a timeline of samples.)
//!
//! The bench profiles the demo's workload (4 threads, 1000 Hz, 3 s) itself, then measures.
//! `cargo bench --bench encode`
#![allow(missing_docs)] // criterion_group! generates undocumented items

#[path = "../examples/common/workload.rs"]
mod workload;

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vignette::tools::{self, store::add_to_store, SymbolStore};
use vignette::{Profile, Profiler};

/// Symbols for every module of `p` whose file is on this machine, in a fresh store.
fn symbols_for(p: &Profile) -> SymbolStore {
    let store = Path::new(env!("CARGO_TARGET_TMPDIR")).join("encode-bench-store");
    for m in &p.modules {
        let exe_dir = std::env::current_exe().unwrap().with_file_name("");
        let Ok(path) = tools::store::local_file_of(m, &[exe_dir]) else {
            continue;
        };
        let _ = add_to_store(&path, &store, &[PathBuf::from("/usr/lib/debug")]);
    }
    SymbolStore::new(&[store])
}

fn bench(c: &mut Criterion) {
    let mut profiler = Profiler::builder().frequency(1000).build().unwrap();
    profiler.start().unwrap();
    workload::run_for(4, 3000);
    let capture = profiler.stop().unwrap();
    let bytes = capture.to_vec();
    let samples = capture.sample_count();
    let profile = Profile::decode(&bytes).unwrap();
    let res = tools::resolve(&profile, &mut symbols_for(&profile)).unwrap();
    let speedscope = serde_json::to_vec(&tools::speedscope::to_speedscope(&profile, &res, "bench"))
        .unwrap()
        .len();
    let pprof = tools::pprof::to_pprof(&profile, Some(&res)).len();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &bytes).unwrap();
    let gzipped = gz.finish().unwrap().len();
    let sample_stream: usize = profile
        .threads
        .iter()
        .map(|t| {
            let one = Profile {
                threads: vec![t.clone()],
                ..profile.clone()
            };
            let none = Profile {
                threads: vec![vignette::Thread {
                    samples: vec![],
                    ..t.clone()
                }],
                ..profile.clone()
            };
            one.encode().len() - none.encode().len()
        })
        .sum();
    println!(
        "profile: {samples} samples, {} modules, {} frames, {} stack nodes: {} bytes = {:.2} bytes/sample \
         (the sample streams alone {:.2}; gzipped {:.2}); Speedscope JSON {} bytes ({:.0}x), pprof.gz {} bytes ({:.1}x)",
        profile.modules.len(),
        profile.frames.len(),
        profile.stacks.len(),
        bytes.len(),
        bytes.len() as f64 / samples as f64,
        sample_stream as f64 / samples as f64,
        gzipped as f64 / samples as f64,
        speedscope,
        speedscope as f64 / bytes.len() as f64,
        pprof,
        pprof as f64 / bytes.len() as f64,
    );

    let mut g = c.benchmark_group("profile");
    g.throughput(Throughput::Elements(samples as u64));
    let mut buf = vec![0u8; bytes.len()];
    g.bench_function("encode", |b| {
        b.iter(|| capture.encode_into(black_box(&mut buf)).unwrap())
    });
    g.bench_function("decode", |b| {
        b.iter(|| Profile::decode(black_box(&bytes)).unwrap())
    });
    g.bench_function("to_speedscope", |b| {
        b.iter(|| {
            serde_json::to_vec(&tools::speedscope::to_speedscope(&profile, &res, "bench")).unwrap()
        })
    });
    g.bench_function("to_pprof", |b| {
        b.iter(|| tools::pprof::to_pprof(black_box(&profile), Some(&res)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
