//! Resolved profiles (`vignette resolve -o`) from anywhere: decoding validates before anything
//! walks the stack tree, and every converter then runs without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vignette::tools::{self, ResolvedProfile};

fuzz_target!(|data: &[u8]| {
    let Some(Ok(resolved)) = ResolvedProfile::decode(data, "fuzz") else {
        return;
    };
    let (p, res) = resolved.into_parts();
    let doc = tools::speedscope::to_speedscope(&p, &res, "fuzz");
    serde_json::to_vec(&doc).expect("speedscope serializes");
    let _ = tools::collapsed::to_collapsed(&p, &res);
    assert!(!tools::pprof::to_pprof(&p, Some(&res)).is_empty());
    let _ = tools::firefox::to_firefox(&p, &res, "fuzz");
    for inlined in [false, true] {
        let options = tools::report::Options {
            per_thread: true,
            inlined,
            limit: 5,
            ..Default::default()
        };
        let _ = tools::report::report(&p, &res, &options);
    }
});
