//! Profiles encode, decode and survive bad bytes with clear errors.

mod common;

use common::{profiler_lock, workload};
use vignette::{Error, Profile, Profiler, Target};

/// A real profile: a few on-demand samples of this process.
fn captured() -> Vec<u8> {
    captured_with(Profiler::builder())
}

/// [`captured`], by a profiler made by `builder`.
fn captured_with(builder: vignette::Builder) -> Vec<u8> {
    let _g = profiler_lock();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers = workload::spawn_workers(2, &stop);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mut profiler = builder.build().unwrap();
    for _ in 0..30 {
        profiler.sample_once(Target::AllThreads).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    workers.into_iter().for_each(|w| {
        w.join().unwrap();
    });
    let capture = profiler.stop().unwrap();
    let mut buf = vec![0u8; 16];
    let Err(Error::BufferTooSmall { needed }) = capture.encode_into(&mut buf) else {
        panic!("a 16-byte buffer cannot hold a profile");
    };
    assert_eq!(needed, capture.encoded_len());
    let bytes = capture.to_vec();
    assert_eq!(bytes.len(), needed);
    let mut written = Vec::new();
    assert_eq!(capture.write_to(&mut written).unwrap(), needed);
    assert_eq!(written, bytes);
    bytes
}

#[test]
fn round_trip_is_exact() {
    let bytes = captured();
    let p = Profile::decode(&bytes).unwrap();
    assert_eq!(p.encode(), bytes, "owned and streaming encoders agree");
    assert!(p.sample_count() >= 90);
    assert!(p.threads.iter().any(|t| t.name == "worker-0"));
    assert!(p.modules.iter().any(|m| m.name.starts_with("libc.so")));
    let exe = common::this_executable(&p);
    assert_eq!(exe.debug_id_string().len(), 33);
    assert_eq!(exe.code_id_string().len(), 40);
    // Each sample's stack resolves to frames.
    for t in &p.threads {
        for s in &t.samples {
            assert!(p.stack_frames(s.stack).count() >= 1);
        }
    }
    assert!(p.start_unix_ns > 0 && p.interval_ns == 1_000_000);
}

#[test]
fn profiles_carry_file_names_not_folders_unless_asked() {
    let exe = std::env::current_exe().unwrap();
    let folder = exe.parent().unwrap().to_str().unwrap().to_string();
    let bytes = captured();
    let p = Profile::decode(&bytes).unwrap();
    assert!(p.modules.len() > 2);
    for m in &p.modules {
        assert_eq!(m.path, "", "{}: no path by default", m.name);
        assert!(!m.name.contains('/'), "{}: a file name", m.name);
    }
    let found = bytes.windows(folder.len()).any(|w| w == folder.as_bytes());
    assert!(!found, "the profile's bytes name no folder ({folder})");

    let p = Profile::decode(&captured_with(Profiler::builder().module_paths(true))).unwrap();
    assert_eq!(common::this_executable(&p).path, exe.to_str().unwrap());
    let libc = p
        .modules
        .iter()
        .find(|m| m.name.starts_with("libc.so"))
        .unwrap();
    assert!(libc.path.starts_with('/') && libc.path.ends_with(&libc.name));
}

#[test]
fn bad_bytes_give_clear_errors() {
    let bytes = captured();
    assert_eq!(Profile::decode(b"").unwrap_err(), Error::Truncated);
    assert_eq!(Profile::decode(b"VIGN").unwrap_err(), Error::Truncated);
    assert_eq!(
        Profile::decode(b"{\"json\": 1}").unwrap_err(),
        Error::BadMagic
    );
    // Every truncation is reported as such.
    for len in 0..bytes.len() {
        assert_eq!(
            Profile::decode(&bytes[..len]).unwrap_err(),
            Error::Truncated,
            "cut at {len}"
        );
    }
    // A future version is refused with both versions named.
    let mut future = bytes.clone();
    future[8] = vignette::FORMAT_VERSION as u8 + 1;
    let err = Profile::decode(&future).unwrap_err();
    assert_eq!(
        err,
        Error::UnsupportedVersion {
            found: vignette::FORMAT_VERSION + 1,
            supported: vignette::FORMAT_VERSION
        }
    );
    assert!(err.to_string().contains("upgrade"));
    // Trailing garbage.
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(Profile::decode(&long), Err(Error::Corrupt(_))));
    // Random damage never panics.
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..3000 {
        let mut b = bytes.clone();
        for _ in 0..1 + (x % 4) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = 9 + (x as usize % (b.len() - 9));
            b[i] ^= (x >> 32) as u8 | 1;
        }
        let _ = Profile::decode(&b);
    }
}

#[test]
fn version_3_profiles_decode_with_their_modules_as_elf() {
    // tests/fixtures/demo-v3.vignette: `scripts/demo 2 4 profiles` output of format version 3.
    let v3 = std::fs::read(common::fixture("demo-v3.vignette")).unwrap();
    assert_eq!(u16::from(v3[8]), 3, "the fixture is a version-3 profile");
    let p = Profile::decode(&v3).unwrap();
    assert!(p.sample_count() > 1000);
    assert!(!p.modules.is_empty());
    for m in &p.modules {
        assert_eq!(m.debug_file, m.name);
        assert_eq!(m.format, vignette::ObjectFormat::Elf);
    }
    let v4 = p.encode();
    assert_eq!(v4[8], vignette::FORMAT_VERSION as u8);
    assert_eq!(Profile::decode(&v4).unwrap(), p);
}

#[test]
fn version_1_profiles_still_decode() {
    // tests/fixtures/demo-v1.vignette: `scripts/demo` output written by format version 1.
    let v1 = std::fs::read(common::fixture("demo-v1.vignette")).unwrap();
    assert_eq!(u16::from(v1[8]), 1, "the fixture is a version-1 profile");
    let p = Profile::decode(&v1).unwrap();
    assert_eq!(p.sample_count(), 3874);
    assert!(p
        .threads
        .iter()
        .all(|t| t.samples.iter().all(|s| s.weight >= 1)));
    let v2 = p.encode();
    assert_eq!(v2[8], vignette::FORMAT_VERSION as u8);
    assert_eq!(
        Profile::decode(&v2).unwrap(),
        p,
        "rewritten as the current version"
    );
    let per_sample = |b: &[u8]| b.len() as f64 / p.sample_count() as f64;
    println!(
        "v1 {:.2} bytes/sample, v2 {:.2}",
        per_sample(&v1),
        per_sample(&v2)
    );
    assert!(
        v2.len() * 10 < v1.len() * 8,
        "the sample stream saves over 20%"
    );
}

#[test]
fn version_5_profiles_decode_with_no_backend_recorded() {
    // tests/fixtures/labelled-v5.vignette: a small labelled profile written by format
    // version 5.
    let v5 = std::fs::read(common::fixture("labelled-v5.vignette")).unwrap();
    assert_eq!(u16::from(v5[8]), 5, "the fixture is a version-5 profile");
    let p = Profile::decode(&v5).unwrap();
    assert_eq!(p.backend, vignette::Backend::Unrecorded);
    assert!(!p.labels.sets.is_empty(), "the labels survive");
    assert!(p.sample_count() > 0);
    let v6 = p.encode();
    assert_eq!(v6[8], vignette::FORMAT_VERSION as u8);
    assert_eq!(Profile::decode(&v6).unwrap(), p);
}

#[test]
fn version_6_and_7_profiles_decode_and_mach_o_modules_round_trip() {
    let v5 = std::fs::read(common::fixture("labelled-v5.vignette")).unwrap();
    let p = Profile::decode(&v5).unwrap();
    // Versions 6 and 7 are version 5's layout and a backend after it (0: unrecorded).
    for version in [6, 7] {
        let mut old = v5.clone();
        old[8] = version;
        old.push(0);
        assert_eq!(Profile::decode(&old).unwrap(), p, "version {version}");
    }
    assert_eq!(p.encode()[8], vignette::FORMAT_VERSION as u8);
    // A Mach-O module keeps its format (version-6 readers refuse the file by its version).
    let mut mac = p.clone();
    mac.modules[0].format = vignette::ObjectFormat::MachO;
    let bytes = mac.encode();
    let back = Profile::decode(&bytes).unwrap();
    assert_eq!(back.modules[0].format, vignette::ObjectFormat::MachO);
    assert_eq!(back, mac);
}

/// Every profile checked in (the fuzz seeds, the examples in `profiles/`) decodes: a format
/// change that forgot its version bump, or a seed left in a layout no decoder reads, fails
/// here (`scripts/make-seeds` regenerates the seeds made by the current code).
#[test]
fn every_checked_in_profile_decodes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for dir in [
        "profiles",
        "fuzz/seeds/decode_profile",
        "fuzz/seeds/convert",
    ] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "vignette") {
                let bytes = std::fs::read(&path).unwrap();
                if let Err(e) = Profile::decode(&bytes) {
                    panic!("{}: {e}", path.display());
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 8, "{checked} profiles");
}
