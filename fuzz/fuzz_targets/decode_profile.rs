//! Profile decoding over arbitrary bytes: an error or a valid profile, never a panic; and a
//! profile that decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(profile) = vignette::Profile::decode(data) {
        assert_eq!(profile.encode(), data);
        for t in &profile.threads {
            for s in &t.samples {
                assert!(profile.stack_frames(s.stack).count() <= profile.stacks.len());
            }
        }
    }
});
