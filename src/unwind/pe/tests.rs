use super::*;
use crate::unwind::SliceStack;
use std::vec::Vec;

const BASE: u64 = 0x1_4000_0000;
const STACK: u64 = 0x7ff0_0000;

/// An image under construction: code, unwind infos and a `.pdata` table at chosen RVAs.
struct Image {
    bytes: Vec<u8>,
    pdata: Vec<u8>,
}

impl Image {
    fn new() -> Self {
        Image {
            bytes: vec![0xcc; 0x4000],
            pdata: Vec::new(),
        }
    }

    fn put(&mut self, rva: u32, data: &[u8]) {
        self.bytes[rva as usize..rva as usize + data.len()].copy_from_slice(data);
    }

    /// An UNWIND_INFO at `rva`: version 1, `flags`, prolog size, frame register and offset,
    /// codes as (prolog offset, op, info) plus raw argument slots.
    fn info(&mut self, rva: u32, flags: u8, prolog: u8, frame: (u8, u8), codes: &[u16]) {
        let mut b = vec![
            1 | flags << 3,
            prolog,
            codes.len() as u8,
            frame.0 | frame.1 << 4,
        ];
        for c in codes {
            b.extend_from_slice(&c.to_le_bytes());
        }
        self.put(rva, &b);
    }

    fn function(&mut self, begin: u32, end: u32, info: u32) {
        for w in [begin, end, info] {
            self.pdata.extend_from_slice(&w.to_le_bytes());
        }
    }

    fn table(&self) -> FunctionTable<'_> {
        FunctionTable {
            base: BASE,
            pdata: &self.pdata,
        }
    }

    fn reader(&self) -> SliceImage<'_> {
        SliceImage {
            base: BASE,
            bytes: &self.bytes,
        }
    }
}

fn code(offset: u8, op: u8, info: u8) -> u16 {
    offset as u16 | (op as u16) << 8 | (info as u16) << 12
}

fn words(w: &[u64]) -> Vec<u8> {
    w.iter().flat_map(|w| w.to_le_bytes()).collect()
}

// Windows register numbers.
const RBX: u8 = 3;
const RBP: u8 = 5;
const RSI: u8 = 6;
const DW_RBX: u16 = 3;
const DW_RSI: u16 = 4;

/// `f` at 0x1000..0x1040:
/// ```text
/// 0x1000 push rbp            ; 55
/// 0x1001 push rbx            ; 53
/// 0x1002 sub rsp, 0x28       ; 48 83 ec 28
/// 0x1006 lea rbp, [rsp+0x20] ; 48 8d 6c 24 20
/// 0x100b ... body ...
/// 0x1030 add rsp, 0x28       ; 48 83 c4 28
/// 0x1034 pop rbx             ; 5b
/// 0x1035 pop rbp             ; 5d
/// 0x1036 ret                 ; c3
/// ```
fn framed() -> Image {
    let mut img = Image::new();
    img.put(
        0x1000,
        &[
            0x55, 0x53, 0x48, 0x83, 0xec, 0x28, 0x48, 0x8d, 0x6c, 0x24, 0x20,
        ],
    );
    img.put(0x100b, &[0x90; 0x25]);
    img.put(0x1030, &[0x48, 0x83, 0xc4, 0x28, 0x5b, 0x5d, 0xc3]);
    img.info(
        0x2000,
        0,
        11,
        (RBP, 2),
        &[
            code(11, op::SET_FPREG, 0),
            code(6, op::ALLOC_SMALL, 4),
            code(2, op::PUSH_NONVOL, RBX),
            code(1, op::PUSH_NONVOL, RBP),
        ],
    );
    img.function(0x1000, 0x1040, 0x2000);
    img
}

/// The stack of `framed` after its prolog: rsp = STACK, 0x28 bytes of locals, saved rbx,
/// saved rbp, return address.
fn framed_stack() -> Vec<u8> {
    words(&[0, 0, 0, 0, 0, 0xb0b0, 0xbb, 0x9999])
}

fn run(img: &Image, regs: Regs, stack: &[u8], interrupted: bool) -> Result<Regs, UnwindError> {
    let mut r = regs;
    let s = SliceStack {
        base: STACK,
        bytes: stack,
    };
    step(&mut r, interrupted, &img.table(), &s, &img.reader())?;
    Ok(r)
}

fn caller(r: &Regs) -> (u64, u64, u64, u64) {
    (r.ip(), r.sp(), r.fp(), r.get(DW_RBX).unwrap())
}

#[test]
fn a_body_frame_restores_pushed_registers_and_the_return_address() {
    let img = framed();
    let regs = Regs::new(BASE + 0x1010, STACK, STACK + 0x20);
    let r = run(&img, regs, &framed_stack(), true).unwrap();
    assert_eq!(caller(&r), (0x9999, STACK + 0x40, 0xbb, 0xb0b0));
    // The frame register, not rsp, locates the frame: rsp moved by a call's pushes.
    let regs = Regs::new(BASE + 0x1010, STACK - 0x18, STACK + 0x20);
    let r = run(&img, regs, &framed_stack(), true).unwrap();
    assert_eq!(caller(&r), (0x9999, STACK + 0x40, 0xbb, 0xb0b0));
}

#[test]
fn a_calling_frame_is_unwound_from_its_return_address() {
    let img = framed();
    let regs = Regs::new(BASE + 0x1015, STACK, STACK + 0x20);
    let r = run(&img, regs, &framed_stack(), false).unwrap();
    assert_eq!(caller(&r), (0x9999, STACK + 0x40, 0xbb, 0xb0b0));
}

#[test]
fn inside_the_prolog_only_the_executed_codes_are_undone() {
    let img = framed();
    // At 0x1002 (after both pushes): rsp at the saved rbx.
    let regs = Regs::new(BASE + 0x1002, STACK + 0x28, 0x1234);
    let r = run(&img, regs, &framed_stack(), true).unwrap();
    assert_eq!(caller(&r), (0x9999, STACK + 0x40, 0xbb, 0xb0b0));
    // At 0x1001 (after push rbp): rbx is still the caller's.
    let mut regs = Regs::new(BASE + 0x1001, STACK + 0x30, 0x1234);
    regs.set(DW_RBX, 0x5555);
    let r = run(&img, regs, &framed_stack(), true).unwrap();
    assert_eq!(caller(&r), (0x9999, STACK + 0x40, 0xbb, 0x5555));
    // At the first instruction: only the return address is on the stack.
    let regs = Regs::new(BASE + 0x1000, STACK + 0x38, 0x1234);
    let r = run(&img, regs, &framed_stack(), true).unwrap();
    assert_eq!(caller(&r), (0x9999, STACK + 0x40, 0x1234, 0));
}

#[test]
fn inside_the_epilog_the_rest_of_it_is_emulated() {
    let img = framed();
    let stack = framed_stack();
    // At `add rsp, 0x28`: as in the body.
    let regs = Regs::new(BASE + 0x1030, STACK, STACK + 0x20);
    assert_eq!(
        caller(&run(&img, regs, &stack, true).unwrap()),
        (0x9999, STACK + 0x40, 0xbb, 0xb0b0)
    );
    // At `pop rbp`: rbx restored already, rbp still the callee's.
    let mut regs = Regs::new(BASE + 0x1035, STACK + 0x30, 0x7777);
    regs.set(DW_RBX, 0xb0b0);
    assert_eq!(
        caller(&run(&img, regs, &stack, true).unwrap()),
        (0x9999, STACK + 0x40, 0xbb, 0xb0b0)
    );
    // At `ret`: only the return address is left.
    let regs = Regs::new(BASE + 0x1036, STACK + 0x38, 0xbb);
    assert_eq!(caller(&run(&img, regs, &stack, true).unwrap()).0, 0x9999);
}

#[test]
fn an_epilog_through_lea_and_a_jump_and_ending_in_a_tail_call() {
    let mut img = framed();
    // lea rsp, [rbp + 8] ; jmp +2 ; int3 int3 ; pop rbx ; pop rbp ; jmp other_function
    img.put(
        0x1020,
        &[0x48, 0x8d, 0x65, 0x08, 0xeb, 0x02, 0xcc, 0xcc, 0x5b, 0x5d],
    );
    img.put(0x102a, &[0xe9, 0xd1, 0x0f, 0x00, 0x00]); // to 0x2000, outside f
    let regs = Regs::new(BASE + 0x1020, STACK, STACK + 0x20);
    let r = run(&img, regs, &framed_stack(), true).unwrap();
    assert_eq!(caller(&r), (0x9999, STACK + 0x40, 0xbb, 0xb0b0));
}

#[test]
fn code_that_only_looks_like_an_epilog_partly_is_body() {
    let mut img = framed();
    // add rsp, 0x28 ; pop rbx ; mov eax, 1 (not an epilog instruction)
    img.put(0x1020, &[0x48, 0x83, 0xc4, 0x28, 0x5b, 0xb8, 1, 0, 0, 0]);
    let regs = Regs::new(BASE + 0x1020, STACK, STACK + 0x20);
    let r = run(&img, regs, &framed_stack(), true).unwrap();
    // Unwound by the prolog's codes, not the lookalike.
    assert_eq!(caller(&r), (0x9999, STACK + 0x40, 0xbb, 0xb0b0));
}

#[test]
fn a_leaf_function_has_its_return_address_at_rsp() {
    let img = framed();
    let stack = words(&[0x4242, 0]);
    let regs = Regs::new(BASE + 0x3000, STACK, 0x77);
    let r = run(&img, regs, &stack, true).unwrap();
    assert_eq!((r.ip(), r.sp(), r.fp()), (0x4242, STACK + 8, 0x77));
}

#[test]
fn large_allocations_saved_registers_and_chained_info() {
    let mut img = Image::new();
    // Parent 0x1000..0x1100: push rsi; sub rsp, 0x1000 (ALLOC_LARGE 0: slots*8);
    // mov [rsp+0x10], rbx (SAVE_NONVOL slot 2).
    img.info(
        0x2000,
        0,
        20,
        (0, 0),
        &[
            code(20, op::SAVE_NONVOL, RBX),
            2,
            code(8, op::ALLOC_LARGE, 0),
            0x1000 / 8,
            code(1, op::PUSH_NONVOL, RSI),
        ],
    );
    img.function(0x1000, 0x1100, 0x2000);
    // A chunk of the parent at 0x1200..0x1280 with chained info: sub rsp, 0x20 more (ALLOC
    // LARGE 1: 32-bit size), then the parent's codes.
    let mut chained = vec![1 | UNW_FLAG_CHAININFO << 3, 0, 3, 0];
    for c in [code(0, op::ALLOC_LARGE, 1), 0x20, 0] {
        chained.extend_from_slice(&c.to_le_bytes());
    }
    chained.extend_from_slice(&[0, 0]); // pad to an even slot count
    for w in [0x1000u32, 0x1100, 0x2000] {
        chained.extend_from_slice(&w.to_le_bytes());
    }
    img.put(0x2100, &chained);
    img.function(0x1200, 0x1280, 0x2100);
    // Stack: 0x20 chunk bytes, 0x1000 parent bytes (rbx saved at +0x10), saved rsi, return.
    let mut w = vec![0u64; (0x20 + 0x1000) / 8];
    w[(0x20 + 0x10) / 8] = 0xbbbb;
    w.push(0x5151);
    w.push(0x8888);
    let stack = words(&w);
    let regs = Regs::new(BASE + 0x1240, STACK, 0);
    let r = run(&img, regs, &stack, true).unwrap();
    assert_eq!(r.ip(), 0x8888);
    assert_eq!(r.sp(), STACK + 0x20 + 0x1000 + 16);
    assert_eq!(r.get(DW_RBX), Some(0xbbbb));
    assert_eq!(r.get(DW_RSI), Some(0x5151));
}

#[test]
fn a_machine_frame_gives_the_interrupted_rip_and_rsp() {
    let mut img = Image::new();
    img.info(0x2000, 0, 0, (0, 0), &[code(0, op::PUSH_MACHFRAME, 1)]);
    img.function(0x1000, 0x1010, 0x2000);
    // error code, rip, cs, eflags, rsp, ss
    let stack = words(&[0xe, 0x4321, 0x33, 0x246, 0x7000_0000, 0x2b]);
    let regs = Regs::new(BASE + 0x1004, STACK, 0);
    let mut r = regs;
    let s = SliceStack {
        base: STACK,
        bytes: &stack,
    };
    assert_eq!(
        step(&mut r, true, &img.table(), &s, &img.reader()),
        Ok(Step::Caller { signal_frame: true })
    );
    assert_eq!((r.ip(), r.sp()), (0x4321, 0x7000_0000));
}

#[test]
fn an_indirect_entry_is_followed() {
    let mut img = framed();
    // The table names an entry in the image (low bit set) that describes the function.
    img.pdata.clear();
    let mut entry = Vec::new();
    for w in [0x1000u32, 0x1040, 0x2000] {
        entry.extend_from_slice(&w.to_le_bytes());
    }
    img.put(0x2800, &entry);
    img.function(0x1000, 0x1040, 0x2800 | 1);
    let regs = Regs::new(BASE + 0x1010, STACK, STACK + 0x20);
    let r = run(&img, regs, &framed_stack(), true).unwrap();
    assert_eq!(caller(&r), (0x9999, STACK + 0x40, 0xbb, 0xb0b0));
}

#[test]
fn malformed_info_and_unreadable_memory_are_errors() {
    let regs = Regs::new(BASE + 0x1010, STACK, STACK + 0x20);
    // An unknown code (7).
    let mut img = Image::new();
    img.info(0x2000, 0, 0, (0, 0), &[code(0, 7, 0)]);
    img.function(0x1000, 0x1040, 0x2000);
    assert_eq!(
        run(&img, regs, &framed_stack(), true),
        Err(UnwindError::BadInfo)
    );
    // A code whose argument slot is missing.
    img.info(0x2000, 0, 0, (0, 0), &[code(0, op::ALLOC_LARGE, 0)]);
    assert_eq!(
        run(&img, regs, &framed_stack(), true),
        Err(UnwindError::BadInfo)
    );
    // Version 0.
    img.put(0x2000, &[0]);
    assert_eq!(
        run(&img, regs, &framed_stack(), true),
        Err(UnwindError::BadInfo)
    );
    // Info outside the image.
    img.pdata.clear();
    img.function(0x1000, 0x1040, 0xffff_0000);
    assert_eq!(
        run(&img, regs, &framed_stack(), true),
        Err(UnwindError::BadRead)
    );
    // A chain that points at itself ends, bounded.
    let mut img = Image::new();
    let mut looped = vec![1 | UNW_FLAG_CHAININFO << 3, 0, 0, 0];
    for w in [0x1000u32, 0x1040, 0x2000] {
        looped.extend_from_slice(&w.to_le_bytes());
    }
    img.put(0x2000, &looped);
    img.function(0x1000, 0x1040, 0x2000);
    assert_eq!(
        run(&img, regs, &framed_stack(), true),
        Err(UnwindError::BadInfo)
    );
    // A stack too short for the saved registers.
    let img = framed();
    assert_eq!(
        run(&img, regs, &words(&[0; 3]), true),
        Err(UnwindError::BadRead)
    );
}

#[test]
fn function_lookup_is_a_binary_search_with_gaps() {
    let mut img = Image::new();
    for i in 0..100u32 {
        img.function(0x1000 + i * 0x20, 0x1000 + i * 0x20 + 0x10, 0x3000 + i);
    }
    let t = img.table();
    assert_eq!(
        find_function(&t, 0x1000).map(|f| f.unwind_info),
        Some(0x3000)
    );
    assert_eq!(
        find_function(&t, 0x1000 + 99 * 0x20 + 0xf).map(|f| f.unwind_info),
        Some(0x3000 + 99)
    );
    assert_eq!(find_function(&t, 0x1010), None);
    assert_eq!(find_function(&t, 0xfff), None);
    assert_eq!(find_function(&t, 0xffff_ffff), None);
    // A table with a trailing partial entry ignores it.
    let short = FunctionTable {
        base: BASE,
        pdata: &img.pdata[..12 * 3 + 5],
    };
    assert_eq!(find_function(&short, 0x1045).map(|f| f.begin), Some(0x1040));
}

struct OneModule<'a>(&'a Image);

impl TableLookup for OneModule<'_> {
    fn table(&self, avma: u64) -> Option<FunctionTable<'_>> {
        (BASE..BASE + self.0.bytes.len() as u64)
            .contains(&avma)
            .then(|| self.0.table())
    }
}

#[test]
fn a_walk_goes_from_frame_pointer_code_through_functions_to_the_root() {
    let mut img = framed();
    // g at 0x1100..0x1110: sub rsp, 0x18 only.
    img.info(0x2100, 0, 4, (0, 0), &[code(4, op::ALLOC_SMALL, 2)]);
    img.function(0x1100, 0x1110, 0x2100);
    // Interrupted in code outside every module (0x5000_0000) with a frame record at STACK:
    // [f's rbp (g keeps it), return into g at 0x1108]; g's 0x18 bytes and its return into f
    // at 0x1015; f's frame (0x28 locals, rbx, rbp, return address 0: the root).
    let f_sp = STACK + 16 + 0x20;
    let w = [
        f_sp + 0x20,
        BASE + 0x1108, // frame record
        0,
        0,
        0,
        BASE + 0x1015, // g
        0,
        0,
        0,
        0,
        0,
        0xb0b0,
        0xbb,
        0, // f
    ];
    let stack = words(&w);
    let regs = Regs::new(0x5000_0000, STACK, STACK);
    let mut s = SliceStack {
        base: STACK,
        bytes: &stack,
    };
    let mut frames = [0u64; 8];
    let (n, end) = walk(&regs, &mut s, &OneModule(&img), &img.reader(), &mut frames);
    assert_eq!(&frames[..n], &[0x5000_0000, BASE + 0x1107, BASE + 0x1014]);
    assert_eq!(end, EndReason::Root);
}

#[test]
fn a_return_address_outside_every_module_ends_the_walk_unrecorded() {
    // Code without unwind info that pushed a register (mingw's ___chkstk_ms): the leaf rule
    // finds the pushed value where the return address should be.
    let img = framed();
    let stack = words(&[0x2357, BASE + 0x1015]);
    let regs = Regs::new(BASE + 0x3000, STACK, 0);
    let mut s = SliceStack {
        base: STACK,
        bytes: &stack,
    };
    let mut frames = [0u64; 8];
    let (n, end) = walk(&regs, &mut s, &OneModule(&img), &img.reader(), &mut frames);
    assert_eq!(
        (&frames[..n], end),
        (&[BASE + 0x3000][..], EndReason::NoUnwindInfo)
    );
}

#[test]
fn an_indirect_entry_beginning_after_the_address_is_no_panic() {
    // Found by the fuzzer: the entry an indirect one names begins one byte after the caller's
    // lookup address, so the prolog offset of its return address overflowed.
    let mut img = framed();
    img.pdata.clear();
    let mut entry = Vec::new();
    for w in [0x1011u32, 0x1040, 0x2000] {
        entry.extend_from_slice(&w.to_le_bytes());
    }
    img.put(0x2800, &entry);
    img.function(0x1000, 0x1040, 0x2800 | 1);
    let regs = Regs::new(BASE + 0x1011, STACK, STACK + 0x20);
    let _ = run(&img, regs, &framed_stack(), false);
}
