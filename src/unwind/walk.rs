//! The hybrid walker: CFI where an FDE covers the address, frame pointers where none does.

use core::cell::Cell;

use super::cfi::{self, ModuleSections};
use super::{compiled, fp, EndReason, Regs, StackReader, Step};
use super::{Rule, RuleCache};

/// Where the unwind sections for an address are.
pub trait CodeLookup {
    /// The sections of the module containing `avma`, or `None` if no known module does.
    ///
    /// # Signal safety
    /// Implementations used by the sampler are async-signal-safe.
    fn sections(&self, avma: u64) -> Option<ModuleSections<'_>>;
}

/// No modules: every frame falls back to frame pointers.
pub struct NoCode;

impl CodeLookup for NoCode {
    fn sections(&self, _: u64) -> Option<ModuleSections<'_>> {
        None
    }
}

/// Unwinds from `regs` into `frames` (see [`crate::unwind`] for the address convention):
/// CFI where an FDE covers the address, frame pointers where none does, rules from `cache`
/// when present. Returns the number of frames and how the walk ended.
///
/// # Signal safety
/// Async-signal-safe if `stack` and `code` are: no allocation, no locks, no panics, at most
/// `frames.len()` steps.
pub fn walk<S, C>(
    regs: &Regs,
    stack: &mut S,
    code: &C,
    cache: Option<&RuleCache>,
    frames: &mut [u64],
) -> (usize, EndReason)
where
    S: StackReader + ?Sized,
    C: CodeLookup + ?Sized,
{
    walk_above(regs, stack, code, cache, frames, 0)
}

/// [`walk`], leaving out the frames whose stack pointer is at or below `above_sp`: a thread
/// walking its own stack from `regs` it read itself ([`crate::alloc`]) records only the
/// callers of the function whose frame holds `above_sp`.
///
/// # Signal safety
/// Async-signal-safe, as [`walk`].
pub fn walk_above<S, C>(
    regs: &Regs,
    stack: &mut S,
    code: &C,
    cache: Option<&RuleCache>,
    frames: &mut [u64],
    above_sp: u64,
) -> (usize, EndReason)
where
    S: StackReader + ?Sized,
    C: CodeLookup + ?Sized,
{
    let compact = Compact {
        cache,
        used: Cell::new(false),
        stale: Cell::new(false),
    };
    let walked = super::walk_frames(regs, stack, frames, above_sp, |regs, lookup, _, stack| {
        step(regs, lookup, stack, code, Some(&compact))
    });
    if !compact.stale.get() {
        return walked;
    }
    // A frame's CFA is kept in a register that a compact rule of a frame below it did not
    // restore (glibc's lazy-binding trampoline keeps it in rbx, which `_dl_fixup` saves):
    // walk again interpreting every frame's CFI, which restores every register.
    super::walk_frames(regs, stack, frames, above_sp, |regs, lookup, _, stack| {
        step(regs, lookup, stack, code, None)
    })
}

/// Compact rules (cached, or compiled ahead) for one walk: they restore only the stack
/// pointer, the frame pointer and the return address.
struct Compact<'a> {
    cache: Option<&'a RuleCache>,
    /// A compact rule unwound a frame of this walk.
    used: Cell<bool>,
    /// A later frame's CFA was in another register, which that may have left stale.
    stale: Cell<bool>,
}

/// Unwinds one frame whose code is at `lookup`: `regs` become the caller's. Without
/// `compact`, every frame's CFI is interpreted.
fn step<S, C>(
    regs: &mut Regs,
    lookup: u64,
    stack: &S,
    code: &C,
    compact: Option<&Compact<'_>>,
) -> Result<Step, EndReason>
where
    S: StackReader + ?Sized,
    C: CodeLookup + ?Sized,
{
    let cache = compact.and_then(|c| c.cache);
    if let Some(rule) = cache.and_then(|c| c.get(lookup)) {
        compact.inspect(|c| c.used.set(true));
        return apply_rule(rule, regs, stack);
    }
    let Some(sections) = code.sections(lookup) else {
        return fp::step_without_unwind_info(regs, stack);
    };
    // The rule compiled when the module was copied, if it holds one.
    let compiled = sections.compiled.filter(|_| compact.is_some());
    match compiled.and_then(|c| c.lookup(lookup)) {
        Some(compiled::NO_FDE) => return fp::step_without_unwind_info(regs, stack),
        Some(compiled::INTERPRET) | None => {}
        Some(packed) => {
            let rule = Rule::unpack(packed);
            if let Some(cache) = cache {
                cache.insert(lookup, rule);
            }
            compact.inspect(|c| c.used.set(true));
            return apply_rule(rule, regs, stack);
        }
    }
    let Some(fde) = cfi::find_fde(&sections, lookup)? else {
        return fp::step_without_unwind_info(regs, stack);
    };
    // The kernel's signal trampoline: its CFI (aarch64's vDSO) describes only the frame
    // record, so the interrupted registers come from the signal frame itself.
    if fde.cie.signal_frame {
        if let Some(step) = super::arch::signal_frame_step(regs, stack) {
            return step.ok_or(EndReason::OutOfBounds);
        }
    }
    let eh_frame = sections.eh_frame.ok_or(EndReason::BadUnwindInfo)?;
    let row = cfi::program::row_at(eh_frame, &fde, lookup)?;
    if let (Some(c), cfi::CfaRule::RegOffset { reg, .. }) = (compact, row.cfa) {
        if c.used.get() && reg != Regs::SP && reg != Regs::FP {
            c.stale.set(true);
            return Err(EndReason::BadUnwindInfo);
        }
    }
    if let (Some(cache), Some(rule)) = (cache, Rule::from_row(&fde, &row)) {
        cache.insert(lookup, rule);
    }
    Ok(cfi::apply_row(eh_frame, &fde, &row, regs, stack)?)
}

/// Unwinds one frame by a compact rule (from the cache or compiled ahead).
///
/// # Signal safety
/// Async-signal-safe.
fn apply_rule<S: StackReader + ?Sized>(
    rule: Rule,
    regs: &mut Regs,
    stack: &S,
) -> Result<Step, EndReason> {
    match rule {
        Rule::Root => Ok(Step::Root),
        rule if rule.apply(regs, stack) => Ok(Step::Caller {
            signal_frame: false,
        }),
        _ => Err(EndReason::OutOfBounds),
    }
}
