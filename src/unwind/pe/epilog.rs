//! Epilogs: x64 unwind codes describe only the prolog, so a thread stopped inside an epilog
//! is recognised by its code, which the x64 calling convention restricts to: an optional
//! `add rsp, imm` or `lea rsp, [frame register + disp]`, then `pop` of nonvolatile registers,
//! then `ret`, `ret imm16`, `rep ret`, or a `jmp` (a jump within the function continues the
//! epilog; a jump out of it, direct or through a `[rip + disp]` pointer, is a tail call). The
//! rest of the epilog is then emulated, as `RtlVirtualUnwind` does.

use super::{dwarf, ImageReader, RuntimeFunction, UnwindError};
use crate::unwind::{Regs, StackReader, Step};

/// Bytes of code looked at per read (the longest epilog: `lea` 7 bytes, 16 two-byte pops,
/// `ret` or a 6-byte `jmp`).
const WINDOW: usize = 48;

/// How many jumps within the function an epilog may take.
const MAX_JUMPS: usize = 8;

/// Code bytes read in windows of [`WINDOW`], never across a page the code does not reach.
struct Code<'a, I: ?Sized> {
    image: &'a I,
    at: u64,
    buf: [u8; WINDOW],
    len: usize,
}

impl<'a, I: ImageReader + ?Sized> Code<'a, I> {
    /// The code at `at`, or `None` if not even its first byte is readable.
    fn new(image: &'a I, at: u64) -> Option<Self> {
        let mut c = Code {
            image,
            at,
            buf: [0; WINDOW],
            len: 0,
        };
        // The code at `at` is readable; the window may reach into a page that is not.
        let to_page_end = (4096 - (at & 4095)) as usize;
        for len in [WINDOW, to_page_end.min(WINDOW), 16, 1] {
            if c.buf.get_mut(..len).is_some_and(|b| image.read(at, b)) {
                c.len = len;
                return Some(c);
            }
        }
        None
    }

    /// The byte `i` past `at`, if readable.
    fn byte(&mut self, i: usize) -> Option<u8> {
        if i >= self.len {
            // Read on from where this window ends.
            let mut next = Code::new(self.image, self.at.checked_add(i as u64)?)?;
            let b = next.byte(0);
            return b;
        }
        self.buf.get(i).copied()
    }

    fn i32_at(&mut self, i: usize) -> Option<i32> {
        Some(i32::from_le_bytes([
            self.byte(i)?,
            self.byte(i + 1)?,
            self.byte(i + 2)?,
            self.byte(i + 3)?,
        ]))
    }
}

/// One instruction of an epilog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Insn {
    /// `add rsp, imm`.
    AddRsp(i64),
    /// `lea rsp, [reg + disp]` (reg as a Windows register number).
    LeaRsp(u8, i64),
    /// `pop reg` (a Windows register number).
    Pop(u8),
    /// `ret imm16` (0 for a plain `ret`).
    Ret(u16),
    /// A jump to this address (within the function: the epilog goes on there).
    Jump(u64),
    /// A jump out of the function: a tail call, the end of the epilog.
    TailCall,
}

/// Decodes the instruction at `code.at + *pc` if an epilog may hold it, advancing `pc`.
fn next_insn<I: ImageReader + ?Sized>(
    code: &mut Code<'_, I>,
    pc: &mut usize,
    first: bool,
) -> Option<Insn> {
    let mut i = *pc;
    let mut b = code.byte(i)?;
    let rex = if b & 0xf0 == 0x40 {
        i += 1;
        let rex = b & 15;
        b = code.byte(i)?;
        rex
    } else {
        0
    };
    let insn = match b {
        // add rsp, imm8 / imm32: only as the first instruction, with REX.W alone.
        0x83 | 0x81 if first && rex == 8 && code.byte(i + 1)? == 0xc4 => {
            if b == 0x83 {
                i += 3;
                Insn::AddRsp(code.byte(i - 1)? as i8 as i64)
            } else {
                i += 6;
                Insn::AddRsp(code.i32_at(i - 4)? as i64)
            }
        }
        // lea rsp, [reg + disp8 / disp32]: REX.W (B allowed), no SIB byte.
        0x8d if first && rex & 0xe == 8 => {
            let modrm = code.byte(i + 1)?;
            let reg = (modrm & 7) | (rex & 1) << 3;
            if (modrm >> 3) & 7 != 4 || modrm & 7 == 4 {
                return None;
            }
            match modrm >> 6 {
                1 => {
                    i += 3;
                    Insn::LeaRsp(reg, code.byte(i - 1)? as i8 as i64)
                }
                2 => {
                    i += 6;
                    Insn::LeaRsp(reg, code.i32_at(i - 4)? as i64)
                }
                _ => return None,
            }
        }
        0x58..=0x5f if rex & !1 == 0 => {
            i += 1;
            Insn::Pop((b - 0x58) | (rex & 1) << 3)
        }
        0xc3 if rex == 0 => Insn::Ret(0),
        0xc2 if rex == 0 => Insn::Ret(u16::from_le_bytes([code.byte(i + 1)?, code.byte(i + 2)?])),
        // rep ret
        0xf3 if rex == 0 && code.byte(i + 1)? == 0xc3 => Insn::Ret(0),
        0xe9 if rex == 0 => {
            let rel = code.i32_at(i + 1)? as i64;
            Insn::Jump(
                code.at
                    .wrapping_add((i + 5) as u64)
                    .wrapping_add_signed(rel),
            )
        }
        0xeb if rex == 0 => {
            let rel = code.byte(i + 1)? as i8 as i64;
            Insn::Jump(
                code.at
                    .wrapping_add((i + 2) as u64)
                    .wrapping_add_signed(rel),
            )
        }
        // jmp [rip + disp32] (REX.W allowed): an indirect tail call.
        0xff if rex & !8 == 0 && code.byte(i + 1)? == 0x25 => Insn::TailCall,
        _ => return None,
    };
    *pc = i;
    Some(insn)
}

/// If `regs.ip()` is inside an epilog of `function`, emulates the rest of it and returns the
/// step (`Some(Err)` when a read for it failed); `None` when it is not an epilog.
///
/// # Signal safety
/// Async-signal-safe if `stack` and `image` are.
pub(super) fn unwind_if_inside<S, I>(
    regs: &mut Regs,
    base: u64,
    function: &RuntimeFunction,
    stack: &S,
    image: &I,
) -> Option<Result<Step, UnwindError>>
where
    S: StackReader + ?Sized,
    I: ImageReader + ?Sized,
{
    let inside = |at: u64| {
        at.checked_sub(base)
            .and_then(|r| u32::try_from(r).ok())
            .is_some_and(|r| function.begin <= r && r < function.end)
    };
    // First pass: is it an epilog? (Nothing is changed until the whole sequence is known.)
    let mut insns = [Insn::Ret(0); 24];
    let mut n = 0;
    let mut at = regs.ip();
    let mut jumps = 0;
    'outer: loop {
        let mut code = Code::new(image, at)?;
        let mut pc = 0;
        loop {
            let insn = next_insn(&mut code, &mut pc, n == 0)?;
            let slot = insns.get_mut(n)?;
            *slot = insn;
            n += 1;
            match insn {
                Insn::Ret(_) | Insn::TailCall => break 'outer,
                Insn::Jump(to) if inside(to) => {
                    jumps += 1;
                    if jumps > MAX_JUMPS {
                        return None;
                    }
                    n -= 1;
                    at = to;
                    continue 'outer;
                }
                Insn::Jump(_) => {
                    if let Some(last) = insns.get_mut(n - 1) {
                        *last = Insn::TailCall;
                    }
                    break 'outer;
                }
                _ => {}
            }
        }
    }
    // Second pass: emulate it.
    let mut sp = regs.sp();
    let mut out = *regs;
    for insn in insns.iter().take(n) {
        let read = |a: u64| stack.read_u64(a).ok_or(UnwindError::BadRead);
        match *insn {
            Insn::AddRsp(imm) => sp = sp.wrapping_add_signed(imm),
            Insn::LeaRsp(reg, disp) => {
                sp = out.get(dwarf(reg)).unwrap_or(0).wrapping_add_signed(disp);
            }
            Insn::Pop(reg) => {
                match read(sp) {
                    Ok(v) => out.set(dwarf(reg), v),
                    Err(e) => return Some(Err(e)),
                }
                sp = sp.wrapping_add(8);
            }
            Insn::Ret(extra) => {
                match read(sp) {
                    Ok(v) => out.set(Regs::IP, v),
                    Err(e) => return Some(Err(e)),
                }
                sp = sp.wrapping_add(8 + extra as u64);
            }
            Insn::TailCall => {
                match read(sp) {
                    Ok(v) => out.set(Regs::IP, v),
                    Err(e) => return Some(Err(e)),
                }
                sp = sp.wrapping_add(8);
            }
            Insn::Jump(_) => {}
        }
        out.set(Regs::SP, sp);
    }
    *regs = out;
    Some(Ok(Step::Caller {
        signal_frame: false,
    }))
}
