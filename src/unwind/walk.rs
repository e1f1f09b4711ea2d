//! The hybrid walker: CFI where an FDE covers the address, frame pointers where none does.

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
    super::walk_frames(regs, stack, frames, |regs, lookup, _, stack| {
        step(regs, lookup, stack, code, cache)
    })
}

/// Unwinds one frame whose code is at `lookup`: `regs` become the caller's.
fn step<S, C>(
    regs: &mut Regs,
    lookup: u64,
    stack: &S,
    code: &C,
    cache: Option<&RuleCache>,
) -> Result<Step, EndReason>
where
    S: StackReader + ?Sized,
    C: CodeLookup + ?Sized,
{
    if let Some(rule) = cache.and_then(|c| c.get(lookup)) {
        return apply_rule(rule, regs, stack);
    }
    let Some(sections) = code.sections(lookup) else {
        return fp::step_without_unwind_info(regs, stack);
    };
    // The rule compiled when the module was copied, if it holds one.
    match sections.compiled.and_then(|c| c.lookup(lookup)) {
        Some(compiled::NO_FDE) => return fp::step_without_unwind_info(regs, stack),
        Some(compiled::INTERPRET) | None => {}
        Some(packed) => {
            let rule = Rule::unpack(packed);
            if let Some(cache) = cache {
                cache.insert(lookup, rule);
            }
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
