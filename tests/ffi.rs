//! The C API: the header matches the exported functions, and a C program with threads and
//! known call chains profiles itself through the library; the tools then name its functions.
#![cfg(all(feature = "ffi", feature = "tools"))]

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

#[test]
fn a_c_program_profiles_itself() {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let target = tmp.join("ffi-target");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--manifest-path",
            &format!("{ROOT}/ffi/Cargo.toml"),
            "--target-dir",
        ])
        .arg(&target)
        .status()
        .unwrap();
    assert!(status.success(), "building the C library");
    let lib = target.join("release/libvignette.a");
    let exe = tmp.join("profile_threads");
    let out = Command::new("gcc")
        .args([
            "-O1",
            "-g",
            "-pthread",
            &format!("-I{ROOT}/include"),
            &format!("{ROOT}/examples/c/profile_threads.c"),
        ])
        .arg(&lib)
        .args(["-ldl", "-lm", "-o"])
        .arg(&exe)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
