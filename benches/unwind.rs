//! Unwinding cost per frame over real stacks captured from this process: frame pointers, CFI
//! without and with the rule cache, and framehop (the reference) on the same stacks.
//!
//! `RUSTFLAGS="-C force-frame-pointers=yes" cargo bench --bench unwind` (with frame pointers,
//! so that all four walkers can unwind the same stacks; without them the frame-pointer case
//! is skipped).
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{ExplicitModuleSectionInfo, Module, Unwinder as _};
use vignette::code_map::CodeMap;
use vignette::modules::ModuleMap;
use vignette::stacks::StackRanges;
use vignette::unwind::cfi::eh_frame_hdr::EhFrameHdr;
use vignette::unwind::cfi::Section;
use vignette::unwind::{fp, walk, Regs, RuleCache, SliceStack};

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

/// framehop's unwinder over every module loaded in this process.
fn framehop_unwinder() -> UnwinderX86_64<&'static [u8]> {
    let mut unwinder = UnwinderX86_64::new();
    let mut add = |info: &libc::dl_phdr_info| {
        // SAFETY: the loader passes dlpi_phnum valid headers.
        let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
        let bias = info.dlpi_addr;
        let loads: Vec<_> = phdrs.iter().filter(|p| p.p_type == libc::PT_LOAD).collect();
        let (Some(lo), Some(hi)) = (
            loads.iter().map(|p| p.p_vaddr).min(),
            loads.iter().map(|p| p.p_vaddr + p.p_memsz).max(),
        ) else {
            return;
        };
        let Some(hdr) = phdrs.iter().find(|p| p.p_type == libc::PT_GNU_EH_FRAME) else {
            return;
        };
        let segment_end = |svma: u64| {
            loads
                .iter()
                .find(|l| l.p_vaddr <= svma && svma < l.p_vaddr + l.p_filesz)
                .map(|l| l.p_vaddr + l.p_filesz)
        };
        // SAFETY: the segments are mapped for as long as the module stays loaded (all run).
        let bytes = |svma: u64, end: u64| unsafe {
            std::slice::from_raw_parts((bias + svma) as *const u8, (end - svma) as usize)
        };
        let hdr_range = hdr.p_vaddr..hdr.p_vaddr + hdr.p_memsz;
        let hdr_bytes = bytes(hdr_range.start, hdr_range.end);
        let Ok(parsed) = EhFrameHdr::parse(Section {
            data: hdr_bytes,
            avma: bias + hdr.p_vaddr,
        }) else {
            return;
        };
        let eh_svma = parsed.eh_frame_avma - bias;
        let Some(eh_end) = segment_end(eh_svma) else {
            return;
        };
        let text = loads.iter().find(|l| l.p_flags & libc::PF_X != 0);
        let info = ExplicitModuleSectionInfo {
            base_svma: 0,
            text_svma: text.map(|t| t.p_vaddr..t.p_vaddr + t.p_filesz),
            text: text.map(|t| bytes(t.p_vaddr, t.p_vaddr + t.p_filesz)),
            eh_frame_hdr_svma: Some(hdr_range),
            eh_frame_hdr: Some(hdr_bytes),
            eh_frame_svma: Some(eh_svma..eh_end),
            eh_frame: Some(bytes(eh_svma, eh_end)),
            ..Default::default()
        };
        unwinder.add_module(Module::new(String::new(), bias + lo..bias + hi, bias, info));
    };
    let mut add: &mut dyn FnMut(&libc::dl_phdr_info) = &mut add;
    extern "C" fn callback(
        info: *mut libc::dl_phdr_info,
        _: usize,
        data: *mut std::ffi::c_void,
    ) -> i32 {
        // SAFETY: data is the closure reference passed below; info is the loader's.
        unsafe { (*(data as *mut &mut dyn FnMut(&libc::dl_phdr_info)))(&*info) };
        0
    }
    // SAFETY: the callback only uses its arguments as documented.
    unsafe {
        libc::dl_iterate_phdr(
            Some(callback),
            (&mut add) as *mut _ as *mut std::ffi::c_void,
        )
    };
    unwinder
}

fn bench_unwind(c: &mut Criterion) {
    let ranges = StackRanges::new(8192).unwrap();
    assert!(ranges.refresh());
    let code = CodeMap::new(512).unwrap();
    let mut modules = ModuleMap::new(512, 65536).unwrap();
    code.refresh(&mut modules, true);
    code.compile_all();
    let hop = framehop_unwinder();
    let mut group = c.benchmark_group("unwind");
    for depth in [8usize, 30, 100] {
        let s = capture_at_depth(depth, &ranges);
        let mut frames = vec![0u64; 512];
        let mut stack = SliceStack {
            base: s.base,
            bytes: &s.bytes,
        };
        let (n, end) = code
            .read(|t| walk(&s.regs, &mut stack, t, None, &mut frames))
            .unwrap();
        assert!(
            n > depth,
            "CFI walked {n} frames ({end:?}) for depth {depth}"
        );
        // framehop must agree with us on the same stack.
        let hop_stack = stack;
        let mut read = move |addr: u64| hop_stack.read(addr).ok_or(());
        let mut hop_cache = CacheX86_64::new();
        let regs = UnwindRegsX86_64::new(s.regs.ip(), s.regs.sp(), s.regs.fp());
        let mut it = hop.iter_frames(s.regs.ip(), regs, &mut hop_cache, &mut read);
        let mut hop_frames = Vec::new();
        while let Ok(Some(f)) = it.next() {
            hop_frames.push(f.address_for_lookup());
        }
        assert_eq!(
            hop_frames[..],
            frames[..n],
            "framehop and vignette disagree"
        );
        group.throughput(Throughput::Elements(n as u64));
        let id = |name: &str| BenchmarkId::new(name, n);

        let (fp_n, _) = fp::walk(&s.regs, &stack, &mut frames);
        if fp_n >= n {
            group.bench_function(id("frame_pointers"), |b| {
                b.iter(|| fp::walk(black_box(&s.regs), &stack, &mut frames))
            });
        } else {
            eprintln!(
                "no frame pointers in this build: frame-pointer case skipped (see the file's docs)"
            );
        }
        group.bench_function(id("cfi_no_cache"), |b| {
            b.iter(|| code.read(|t| walk(black_box(&s.regs), &mut stack, t, None, &mut frames)))
        });
        let cache = RuleCache::new(14).unwrap();
        group.bench_function(id("cfi_cached"), |b| {
            b.iter(|| {
                code.read(|t| walk(black_box(&s.regs), &mut stack, t, Some(&cache), &mut frames))
            })
        });
        group.bench_function(id("framehop_cached"), |b| {
            b.iter(|| {
                let regs = UnwindRegsX86_64::new(s.regs.ip(), s.regs.sp(), s.regs.fp());
                let mut it = hop.iter_frames(s.regs.ip(), regs, &mut hop_cache, &mut read);
                let mut k = 0;
                while let Ok(Some(f)) = it.next() {
                    frames[k % 512] = f.address();
                    k += 1;
                }
                k
            })
        });
    }
    group.finish();
}

/// What a module load costs the sampler thread: listing every module of this process and
/// copying its unwind sections into vignette's memory (a fresh code map each time, so every
/// module is copied; a library loaded later costs its own share of this).
fn bench_module_load(c: &mut Criterion) {
    let mut modules = ModuleMap::new(512, 65536).unwrap();
    let probe = CodeMap::new(512).unwrap();
    probe.refresh(&mut modules, true);
    let bytes = probe.copied_bytes();
    eprintln!(
        "{} modules, {} KiB of unwind sections copied",
        modules.len(),
        bytes / 1024
    );
    let mut group = c.benchmark_group("module_load");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("copy_all_unwind_sections", |b| {
        b.iter(|| {
            let code = CodeMap::new(512).unwrap();
            modules.clear();
            black_box(code.refresh(&mut modules, true))
        })
    });
    group.bench_function("copy_and_compile_all", |b| {
        b.iter(|| {
            let code = CodeMap::new(512).unwrap();
            modules.clear();
            code.refresh(&mut modules, true);
            black_box(code.compile_all())
        })
    });
    group.finish();
}

criterion_group!(benches, bench_unwind, bench_module_load);
criterion_main!(benches);
