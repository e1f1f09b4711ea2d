//! The C API: the header matches the exported functions, and a C program with threads and
//! known call chains profiles itself through the library; the tools then name its functions.
#![cfg(all(feature = "ffi", feature = "tools"))]

mod common;

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn the_header_declares_every_exported_function_with_docs() {
    let header = std::fs::read_to_string(Path::new(ROOT).join("include/vignette.h")).unwrap();
    let source = std::fs::read_to_string(Path::new(ROOT).join("src/ffi.rs")).unwrap();
    let exported: Vec<&str> = source
        .lines()
        .filter_map(|l| l.split("extern \"C\" fn ").nth(1))
        .map(|rest| rest.split('(').next().unwrap())
        .collect();
    assert!(exported.len() >= 10, "{exported:?}");
    for name in &exported {
        let decl = header
            .lines()
            .position(|l| l.contains(&format!("{name}(")) && l.trim_end().ends_with(");"))
            .unwrap_or_else(|| panic!("{name} is not declared"));
        let before = header.lines().take(decl).collect::<Vec<_>>().join("\n");
        assert!(
            before.trim_end().ends_with("*/"),
            "{name} has no doc comment"
        );
    }
    for constant in source.lines().filter_map(|l| l.strip_prefix("pub const ")) {
        let name = constant.split(':').next().unwrap();
        let value = constant.rsplit("= ").next().unwrap().trim_end_matches(';');
        assert!(
            header.contains(&format!("#define {name} {value}")),
            "{name} = {value} missing from the header"
        );
    }
}

/// Builds `examples/c/<name>.c` against the C library; returns the program.
fn build_c_example(name: &str) -> std::path::PathBuf {
    common::c_program("gcc", name, &[&format!("examples/c/{name}.c")])
}

#[test]
fn a_c_program_profiles_itself() {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let exe = build_c_example("profile_threads");
    let profile_path = tmp.join("c.vignette");
    let run = Command::new(&exe).arg(&profile_path).output().unwrap();
    let said = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        said.contains("second profiler refused: another vignette Profiler exists"),
        "{said}"
    );

    let p = vignette::tools::read_profile(&profile_path).unwrap();
    // The backend the C API reports is the one the profile records.
    let code = p.backend as u8;
    assert!(code > 0, "a backend is recorded");
    assert!(said.contains(&format!("backend {code}\n")), "{said}");
    let busy = p.threads.iter().filter(|t| t.samples.len() > 50).count();
    assert!(
        busy >= 3,
        "three worker threads sampled: {:?}",
        p.threads
            .iter()
            .map(|t| t.samples.len())
            .collect::<Vec<_>>()
    );
    let res = vignette::tools::resolve(&p, &mut vignette::tools::SymbolStore::new(&[exe])).unwrap();
    let mut chains = 0;
    for t in &p.threads {
        for s in &t.samples {
            let names: Vec<&str> = res
                .stack(&p, s.stack)
                .iter()
                .map(|l| l.function.as_str())
                .collect();
            let at = |f: &str| names.iter().position(|n| *n == f);
            if let (Some(w), Some(o), Some(i)) =
                (at("worker_main"), at("compute_outer"), at("compute_inner"))
            {
                chains += (w < o && o < i) as usize;
            }
        }
    }
    assert!(
        chains * 10 >= p.sample_count() * 9,
        "{chains} of {} samples show worker_main -> compute_outer -> compute_inner",
        p.sample_count()
    );
}

/// Rotation, a flight recorder, delivery, a heartbeat and a manual trigger through the C API:
/// the chunks follow on, and the hang's window names the hung thread, stuck in its function.
#[test]
fn a_c_program_rotates_and_catches_a_hang() {
    let exe = build_c_example("telemetry");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c-telemetry");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let run = Command::new(&exe).arg(&dir).output().unwrap();
    let said = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let read = |name: &str| vignette::tools::read_profile(&dir.join(name)).unwrap();
    let (c0, c1) = (read("chunk-0.vignette"), read("chunk-1.vignette"));
    assert_eq!((c0.chunk.sequence, c1.chunk.sequence), (0, 1));
    // The C labels: chunk i's busy main thread worked under phase=rotating chunk=i.
    for (i, c) in [&c0, &c1].into_iter().enumerate() {
        let (mut labelled, mut all) = (0, 0);
        for s in c.threads.iter().flat_map(|t| &t.samples) {
            all += 1;
            let got: Vec<(String, String)> = c
                .labels
                .of(s.labels)
                .map(|(k, v)| (k.into(), v.into_owned()))
                .collect();
            if !got.is_empty() {
                assert_eq!(
                    got,
                    [
                        ("phase".into(), "rotating".into()),
                        ("chunk".into(), i.to_string())
                    ]
                );
                labelled += 1;
            }
        }
        assert!(
            labelled * 10 >= all * 8 && labelled > 30,
            "chunk {i}: {labelled} of {all} labelled"
        );
    }
    assert_eq!(c0.start_unix_ns + c0.duration_ns, c1.start_unix_ns);

    let hung: u32 = said
        .lines()
        .find_map(|l| l.strip_prefix("hung thread: "))
        .expect("the program names its hung thread")
        .parse()
        .unwrap();
    let mut store = vignette::tools::SymbolStore::new(&[exe]);
    let (mut hangs, mut manual) = (0, 0);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("window-")
        {
            continue;
        }
        let p = vignette::tools::read_profile(&path).unwrap();
        let t = p.chunk.trigger.clone().expect("delivered on a trigger");
        assert_eq!(p.chunk.window_ns, 500_000_000);
        match t.kind {
            vignette::TriggerKind::Manual => {
                assert_eq!(t.note, "from C");
                manual += 1;
            }
            vignette::TriggerKind::Hang => {
                assert_eq!((t.tid, t.note.as_str()), (hung, "worker loop"));
                let res = vignette::tools::resolve(&p, &mut store).unwrap();
                let thread = p.threads.iter().find(|th| th.tid == hung).unwrap();
                let last: Vec<_> = thread.samples.iter().rev().take(50).collect();
                let stuck = last
                    .iter()
                    // Innermost last.
                    .filter(|s| {
                        (res.stack(&p, s.stack).last())
                            .is_some_and(|l| l.function == "stuck_in_here")
                    })
                    .count();
                assert!(stuck * 10 >= last.len() * 9, "{stuck} of {}", last.len());
                hangs += 1;
            }
            k => panic!("unexpected trigger {k:?}"),
        }
    }
    assert_eq!(
        (hangs, manual),
        (1, 1),
        "one hang (once per silence) and one manual"
    );
}

/// The config grows without breaking programs compiled against an older header: one that
/// knows only the first fields (its `size` says so) gets the defaults of the rest; one that
/// sets `module_paths` gets full paths; a config never filled is refused with a reason.
#[test]
fn the_config_grows_at_its_end_and_older_callers_keep_working() {
    use std::mem::{offset_of, size_of};
    use vignette::ffi::*;
    let v1 = offset_of!(vignette_config, module_paths);
    let profile_of = |config: &vignette_config| -> vignette::Profile {
        let mut p = std::ptr::null_mut();
        // SAFETY: a valid config and out pointer; the profiler is destroyed below.
        unsafe {
            assert_eq!(vignette_create(config, &mut p), VIGNETTE_OK);
            assert_eq!(
                vignette_sample_once(p, 0, std::ptr::null_mut()),
                VIGNETTE_OK
            );
            assert_eq!(vignette_stop(p), VIGNETTE_OK);
            let mut needed = 0;
            vignette_write_buffer(p, std::ptr::null_mut(), 0, &mut needed);
            let mut buf = vec![0u8; needed];
            let mut written = 0;
            assert_eq!(
                vignette_write_buffer(p, buf.as_mut_ptr(), buf.len(), &mut written),
                VIGNETTE_OK
            );
            vignette_destroy(p);
            vignette::Profile::decode(&buf[..written]).unwrap()
        }
    };
    let has_paths = |p: &vignette::Profile| p.modules.iter().any(|m| !m.path.is_empty());
    // An older program: its struct ends before `module_paths`, whatever follows in memory.
    // SAFETY: a zeroed config is valid memory; init writes only `v1` bytes of it.
    let mut old: vignette_config = unsafe { std::mem::zeroed() };
    old.module_paths = 7;
    // SAFETY: `old` has at least `v1` writable bytes.
    assert_eq!(unsafe { vignette_config_init(&mut old, v1) }, VIGNETTE_OK);
    assert_eq!((old.size as usize, old.frequency_hz), (v1, 1000));
    assert_eq!(old.module_paths, 7, "past its size, nothing written");
    assert!(
        !has_paths(&profile_of(&old)),
        "nor read: the default, no paths"
    );
    // The current header's program asks for paths.
    // SAFETY: as above, the whole struct.
    let mut now: vignette_config = unsafe { std::mem::zeroed() };
    // SAFETY: `now` is a whole config.
    let status = unsafe { vignette_config_init(&mut now, size_of::<vignette_config>()) };
    assert_eq!(status, VIGNETTE_OK);
    now.module_paths = 1;
    assert!(has_paths(&profile_of(&now)));
    // Never filled, or too small: refused, saying why.
    // SAFETY: as above.
    let zero: vignette_config = unsafe { std::mem::zeroed() };
    let mut p = std::ptr::null_mut();
    // SAFETY: valid pointers.
    let status = unsafe { vignette_create(&zero, &mut p) };
    assert_eq!(status, VIGNETTE_ERR_INVALID_ARGUMENT);
    // SAFETY: the message is a NUL-terminated string.
    let why = unsafe { std::ffi::CStr::from_ptr(vignette_last_error()) };
    assert!(
        why.to_string_lossy().contains("vignette_config_default"),
        "{why:?}"
    );
    // SAFETY: valid pointer, a size too small for any config.
    let status = unsafe { vignette_config_init(&mut now, 8) };
    assert_eq!(status, VIGNETTE_ERR_INVALID_ARGUMENT);
    // The overhead budget came next: a program compiled before it leaves whatever follows
    // `module_paths` unread; one that sets it out of range is refused.
    let v2 = offset_of!(vignette_config, max_overhead_percent);
    let create = |config: &vignette_config| {
        let mut p = std::ptr::null_mut();
        // SAFETY: a valid config and out pointer; the profiler is destroyed right after.
        unsafe {
            let status = vignette_create(config, &mut p);
            if status == VIGNETTE_OK {
                vignette_destroy(p);
            }
            status
        }
    };
    // SAFETY: a zeroed config is valid memory; init writes `v2` bytes of it.
    let mut older: vignette_config = unsafe { std::mem::zeroed() };
    older.max_overhead_percent = 500.0;
    // SAFETY: `older` has at least `v2` writable bytes.
    assert_eq!(unsafe { vignette_config_init(&mut older, v2) }, VIGNETTE_OK);
    assert_eq!(create(&older), VIGNETTE_OK);
    now.max_overhead_percent = 500.0;
    assert_eq!(
        // SAFETY: `now` is a whole config.
        unsafe { vignette_config_init(&mut now, size_of::<vignette_config>()) },
        VIGNETTE_OK
    );
    assert_eq!(now.max_overhead_percent, 0.0, "no budget by default");
    now.max_overhead_percent = 500.0;
    assert_eq!(create(&now), VIGNETTE_ERR_CONFIG);
    now.max_overhead_percent = 1.0;
    assert_eq!(create(&now), VIGNETTE_OK);
}
