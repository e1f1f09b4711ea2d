//! Resolution throughput: parsing a symbol file (the cold cost per module) and looking frames
//! up in a parsed one (warm), over libc's symbols when its debug file is installed
//! (`libc6-dbg`), else over the test fixture.
//!
//! `cargo bench --features tools --bench resolve`
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vignette::tools::store::add_to_store;
use vignette::tools::SymbolFile;

fn symbol_text() -> (String, String) {
    let store = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-store");
    let libc = Path::new("/lib/x86_64-linux-gnu/libc.so.6");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/libcallback-debug.so");
    for (what, path) in [("libc.so.6", libc.to_path_buf()), ("fixture", fixture)] {
        if let Ok(sym) = add_to_store(&path, &store, &[PathBuf::from("/usr/lib/debug")]) {
            let text = std::fs::read_to_string(sym).unwrap();
            if text.lines().filter(|l| l.starts_with("FUNC ")).count() > 100 || what == "fixture" {
                return (what.to_string(), text);
            }
        }
    }
    panic!("no symbols to benchmark");
}

fn bench(c: &mut Criterion) {
    let (what, text) = symbol_text();
    let funcs: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("FUNC "))
        .filter_map(|l| u64::from_str_radix(l.split(' ').next()?, 16).ok())
        .collect();
    // Addresses inside functions, the way frames fall: a few bytes past each start.
    let addrs: Vec<u64> = funcs.iter().flat_map(|&f| [f, f + 3, f + 9]).collect();
    let mut g = c.benchmark_group(format!("resolve_{what}"));
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("parse_sym_cold", |b| {
        b.iter(|| SymbolFile::parse(black_box(&text), "bench").unwrap())
    });
    let sym = SymbolFile::parse(&text, "bench").unwrap();
    g.throughput(Throughput::Elements(addrs.len() as u64));
    g.bench_function("lookup_frames_warm", |b| {
        b.iter(|| {
            addrs
                .iter()
                .map(|&a| sym.lookup(black_box(a)).len())
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
