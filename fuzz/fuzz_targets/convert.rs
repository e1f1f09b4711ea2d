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
    assert!(!tools::otlp::to_otlp(&p, &res).is_empty());
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
    // Labels: as root frames (the stacks stay valid and keep their weight), values, filters.
    let (framed, framed_res) = tools::labels::as_root_frames(&p, &res);
    Profile::decode(&framed.encode()).expect("labels as root frames keep the profile valid");
    assert_eq!(framed.sample_count(), p.sample_count());
    let _ = tools::collapsed::to_collapsed(&framed, &framed_res);
    for key in p.labels.keys.iter().take(4) {
        for (value, _) in tools::labels::values(&p, key).into_iter().take(4) {
            let f = tools::labels::LabelFilter {
                key: key.clone(),
                value,
            };
            assert!(tools::labels::filter(&p, &f).sample_count() > 0);
        }
    }
});
