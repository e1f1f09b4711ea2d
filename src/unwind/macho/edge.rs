//! Frames interrupted where compact unwind info does not hold. An encoding describes a
//! function's body, where a call can be; a sampled thread can also be stopped in a prologue
//! (the frame being built) or an epilogue (being taken down). Where the instructions from
//! the interrupted one on are such a sequence, they say where the caller's registers are.
//!
//! The analysis reads forward from the interrupted instruction, as far as the end of the
//! prologue or the return, and only through the few instructions prologues and epilogues are
//! made of; anything else means "not at an edge" (`None`), and the encoding applies. Both
//! architectures' analyses build on every host, so the tests run them on real code of either.

use super::super::compact::{CompactRule, ReturnAddress};

/// Most instructions looked at.
pub const MAX_INSNS: u64 = 16;

/// x86_64 at a function's first instruction: `call` pushed the return address.
pub const X86_64_ENTRY: CompactRule = CompactRule::Frameless {
    stack_size: 8,
    ra: ReturnAddress::BelowCallerSp,
    fp_at: None,
};

/// arm64 at a function's first instruction: `bl` left the return address in x30.
pub const ARM64_ENTRY: CompactRule = CompactRule::Frameless {
    stack_size: 0,
    ra: ReturnAddress::InLinkRegister,
    fp_at: None,
};

/// x86_64: the rule at `pc` of a function whose encoding gives `body` (resolved: see
/// [`CompactRule::resolved`]), reading code through `read`.
/// - a frameless function's prologue (`body` is [`CompactRule::Frameless`]): pushes and
///   `sub rsp` from `pc` on are what the frame still lacks of `body`'s; a register whose push
///   is still ahead is still in its register;
/// - `push rbp`: the function's first instruction ([`X86_64_ENTRY`]);
/// - `mov rbp, rsp` right after `push rbp`: the caller's rbp at `[rsp]`, the return address
///   above it;
/// - a run of `add rsp, n` and `pop` ending in `ret`: the return address is above what they
///   pop (and rbp where `pop rbp` would take it from).
///
/// # Signal safety
/// Async-signal-safe: at most [`MAX_INSNS`] reads of 4 bytes (and one more per `sub rsp` or
/// `add rsp` with a 32-bit immediate).
pub fn x86_64(
    pc: u64,
    body: CompactRule,
    read: impl Fn(u64, &mut [u8]) -> bool,
) -> Option<CompactRule> {
    const PUSH_RBP: u8 = 0x55;
    let at = |addr: u64| {
        let mut b = [0u8; 4];
        read(addr, &mut b).then_some(b)
    };
    if let CompactRule::Frameless {
        stack_size,
        ra: ReturnAddress::BelowCallerSp,
        fp_at,
    } = body
    {
        if let Some(ahead) = prologue_ahead(pc, &read) {
            return Some(CompactRule::Frameless {
                stack_size: stack_size.checked_sub(ahead).filter(|&s| s >= 8)?,
                ra: ReturnAddress::BelowCallerSp,
                fp_at: fp_at.and_then(|f| f.checked_sub(ahead)),
            });
        }
    }
    let here = at(pc)?;
    if here[0] == PUSH_RBP {
        return Some(X86_64_ENTRY);
    }
    if here[..3] == [0x48, 0x89, 0xe5] {
        // mov rbp, rsp
        let after_push = pc
            .checked_sub(1)
            .and_then(at)
            .is_some_and(|b| b[0] == PUSH_RBP);
        return after_push.then_some(CompactRule::Frameless {
            stack_size: 16,
            ra: ReturnAddress::BelowCallerSp,
            fp_at: Some(0),
        });
    }
    // An epilogue: bytes popped or added so far (from the interrupted rsp), and where rbp is.
    let (mut popped, mut fp_at, mut addr) = (0u32, None, pc);
    for _ in 0..MAX_INSNS {
        let b = at(addr)?;
        let len = match b {
            // ret, ret imm16
            [0xc3, ..] | [0xc2, ..] => {
                return Some(CompactRule::Frameless {
                    stack_size: popped.checked_add(8)?,
                    ra: ReturnAddress::BelowCallerSp,
                    fp_at,
                })
            }
            // pop rbp; pop r (rax-rdi); pop r8-r15
            [0x5d, ..] => {
                fp_at = Some(popped);
                popped = popped.checked_add(8)?;
                1
            }
            [0x58..=0x5f, ..] => {
                popped = popped.checked_add(8)?;
                1
            }
            [0x41, 0x58..=0x5f, ..] => {
                popped = popped.checked_add(8)?;
                2
            }
            // add rsp, imm8 (sign-extended; a negative one is not an epilogue's)
            [0x48, 0x83, 0xc4, n] if n < 0x80 => {
                popped = popped.checked_add(n as u32)?;
                4
            }
            // add rsp, imm32
            [0x48, 0x81, 0xc4, _] => {
                popped = popped.checked_add(imm32(addr + 3, &read)?)?;
                7
            }
            _ => return None,
        };
        addr += len;
    }
    None
}

/// x86_64: the bytes the pushes and `sub rsp` from `pc` on (a prologue's, up to the first
/// other instruction) move rsp down by; `None` if `pc` is at none, or they do not end within
/// [`MAX_INSNS`]. (A frameless function's body, as its encoding describes it, moves rsp
/// nowhere: such instructions are its prologue's.)
fn prologue_ahead(pc: u64, read: &impl Fn(u64, &mut [u8]) -> bool) -> Option<u32> {
    let (mut ahead, mut addr) = (0u32, pc);
    for _ in 0..MAX_INSNS {
        let mut b = [0u8; 4];
        if !read(addr, &mut b) {
            return None;
        }
        let (bytes, len) = match b {
            // push r (rax-rdi); push r8-r15
            [0x50..=0x57, ..] => (8, 1),
            [0x41, 0x50..=0x57, ..] => (8, 2),
            // sub rsp, imm8 (sign-extended; a negative one is not a prologue's)
            [0x48, 0x83, 0xec, n] if n < 0x80 => (n as u32, 4),
            // sub rsp, imm32
            [0x48, 0x81, 0xec, _] => (imm32(addr + 3, read)?, 7),
            _ => return (ahead > 0).then_some(ahead),
        };
        ahead = ahead.checked_add(bytes)?;
        addr += len;
    }
    None
}

/// A non-negative 32-bit immediate at `addr`.
fn imm32(addr: u64, read: &impl Fn(u64, &mut [u8]) -> bool) -> Option<u32> {
    let mut imm = [0u8; 4];
    if !read(addr, &mut imm) {
        return None;
    }
    u32::try_from(i32::from_le_bytes(imm)).ok()
}

/// A 64-bit `stp`/`ldp` of general or `d` registers based on sp: (pair of registers
/// numbered `rt`, `rt2`; the byte offset; how it addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PairAccess {
    load: bool,
    rt: u32,
    rt2: u32,
    offset: i32,
    mode: Mode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `[sp, #offset]`.
    Offset,
    /// `[sp, #offset]!`: sp moves first.
    PreIndex,
    /// `[sp], #offset`: sp moves after.
    PostIndex,
}

/// Decodes `w` if it is a pair access based on sp.
fn pair_access(w: u32) -> Option<PairAccess> {
    // Bits 31-22: opc, 101, V (x registers: 10 101 0; d registers: 01 101 1), then the
    // mode (001 post-index, 010 offset, 011 pre-index) and L (load).
    let class = w >> 22;
    if !matches!(class >> 4, 0b10_1010 | 0b01_1011) || (w >> 5) & 31 != 31 {
        return None;
    }
    let mode = match (class >> 1) & 0b111 {
        0b001 => Mode::PostIndex,
        0b010 => Mode::Offset,
        0b011 => Mode::PreIndex,
        _ => return None,
    };
    let load = class & 1 == 1;
    let imm7 = ((w >> 15) & 0x7f) as i32;
    let imm7 = if imm7 >= 64 { imm7 - 128 } else { imm7 };
    Some(PairAccess {
        load,
        rt: w & 31,
        rt2: (w >> 10) & 31,
        offset: imm7 * 8,
        mode,
    })
}

/// `add <rd>, sp, #imm` or `sub <rd>, sp, #imm` (12-bit immediate, optionally shifted by 12):
/// (rd, the signed amount added).
fn sp_arithmetic(w: u32) -> Option<(u32, i64)> {
    let sign = match w & 0xff80_03e0 {
        0x9100_03e0 => 1,
        0xd100_03e0 => -1,
        _ => return None,
    };
    let imm = ((w >> 10) & 0xfff) as i64;
    let imm = if (w >> 22) & 1 == 1 { imm << 12 } else { imm };
    Some((w & 31, sign * imm))
}

/// Whether `w` is `pacibsp`, `paciasp`, `bti` or `nop`, which a prologue may hold and which
/// change no register the analysis follows; or, in an epilogue, `autibsp`/`autiasp`.
fn is_hint(w: u32) -> bool {
    matches!(
        w,
        0xd503_237f
            | 0xd503_233f
            | 0xd503_241f
            | 0xd503_245f
            | 0xd503_249f
            | 0xd503_24df
            | 0xd503_201f
            | 0xd503_23ff
            | 0xd503_23bf
    )
}

/// Whether `w` returns through x30 (`ret`, `retaa`, `retab`).
fn is_return(w: u32) -> bool {
    matches!(w, 0xd65f_03c0 | 0xd65f_0bff | 0xd65f_0fff)
}

/// arm64: the rule at `pc`, reading instructions through `word`, for code that keeps its
/// frame record (x29, x30) at the top of its frame, as Apple's ABI has it.
/// - In a prologue (pair stores and `sub sp` up to `add x29, sp, #n`): if the record is still
///   to be stored, the return address is in x30; else it is in the record, where x29 will
///   point. Either way the caller's sp is 16 above the record.
/// - In an epilogue (pair loads, `add sp`, up to a return) after the record was loaded back:
///   the return address is in x30 and the caller's sp is what the rest restores. (Before
///   that, x29 still points at the record and the encoding holds: `None`.)
///
/// # Signal safety
/// Async-signal-safe: at most [`MAX_INSNS`] reads of 4 bytes.
pub fn arm64(pc: u64, word: impl Fn(u64) -> Option<u32>) -> Option<CompactRule> {
    prologue(pc, &word).or_else(|| epilogue(pc, &word))
}

fn prologue(pc: u64, word: &impl Fn(u64) -> Option<u32>) -> Option<CompactRule> {
    // How far sp will have gone down by each instruction, from where it is at `pc`.
    let (mut down, mut record_ahead) = (0i64, false);
    for i in 0..MAX_INSNS {
        let w = word(pc + 4 * i)?;
        if is_hint(w) {
            continue;
        }
        if let Some(p) = pair_access(w).filter(|p| !p.load) {
            if p.mode == Mode::PostIndex {
                return None;
            }
            if p.mode == Mode::PreIndex {
                down -= p.offset as i64;
            }
            if (p.rt, p.rt2) == (29, 30) {
                record_ahead = true;
            }
            continue;
        }
        match sp_arithmetic(w) {
            // sub sp, sp, #n
            Some((31, n)) if n < 0 => down -= n,
            // add x29, sp, #n: the record is n above sp here, and the caller's sp 16 above.
            Some((29, n)) if n >= 0 => {
                let record = n - down;
                let caller_sp = u32::try_from(record + 16).ok()?;
                return Some(if record_ahead {
                    CompactRule::Frameless {
                        stack_size: caller_sp,
                        ra: ReturnAddress::InLinkRegister,
                        fp_at: None,
                    }
                } else {
                    CompactRule::Frameless {
                        stack_size: caller_sp,
                        ra: ReturnAddress::BelowCallerSp,
                        fp_at: Some(u32::try_from(record).ok()?),
                    }
                });
            }
            _ => return None,
        }
    }
    None
}

fn epilogue(pc: u64, word: &impl Fn(u64) -> Option<u32>) -> Option<CompactRule> {
    // How far sp will have gone up by the return, from where it is at `pc`.
    let mut up = 0i64;
    for i in 0..MAX_INSNS {
        let w = word(pc + 4 * i)?;
        if is_return(w) {
            return Some(CompactRule::Frameless {
                stack_size: u32::try_from(up).ok()?,
                ra: ReturnAddress::InLinkRegister,
                fp_at: None,
            });
        }
        if is_hint(w) {
            continue;
        }
        if let Some(p) = pair_access(w).filter(|p| p.load) {
            if (p.rt, p.rt2) == (29, 30) || p.mode == Mode::PreIndex {
                // The record is still to be loaded: x29 points at it.
                return None;
            }
            if p.mode == Mode::PostIndex {
                up += p.offset as i64;
            }
            continue;
        }
        match sp_arithmetic(w) {
            // add sp, sp, #n
            Some((31, n)) if n > 0 => up += n,
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_accesses_decode() {
        // stp x29, x30, [sp, #-16]!
        assert_eq!(
            pair_access(0xa9bf_7bfd),
            Some(PairAccess {
                load: false,
                rt: 29,
                rt2: 30,
                offset: -16,
                mode: Mode::PreIndex
            })
        );
        // ldp x20, x19, [sp], #32
        assert_eq!(
            pair_access(0xa8c2_4ff4),
            Some(PairAccess {
                load: true,
                rt: 20,
                rt2: 19,
                offset: 32,
                mode: Mode::PostIndex
            })
        );
        // stp d9, d8, [sp, #16]
        assert_eq!(
            pair_access(0x6d01_23e9).map(|p| (p.load, p.offset, p.mode)),
            Some((false, 16, Mode::Offset))
        );
        // stp x1, x0, [x8]: not sp-based
        assert_eq!(pair_access(0xa900_0101), None);
        // add x29, sp, #16; sub sp, sp, #1, lsl #12
        assert_eq!(sp_arithmetic(0x9100_43fd), Some((29, 16)));
        assert_eq!(sp_arithmetic(0xd140_07ff), Some((31, -4096)));
    }
}
