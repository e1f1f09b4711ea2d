//! Frame-pointer unwinding cost per frame, over real stacks captured from this process.
//!
//! `cargo bench --bench unwind`

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vignette::stacks::StackRanges;
use vignette::unwind::{fp, Regs, SliceStack};

/// A copy of the live stack at a point `depth` calls deep, with the registers to unwind it.
struct CapturedStack {
    regs: Regs,
    base: u64,
    bytes: Vec<u8>,
}

#[inline(never)]
fn capture_at_depth(depth: usize, ranges: &StackRanges) -> CapturedStack {
    if depth > 0 {
        return black_box(capture_at_depth(depth - 1, ranges));
    }
    let (ip, sp, bp): (u64, u64, u64);
    // SAFETY: reads rip, rsp and rbp into registers; no memory or stack effects.
    unsafe {
        std::arch::asm!(
            "lea {ip}, [rip]",
            "mov {sp}, rsp",
            "mov {bp}, rbp",
            ip = out(reg) ip,
            sp = out(reg) sp,
            bp = out(reg) bp,
            options(nomem, nostack, preserves_flags),
        );
    }
    let end = ranges.end_of_mapping(sp).expect("the stack is mapped");
    let len = (end - sp).min(1 << 20) as usize;
    // SAFETY: [sp, sp + len) lies inside this thread's live stack mapping.
    let bytes = unsafe { std::slice::from_raw_parts(sp as *const u8, len) }.to_vec();
    CapturedStack {
        regs: Regs::new(ip, sp, bp),
        base: sp,
        bytes,
    }
}

fn bench_fp(c: &mut Criterion) {
    let ranges = StackRanges::new(8192).unwrap();
    assert!(ranges.refresh());
    let mut group = c.benchmark_group("fp_walk");
    for depth in [8usize, 30, 100] {
        let stack = capture_at_depth(depth, &ranges);
        let reader = SliceStack {
            base: stack.base,
            bytes: &stack.bytes,
        };
        let mut frames = vec![0u64; 256];
        let (n, end) = fp::walk(&stack.regs, &reader, &mut frames);
        assert!(n > depth, "walked {n} frames ({end:?}) for depth {depth}");
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("frames", n), &stack, |b, s| {
            b.iter(|| fp::walk(black_box(&s.regs), &reader, &mut frames))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_fp);
criterion_main!(benches);
