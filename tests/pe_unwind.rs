//! vignette's x64 `.pdata` unwinder against Windows' own `RtlVirtualUnwind`, frame for frame.
//!
//! `tests/windows/unwind_dump.c`, built with mingw and run under wine, samples a worker thread
//! the way vignette's Windows sampler does (suspend, read the registers, copy the stack) and
//! records the reference walk `RtlVirtualUnwind` makes while the thread is still suspended,
//! plus the image of every loaded module (the program, ntdll, kernel32, kernelbase, msvcrt).
//! Here each sample is unwound again by `vignette::unwind::pe` over the copies alone, as the
//! sampler unwinds after resuming the thread, and the two walks must agree.
//!
//! Needs `x86_64-w64-mingw32-gcc` and `wine` (`.ci/run` installs both).
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

use std::path::PathBuf;
use std::process::Command;

use vignette::modules::pe::identity;
use vignette::unwind::pe::{walk, FunctionTable, ImageReader, SliceImage, TableLookup};
use vignette::unwind::{EndReason, Regs, SliceStack};

struct Module {
    base: u64,
    name: String,
    image: Vec<u8>,
    pdata: (usize, usize),
}

struct Sample {
    regs: Regs,
    stack: Vec<u8>,
    reference: Vec<u64>,
}

struct Dump {
    modules: Vec<Module>,
    samples: Vec<Sample>,
}

struct Images<'a>(&'a [Module]);

impl Images<'_> {
    fn module(&self, avma: u64) -> Option<&Module> {
        self.0
            .iter()
            .find(|m| m.base <= avma && avma < m.base + m.image.len() as u64)
    }

    fn name(&self, avma: u64) -> String {
        match self.module(avma) {
            Some(m) => format!("{}+{:#x}", m.name, avma - m.base),
            None => format!("{avma:#x}"),
        }
    }
}

impl ImageReader for Images<'_> {
    fn read(&self, avma: u64, buf: &mut [u8]) -> bool {
        self.module(avma).is_some_and(|m| {
            SliceImage {
                base: m.base,
                bytes: &m.image,
            }
            .read(avma, buf)
        })
    }
}

impl TableLookup for Images<'_> {
    fn table(&self, avma: u64) -> Option<FunctionTable<'_>> {
        let m = self.module(avma)?;
        Some(FunctionTable {
            base: m.base,
            pdata: &m.image[m.pdata.0..m.pdata.0 + m.pdata.1],
        })
    }
}

/// Builds and runs the dumper under wine: `samples` samples into target/tmp.
fn dump(samples: usize) -> Dump {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pe_unwind");
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("unwind_dump.exe");
    let out = dir.join("dump.bin");
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/windows/unwind_dump.c");
    let status = Command::new("x86_64-w64-mingw32-gcc")
        .args(["-O2", "-g", "-o"])
        .arg(&exe)
        .arg(src)
        .arg("-lpsapi")
        .status()
        .expect("x86_64-w64-mingw32-gcc (Debian package mingw-w64) is needed for this test");
    assert!(status.success());
    let status = Command::new("wine")
        .arg(&exe)
        .arg(&out)
        .arg(samples.to_string())
        .env("WINEDEBUG", "-all")
        .status()
        .expect("wine (Debian package wine) is needed for this test");
    assert!(status.success(), "the dumper failed under wine: {status}");
    parse(&std::fs::read(&out).unwrap())
}

fn parse(d: &[u8]) -> Dump {
    let mut o = 0usize;
    let mut take = |n: usize| {
        let s = &d[o..o + n];
        o += n;
        s
    };
    let u64_of = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap());
    assert_eq!(take(4), b"VMOD");
    let count = u64_of(take(8));
    let mut modules = Vec::new();
    for _ in 0..count {
        let base = u64_of(take(8));
        let size = u64_of(take(8)) as usize;
        let len = u64_of(take(8)) as usize;
        let name = String::from_utf8_lossy(take(len)).into_owned();
        let image = take(size.div_ceil(4096) * 4096).to_vec();
        let id = identity(
            &SliceImage {
                base,
                bytes: &image,
            },
            base,
        )
        .unwrap_or_else(|| panic!("{name} is a PE image"));
        assert_eq!(id.machine, 0x8664, "{name}");
        assert_eq!(id.size_of_image as usize, size, "{name}");
        let pdata = (id.exception.0 as usize, id.exception.1 as usize);
        modules.push(Module {
            base,
            name,
            image,
            pdata,
        });
    }
    assert_eq!(take(4), b"VSMP");
    let count = u64_of(take(8));
    let mut samples = Vec::new();
    // Windows' register order in the dump, as DWARF numbers.
    const DWARF: [u16; 16] = [0, 2, 1, 3, 7, 6, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15];
    for _ in 0..count {
        let mut regs = Regs::default();
        for dw in DWARF {
            regs.set(dw, u64_of(take(8)));
        }
        regs.set(Regs::IP, u64_of(take(8)));
        let len = u64_of(take(8)) as usize;
        let stack = take(len).to_vec();
        let n = u64_of(take(8)) as usize;
        let reference = take(n * 8).chunks(8).map(u64_of).collect();
        samples.push(Sample {
            regs,
            stack,
            reference,
        });
    }
    Dump { modules, samples }
}

#[test]
fn walks_equal_rtl_virtual_unwind_frame_for_frame() {
    let dump = dump(1000);
    let images = Images(&dump.modules);
    let names: Vec<&str> = dump.modules.iter().map(|m| m.name.as_str()).collect();
    for want in ["ntdll.dll", "kernel32.dll", "msvcrt.dll"] {
        assert!(
            names.iter().any(|n| n.eq_ignore_ascii_case(want)),
            "{names:?}"
        );
    }
    let (mut rooted, mut lost_by_both) = (0, 0);
    let mut places = std::collections::BTreeSet::new();
    let mut depths = std::collections::BTreeMap::new();
    for (i, s) in dump.samples.iter().enumerate() {
        let mut stack = SliceStack {
            base: s.regs.sp(),
            bytes: &s.stack,
        };
        let mut frames = [0u64; 64];
        let (n, end) = walk(&s.regs, &mut stack, &images, &images, &mut frames);
        // vignette's convention: frames after the first are return addresses minus one.
        let mut expected: Vec<u64> = s
            .reference
            .iter()
            .enumerate()
            .map(|(k, &a)| if k == 0 { a } else { a - 1 })
            .collect();
        // Where RtlVirtualUnwind reads a "return address" outside every module (code without
        // unwind info had pushed registers: mingw's ___chkstk_ms), it goes on through garbage;
        // vignette must stop there, unrecorded. A sampled pc outside every module (wine's
        // Unix-side syscall code, which wine's RtlVirtualUnwind unwinds from its own tables) is
        // recorded, and the walk ends after it.
        let garbage = expected
            .iter()
            .skip(1)
            .position(|&a| images.module(a).is_none())
            .map(|k| k + 1)
            .or_else(|| images.module(s.regs.ip()).is_none().then_some(1));
        let want_end = match garbage {
            Some(k) => {
                expected.truncate(k);
                lost_by_both += 1;
                EndReason::NoUnwindInfo
            }
            None => EndReason::Root,
        };
        let show = |f: &[u64]| f.iter().map(|&a| images.name(a)).collect::<Vec<_>>();
        assert_eq!(
            (&frames[..n], end),
            (&expected[..], want_end),
            "sample {i}: vignette {:?} vs RtlVirtualUnwind {:?}",
            show(&frames[..n]),
            show(&s.reference)
        );
        if end == EndReason::Root {
            rooted += 1;
        }
        *depths.entry(n).or_insert(0) += 1;
        places.insert(s.regs.ip());
    }
    eprintln!(
        "{} samples at {} distinct addresses: {rooted} reached the root, {lost_by_both} \
         stopped in code without unwind info; depths {depths:?}",
        dump.samples.len(),
        places.len()
    );
    // The workload is stopped at many instructions, nearly always where unwind info is.
    assert!(places.len() >= 40, "{} places", places.len());
    assert!(rooted * 100 >= dump.samples.len() * 95, "{rooted} rooted");
}
