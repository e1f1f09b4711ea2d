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
