//! DWARF expressions as they appear in call frame information: PLT entries
//! (`DW_CFA_def_cfa_expression`) and signal trampolines (registers saved in the `ucontext`).

use super::reader::Section;
use super::CfiError;
use crate::unwind::{Regs, StackReader};

type R<T> = Result<T, CfiError>;

/// Operand stack depth.
pub const STACK: usize = 16;
/// Operations executed at most (branches could loop).
pub const MAX_STEPS: usize = 256;

/// Evaluates the expression whose LEB128 length is at section offset `at`, with `push`
/// (the CFA, for register rules) on the stack first. Memory is read through `mem`.
///
/// # Signal safety
/// Async-signal-safe: a fixed operand stack, at most [`MAX_STEPS`] operations.
pub fn evaluate<M: StackReader + ?Sized>(
    sec: Section<'_>,
    at: u32,
    regs: &Regs,
    mem: &M,
    push: Option<u64>,
) -> R<u64> {
    let mut c = sec.at(at as usize);
    let len = usize::try_from(c.uleb()?).map_err(|_| CfiError::BadExpression)?;
    let start = c.pos();
    let end = start.checked_add(len).ok_or(CfiError::BadExpression)?;
    if end > sec.data.len() {
        return Err(CfiError::Truncated);
    }
    let mut stack = [0u64; STACK];
    let mut sp = 0usize;
    macro_rules! push {
        ($v:expr) => {{
            let v = $v;
            *stack.get_mut(sp).ok_or(CfiError::BadExpression)? = v;
            sp += 1;
        }};
    }
    macro_rules! pop {
        () => {{
            sp = sp.checked_sub(1).ok_or(CfiError::BadExpression)?;
            *stack.get(sp).ok_or(CfiError::BadExpression)?
        }};
    }
    if let Some(v) = push {
        push!(v);
    }
    let reg = |r: u16| regs.get(r).ok_or(CfiError::BadExpression);
    let read = |addr: u64| mem.read_u64(addr).ok_or(CfiError::BadRead);
    for _ in 0..MAX_STEPS {
        if c.pos() >= end {
            return if sp == 0 {
                Err(CfiError::BadExpression)
            } else {
                Ok(pop!())
            };
        }
        let op = c.u8()?;
        match op {
            0x03 => push!(c.u64()?),
            0x06 => {
                let a = pop!();
                push!(read(a)?)
            }
            0x08 => push!(c.u8()? as u64),
            0x09 => push!(c.u8()? as i8 as i64 as u64),
            0x0a => push!(c.u16()? as u64),
            0x0b => push!(c.u16()? as i16 as i64 as u64),
            0x0c => push!(c.u32()? as u64),
            0x0d => push!(c.u32()? as i32 as i64 as u64),
            0x0e | 0x0f => push!(c.u64()?),
            0x10 => push!(c.uleb()?),
            0x11 => push!(c.sleb()? as u64),
            0x12 => {
                let a = pop!();
                push!(a);
                push!(a)
            }
            0x13 => {
                let _ = pop!();
            }
            0x14 => {
                let v = *stack
                    .get(sp.checked_sub(2).ok_or(CfiError::BadExpression)?)
                    .ok_or(CfiError::BadExpression)?;
                push!(v)
            }
            0x15 => {
                let i = c.u8()? as usize;
                let v = *stack
                    .get(sp.checked_sub(1 + i).ok_or(CfiError::BadExpression)?)
                    .ok_or(CfiError::BadExpression)?;
                push!(v)
            }
            0x16 => {
                let (a, b) = (pop!(), pop!());
                push!(a);
                push!(b)
            }
            0x17 => {
                let (a, b, c3) = (pop!(), pop!(), pop!());
                push!(a);
                push!(c3);
                push!(b)
            }
            0x19 => {
                let a = pop!() as i64;
                push!(a.unsigned_abs())
            }
            0x1a..=0x1e | 0x21 | 0x22 | 0x24..=0x27 | 0x29..=0x2e => {
                let (b, a) = (pop!(), pop!());
                let (sa, sb) = (a as i64, b as i64);
                push!(match op {
                    0x1a => a & b,
                    0x1b => sa.checked_div(sb).ok_or(CfiError::BadExpression)? as u64,
                    0x1c => a.wrapping_sub(b),
                    0x1d => a.checked_rem(b).ok_or(CfiError::BadExpression)?,
                    0x1e => a.wrapping_mul(b),
                    0x21 => a | b,
                    0x22 => a.wrapping_add(b),
                    0x24 => a.checked_shl(b as u32).unwrap_or(0),
                    0x25 => a.checked_shr(b as u32).unwrap_or(0),
                    0x26 => sa
                        .checked_shr(b as u32)
                        .unwrap_or(if sa < 0 { -1 } else { 0 }) as u64,
                    0x27 => a ^ b,
                    0x29 => (sa == sb) as u64,
                    0x2a => (sa >= sb) as u64,
                    0x2b => (sa > sb) as u64,
                    0x2c => (sa <= sb) as u64,
                    0x2d => (sa < sb) as u64,
                    _ => (sa != sb) as u64,
                })
            }
            0x1f => {
                let a = pop!() as i64;
                push!(a.wrapping_neg() as u64)
            }
            0x20 => {
                let a = pop!();
                push!(!a)
            }
            0x23 => {
                let a = pop!();
                push!(a.wrapping_add(c.uleb()?))
            }
            0x28 | 0x2f => {
                let delta = c.u16()? as i16 as isize;
                let taken = op == 0x2f || pop!() != 0;
                if taken {
                    let to = c
                        .pos()
                        .checked_add_signed(delta)
                        .ok_or(CfiError::BadExpression)?;
                    if to < start || to > end {
                        return Err(CfiError::BadExpression);
                    }
                    c = sec.at(to);
                }
            }
            0x30..=0x4f => push!((op - 0x30) as u64),
            0x70..=0x8f => {
                let base = reg((op - 0x70) as u16)?;
                push!(base.wrapping_add(c.sleb()? as u64))
            }
            0x92 => {
                let r = u16::try_from(c.uleb()?).map_err(|_| CfiError::BadExpression)?;
                let base = reg(r)?;
                push!(base.wrapping_add(c.sleb()? as u64))
            }
            0x94 => {
                let size = c.u8()?;
                let a = pop!();
                let v = read(a)?;
                push!(match size {
                    1 => v & 0xff,
                    2 => v & 0xffff,
                    4 => v & 0xffff_ffff,
                    8 => v,
                    _ => return Err(CfiError::BadExpression),
                })
            }
            0x96 => {}
            _ => return Err(CfiError::BadExpression),
        }
    }
    Err(CfiError::BadExpression)
}
