//! The CFI unwinder against ground truth: at the same point in the same call chain, the
//! return addresses it finds equal those libgcc's unwinder finds (through the `backtrace`
//! crate), frame for frame. Chains run through Rust without frame pointers, C built with
//! `-O2 -fomit-frame-pointer` calling back into Rust, and libc's `qsort` calling a Rust
//! comparator.
//!
//! x86_64 only for now: the register capture is x86_64 assembly and the C is built with the
//! host's `gcc`; the aarch64 unwinder is checked by its unit tests and by the demo under qemu
//! (`scripts/check-aarch64`).
#![cfg(target_arch = "x86_64")]

mod common;

use std::cell::RefCell;
use std::ffi::c_void;

use vignette::code_map::CodeMap;
use vignette::stacks::StackRanges;
use vignette::unwind::{walk, EndReason, Regs, RuleCache, SliceStack};

/// Registers and a copy of the stack at one point, and libgcc's return addresses there.
struct Captured {
    regs: Regs,
    base: u64,
    bytes: Vec<u8>,
    truth: Vec<u64>,
}

thread_local! {
    static CAPTURED: RefCell<Option<Captured>> = const { RefCell::new(None) };
}

#[inline(never)]
fn capture_here() -> u64 {
    let mut r = [0u64; 17];
    // SAFETY: copies registers into locals; no memory or stack effects.
    unsafe {
        std::arch::asm!(
            "lea {ip}, [rip]",
            "mov {sp}, rsp",
            "mov {bp}, rbp",
            "mov {bx}, rbx",
            "mov {r12}, r12",
            "mov {r13}, r13",
            "mov {r14}, r14",
            "mov {r15}, r15",
            ip = out(reg) r[16],
            sp = out(reg) r[7],
            bp = out(reg) r[6],
            bx = out(reg) r[3],
            r12 = out(reg) r[12],
            r13 = out(reg) r[13],
            r14 = out(reg) r[14],
            r15 = out(reg) r[15],
            options(nomem, nostack, preserves_flags),
        );
    }
    let regs = Regs::from_array(r);
    let ranges = StackRanges::new(8192).unwrap();
    assert!(ranges.refresh());
    let end = ranges.end_of_mapping(regs.sp()).unwrap();
    // SAFETY: [sp, end) is this thread's live stack.
    let bytes =
        unsafe { std::slice::from_raw_parts(regs.sp() as *const u8, (end - regs.sp()) as usize) }
            .to_vec();
    let mut all = Vec::new();
    // SAFETY: single-threaded use of the unsynchronized tracer on this thread.
    unsafe {
        backtrace::trace_unsynchronized(|f| {
            all.push((f.ip() as u64, f.symbol_address() as u64));
            true
        })
    };
    let me = capture_here as *const () as u64;
    let at = all
        .iter()
        .position(|&(_, sym)| sym == me)
        .expect("capture_here is on the stack");
    let truth = all[at + 1..]
        .iter()
        .map(|&(ip, _)| ip)
        .take_while(|&ip| ip != 0)
        .collect();
    CAPTURED.with(|c| {
        *c.borrow_mut() = Some(Captured {
            regs,
            base: regs.sp(),
            bytes,
            truth,
        })
    });
    std::hint::black_box(me)
}

fn take() -> Captured {
    CAPTURED.with(|c| c.borrow_mut().take()).expect("captured")
}

/// Unwinds a capture with vignette's walker over the stack copy; returns return addresses.
fn unwind(c: &Captured, map: &CodeMap, cache: Option<&RuleCache>) -> (Vec<u64>, EndReason) {
    let mut stack = SliceStack {
        base: c.base,
        bytes: &c.bytes,
    };
    let mut frames = [0u64; 256];
    let (n, end) = map
        .read(|code| walk(&c.regs, &mut stack, code, cache, &mut frames))
        .unwrap();
    (frames[1..n].iter().map(|a| a + 1).collect(), end)
}

fn check(c: &Captured, chain: &[&str]) {
    let map = CodeMap::new(512).unwrap();
    map.refresh(
        &mut vignette::modules::ModuleMap::new(512, 65536).unwrap(),
        true,
    );
    let names: Vec<String> = c
        .truth
        .iter()
        .map(|&a| common::names_at(a - 1).join("|"))
        .collect();
    assert!(
        common::has_chain(&names, chain),
        "ground truth lacks {chain:?}: {names:#?}"
    );
    let cache = RuleCache::new(10).unwrap();
    for cache in [None, Some(&cache), Some(&cache)] {
        let (ours, end) = unwind(c, &map, cache);
        assert_eq!(ours, c.truth, "frame for frame; truth names: {names:#?}");
        assert_eq!(end, EndReason::Root);
    }
}

#[inline(never)]
fn rust_c(x: u64) -> u64 {
    capture_here().wrapping_add(std::hint::black_box(x))
}
#[inline(never)]
fn rust_b(x: u64) -> u64 {
    rust_c(x ^ 0x55).wrapping_mul(3)
}
#[inline(never)]
fn rust_a(x: u64) -> u64 {
    rust_b(x + 1).rotate_left(3)
}

#[test]
fn rust_without_frame_pointers() {
    std::hint::black_box(rust_a(7));
    check(
        &take(),
        &["rust_c", "rust_b", "rust_a", "rust_without_frame_pointers"],
    );
}

extern "C" fn rust_callback(x: i32) -> i32 {
    capture_here() as i32 ^ x
}

/// Builds tests/fixtures/callback.c into a shared library with extra linker `flags`, loads it
/// (never unloaded) and returns the library handle.
fn build_callback_library(name: &str, flags: &[&str]) -> *mut c_void {
    let dir = env!("CARGO_TARGET_TMPDIR");
    let lib = format!("{dir}/{name}");
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/callback.c");
    let out = std::process::Command::new("gcc")
        .args([
            "-O2",
            "-g",
            "-fomit-frame-pointer",
            "-shared",
            "-fPIC",
            "-o",
            &lib,
            src,
        ])
        .args(flags)
        .output()
        .expect("gcc runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lib = std::ffi::CString::new(lib).unwrap();
    // SAFETY: loads the library just built.
    let h = unsafe { libc::dlopen(lib.as_ptr(), libc::RTLD_NOW) };
    assert!(!h.is_null());
    h
}

/// The address of `name` in library `h`.
fn symbol(h: *mut c_void, name: &std::ffi::CStr) -> *mut c_void {
    // SAFETY: h is a live library handle and name a C string.
    let f = unsafe { libc::dlsym(h, name.as_ptr()) };
    assert!(!f.is_null());
    f
}

/// How many of `addrs` (return addresses) lie in the library file `name`.
fn frames_in(addrs: &[u64], name: &str) -> usize {
    addrs
        .iter()
        .filter(|&&a| {
            // SAFETY: dladdr only writes the info struct; dli_fname is a C string when it
            // succeeds.
            unsafe {
                let mut info: libc::Dl_info = std::mem::zeroed();
                libc::dladdr((a - 1) as *const c_void, &mut info) != 0
                    && std::ffi::CStr::from_ptr(info.dli_fname)
                        .to_bytes()
                        .ends_with(name.as_bytes())
            }
        })
        .count()
}

#[test]
fn c_without_frame_pointers_calling_back_into_rust() {
    type COuter = extern "C" fn(extern "C" fn(i32) -> i32, i32) -> i32;
    let call = |h| {
        // SAFETY: c_outer has this signature (tests/fixtures/callback.c).
        let c_outer: COuter = unsafe { std::mem::transmute(symbol(h, c"c_outer")) };
        std::hint::black_box(c_outer(rust_callback, 3));
        take()
    };
    // With .eh_frame_hdr: the FDE is found by binary search; libgcc agrees frame for frame.
    let c = call(build_callback_library("libcallback.so", &[]));
    // c_inner and c_outer are both on the stack, inside the library. (Checked with dladdr:
    // the backtrace crate may have cached the module list before the library was loaded.)
    assert_eq!(
        frames_in(&c.truth, "libcallback.so"),
        2,
        "c_inner and c_outer"
    );
    check(&c, &["rust_callback", "c_without_frame_pointers"]);

    // Without .eh_frame_hdr libgcc cannot unwind the library at all; vignette finds .eh_frame
    // through the file's section headers and scans it. Beyond the library, its frames must be
    // the same as libgcc's were through the library with a header (same call site).
    let nohdr = call(build_callback_library(
        "libcallback-nohdr.so",
        &["-Wl,--no-eh-frame-hdr"],
    ));
    let map = CodeMap::new(512).unwrap();
    map.refresh(
        &mut vignette::modules::ModuleMap::new(512, 65536).unwrap(),
        true,
    );
    let (ours, end) = unwind(&nohdr, &map, None);
    assert_eq!(end, EndReason::Root);
    assert_eq!(
        frames_in(&ours, "libcallback-nohdr.so"),
        2,
        "c_inner and c_outer"
    );
    let after_lib = |frames: &[u64], lib: &str| -> Vec<u64> {
        let last = frames
            .iter()
            .rposition(|&a| frames_in(&[a], lib) == 1)
            .unwrap();
        frames[last + 1..].to_vec()
    };
    let (ours, truth) = (
        after_lib(&ours, "libcallback-nohdr.so"),
        after_lib(&c.truth, "libcallback.so"),
    );
    // The same frames, but for the two places this test calls `call` from.
    assert_eq!(ours.len(), truth.len());
    assert_eq!(ours[0], truth[0], "return into `call`");
    assert_eq!(ours[2..], truth[2..], "the test's callers");
}

#[inline(never)]
fn spin_in_c(c_spin: extern "C" fn(i64) -> i64, millis: u64) -> i64 {
    let t0 = std::time::Instant::now();
    let mut acc = 0;
    while t0.elapsed() < std::time::Duration::from_millis(millis) {
        acc = c_spin(2000).wrapping_add(acc);
    }
    acc
}

#[test]
fn samples_on_every_instruction_of_prologues_and_epilogues() {
    let _g = common::profiler_lock();
    let h = build_callback_library("libcallback-spin.so", &[]);
    // SAFETY: c_spin has this signature (tests/fixtures/callback.c).
    let c_spin: extern "C" fn(i64) -> i64 = unsafe { std::mem::transmute(symbol(h, c"c_spin")) };
    let c_work = symbol(h, c"c_work") as u64;
    let mut profiler = vignette::Profiler::builder()
        .frequency(4000)
        .build()
        .unwrap();
    profiler.start().unwrap();
    let t = std::thread::Builder::new()
        .name("c-spinner".into())
        .spawn(move || spin_in_c(c_spin, 700))
        .unwrap();
    std::hint::black_box(t.join().unwrap());
    let p = profiler.stop().unwrap().to_profile();
    let t = p.threads.iter().find(|t| t.name == "c-spinner").unwrap();
    let mut leaf_offsets = std::collections::BTreeSet::new();
    let mut complete = 0;
    for s in &t.samples {
        let frames: Vec<u64> = p
            .stack_frames(s.stack)
            .map(|f| common::frame_avma(&p, f))
            .collect();
        if frames[0] >= c_work && frames[0] < c_work + 0x80 {
            leaf_offsets.insert(frames[0] - c_work);
        }
        let names = common::stack_names(&p, s.stack);
        if s.end == EndReason::Root && common::has_chain(&names, &["spin_in_c", "thread_start"]) {
            complete += 1;
        }
    }
    eprintln!(
        "{complete}/{} complete; samples landed on {} distinct instructions of c_work",
        t.samples.len(),
        leaf_offsets.len()
    );
    assert!(
        leaf_offsets.len() >= 10,
        "samples spread over c_work: {leaf_offsets:?}"
    );
    assert!(
        complete * 100 >= t.samples.len() * 99,
        "{complete}/{} complete",
        t.samples.len()
    );
}

extern "C" fn compare(a: *const c_void, b: *const c_void) -> i32 {
    if CAPTURED.with(|c| c.borrow().is_none()) {
        capture_here();
    }
    // SAFETY: qsort passes pointers to two elements of the u32 array.
    let (a, b) = unsafe { (*(a as *const u32), *(b as *const u32)) };
    a.cmp(&b) as i32
}

#[test]
fn libc_qsort_calling_a_rust_comparator() {
    let mut v: Vec<u32> = (0..64).rev().collect();
    // SAFETY: sorts v's 64 u32s with a comparator of the right signature.
    unsafe { libc::qsort(v.as_mut_ptr().cast(), v.len(), 4, Some(compare)) };
    assert!(v.windows(2).all(|w| w[0] <= w[1]));
    check(&take(), &["compare", "qsort", "libc_qsort_calling"]);
}

#[test]
fn corrupted_stacks_end_the_walk_not_the_process() {
    std::hint::black_box(rust_a(9));
    let c = take();
    let map = CodeMap::new(512).unwrap();
    map.refresh(
        &mut vignette::modules::ModuleMap::new(512, 65536).unwrap(),
        true,
    );
    let cache = RuleCache::new(10).unwrap();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let words = c.bytes.len() / 8;
    let mut ends = std::collections::HashMap::new();
    for _ in 0..3000 {
        let mut bad = Captured {
            regs: c.regs,
            base: c.base,
            bytes: c.bytes.clone(),
            truth: Vec::new(),
        };
        for _ in 0..1 + rand() % 8 {
            // Mostly near the top of the stack, where the frames are.
            let w = (rand() as usize % words.min(512)) * 8;
            let v = match rand() % 4 {
                0 => rand(),
                1 => c.base + rand() % (c.bytes.len() as u64 + 64),
                2 => 0,
                _ => c.regs.ip() + rand() % 4096 - 2048,
            };
            bad.bytes[w..w + 8].copy_from_slice(&v.to_le_bytes());
        }
        let (frames, end) = unwind(&bad, &map, Some(&cache));
        assert!(frames.len() < 256);
        *ends.entry(end).or_insert(0) += 1;
    }
    eprintln!("how corrupted walks ended: {ends:?}");
    assert!(ends.len() >= 2, "corruption changes outcomes: {ends:?}");
}
