//! The Firefox Profiler's processed format (<https://profiler.firefox.com>, via the crate samply
//! uses): one process, a thread per profiled thread, samples at their capture times.

use fxprof_processed_profile::{
    CategoryColor, CpuDelta, Frame, FrameFlags, FrameInfo, Profile as FxProfile,
    ReferenceTimestamp, SamplingInterval, Timestamp,
};

use super::resolve::Resolution;
use crate::{Clock, Profile};

/// Builds the Firefox Profiler document for `profile`, named `product`.
pub fn to_firefox(profile: &Profile, res: &Resolution, product: &str) -> serde_json::Value {
    let start =
        ReferenceTimestamp::from_millis_since_unix_epoch(profile.start_unix_ns as f64 / 1e6);
    let mut fx = FxProfile::new(
        product,
        start,
        SamplingInterval::from_nanos(profile.interval_ns),
    );
    let category = fx.add_category("Native", CategoryColor::Blue);
    let process = fx.add_process(product, 0, Timestamp::from_nanos_since_reference(0));
    for (i, t) in profile
        .threads
        .iter()
        .enumerate()
        .filter(|(_, t)| !t.samples.is_empty())
    {
        let thread = fx.add_thread(
            process,
            t.tid,
            Timestamp::from_nanos_since_reference(0),
            i == 0,
        );
        fx.set_thread_name(thread, if t.name.is_empty() { "thread" } else { &t.name });
        let mut us = 0u64;
        for s in &t.samples {
            us = us.saturating_add(s.dt_us);
            let frames: Vec<FrameInfo> = res
                .stack(profile, s.stack)
                .into_iter()
                .map(|loc| FrameInfo {
                    frame: Frame::Label(fx.intern_string(&loc.function)),
                    category_pair: category.into(),
                    flags: FrameFlags::empty(),
                })
                .collect();
            let stack = fx.intern_stack_frames(thread, frames.into_iter());
            let cpu = match profile.clock {
                Clock::Cpu => {
                    CpuDelta::from_nanos((s.weight as u64).saturating_mul(profile.interval_ns))
                }
                Clock::Wall => CpuDelta::ZERO,
            };
            let weight = i32::try_from(s.weight).unwrap_or(i32::MAX);
            fx.add_sample(
                thread,
                Timestamp::from_nanos_since_reference(us.saturating_mul(1000)),
                stack,
                cpu,
                weight,
            );
        }
    }
    serde_json::to_value(&fx).unwrap_or(serde_json::Value::Null)
}
