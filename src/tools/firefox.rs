//! The Firefox Profiler's processed format (<https://profiler.firefox.com>, via the crate samply
//! uses): one process, a thread per profiled thread, samples at their capture times, labelled
//! samples in a category per label set.

use fxprof_processed_profile::{
    CategoryColor, CpuDelta, Frame, FrameFlags, FrameInfo, Profile as FxProfile,
    ReferenceTimestamp, SamplingInterval, Timestamp,
};

use super::resolve::Resolution;
use crate::{Clock, Profile};

/// Label sets that get a category of their own; more share one.
const MAX_LABEL_CATEGORIES: usize = 64;

/// Builds the Firefox Profiler document for `profile`, named `product`.
pub fn to_firefox(profile: &Profile, res: &Resolution, product: &str) -> serde_json::Value {
    let start =
        ReferenceTimestamp::from_millis_since_unix_epoch(profile.start_unix_ns as f64 / 1e6);
    // The application's own name, where it said it.
    let app = profile.app_name();
    let product = app.as_deref().unwrap_or(product);
    let mut fx = FxProfile::new(
        product,
        start,
        SamplingInterval::from_nanos(profile.interval_ns),
    );
    let fact = |k: &str| profile.system_fact(k);
    if let Some(os) = fact("os") {
        let parts = [Some(os), fact("os_version"), fact("arch")];
        let os: Vec<&str> = parts.into_iter().flatten().collect();
        fx.set_os_name(&os.join(" "));
    }
    let native = fx.add_category("Native", CategoryColor::Blue);
    // Labelled samples: a category per label set (the profiler colours and filters by it).
    let colors = [
        CategoryColor::Green,
        CategoryColor::Orange,
        CategoryColor::Purple,
        CategoryColor::Yellow,
        CategoryColor::Red,
        CategoryColor::LightBlue,
    ];
    let mut by_set = Vec::new();
    for set in 1..=profile.labels.sets.len().min(MAX_LABEL_CATEGORIES) as u32 {
        let name: Vec<String> = (profile.labels.of(set))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let color = colors[by_set.len() % colors.len()];
        by_set.push(fx.add_category(&name.join(" "), color));
    }
    let more = (profile.labels.sets.len() > MAX_LABEL_CATEGORIES)
        .then(|| fx.add_category("other labels", CategoryColor::Gray));
    let process = fx.add_process(
        product,
        profile.pid,
        Timestamp::from_nanos_since_reference(0),
    );
    for t in profile.threads.iter().filter(|t| !t.samples.is_empty()) {
        // Only the thread whose id is the process's is its main thread (Linux): the Firefox
        // Profiler shows a main thread under the process's name.
        let main = profile.pid != 0 && t.tid == profile.pid;
        let thread = fx.add_thread(
            process,
            t.tid,
            Timestamp::from_nanos_since_reference(0),
            main,
        );
        fx.set_thread_name(thread, if t.name.is_empty() { "thread" } else { &t.name });
        let mut us = 0u64;
        for s in &t.samples {
            us = us.saturating_add(s.dt_us);
            let category = match s.labels.checked_sub(1) {
                None => native,
                Some(i) => by_set.get(i as usize).copied().or(more).unwrap_or(native),
            };
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
