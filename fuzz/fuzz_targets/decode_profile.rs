//! Profile decoding over arbitrary bytes: an error or a valid profile, never a panic; and a
//! profile that decodes survives a re-encode unchanged. (The bytes themselves may differ:
//! postcard accepts non-minimal varints.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use vignette::Profile;

fuzz_target!(|data: &[u8]| {
    if let Ok(profile) = Profile::decode(data) {
        let again = Profile::decode(&profile.encode()).expect("a re-encoded profile decodes");
        assert!(again == profile, "re-encoding changed the profile");
        for t in &profile.threads {
            for s in &t.samples {
                assert!(profile.stack_frames(s.stack).count() <= profile.stacks.len());
            }
        }
    }
});
