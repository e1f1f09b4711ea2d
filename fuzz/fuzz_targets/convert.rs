//! Every converter over arbitrary decoded profiles: no panic, and the outputs parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vignette::tools::{self, SymbolStore};
use vignette::Profile;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Profile::decode(data) else { return };
    let res = tools::resolve(&p, &mut SymbolStore::new(&[])).expect("no stores, no errors");
    assert_eq!(res.frames.len(), p.frames.len());
    let doc = tools::speedscope::to_speedscope(&p, &res, "fuzz");
    serde_json::to_vec(&doc).expect("speedscope serializes");
    let _ = tools::collapsed::to_collapsed(&p, &res);
    assert!(!tools::pprof::to_pprof(&p, Some(&res)).is_empty());
    assert!(!tools::pprof::to_pprof(&p, None).is_empty());
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
    if p.sample_count() < 2000 {
        let _ = tools::svg::to_svg(&p, &res, "fuzz");
    }
});
