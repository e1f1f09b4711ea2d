//! Symbols from servers, against real ones on 127.0.0.1: a static HTTP Breakpad store (a small
//! Python server that also answers 404, 500, a truncated body and a `.sym` for another debug
//! ID) and elfutils' `debuginfod` indexing a folder. What is fetched is cached: a second run
//! asks the servers nothing. Needs python3 and debuginfod (`.ci/run` installs debuginfod).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vignette::{Frame, Module, ObjectFormat, Profile, Sample, StackNode, Thread};

fn tmp(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("remote")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vignette"))
        .args(args)
        .env("DEBUGINFOD_URLS", "")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Kills the child when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "{what} did not come up in a minute"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn http_status(url: &str) -> Option<u16> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, urllib.request\ntry:\n print(urllib.request.urlopen(sys.argv[1]).status)\nexcept urllib.error.HTTPError as e:\n print(e.code)\nexcept Exception:\n print(0)",
            url,
        ])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// A one-module profile: `module`, one frame at `address` in it, sampled once.
fn profile(modules: Vec<Module>, addresses: &[u64]) -> Profile {
    let frames: Vec<Frame> = addresses
        .iter()
        .enumerate()
        .map(|(i, &address)| Frame {
            module: i as u32 + 1,
            address,
        })
        .collect();
    let stacks = (0..frames.len() as u32)
        .map(|frame| StackNode { parent: 0, frame })
        .collect();
    let samples = (0..frames.len() as u32)
        .map(|stack| Sample {
            dt_us: 1000,
            stack,
            weight: 1,
            end: vignette::EndReason::Root,
            labels: 0,
        })
        .collect();
    Profile {
        start_unix_ns: 1_700_000_000_000_000_000,
        duration_ns: 1_000_000_000,
        clock: vignette::Clock::Cpu,
        interval_ns: 1_000_000,
        max_frames: 128,
        modules,
        frames,
        stacks,
        threads: vec![Thread {
            tid: 1,
            name: "main".into(),
            samples,
        }],
        lost: vignette::Lost::default(),
        chunk: Default::default(),
        labels: Default::default(),
        backend: Default::default(),
        metadata: Vec::new(),
        system: Vec::new(),
        process_cpu_ns: 0,
        pid: 0,
        rates: Vec::new(),
        jit: Vec::new(),
        heap: None,
    }
}

fn elf_module(name: &str, debug_id: &str, code_id: Vec<u8>) -> Module {
    let guid: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&debug_id[i * 2..i * 2 + 2], 16).unwrap())
        .collect();
    Module {
        name: name.into(),
        path: String::new(),
        start_avma: 0x1000,
        end_avma: 0x100_0000,
        base_avma: 0x1000,
        code_id,
        debug_id: guid.try_into().unwrap(),
        age: u32::from_str_radix(&debug_id[32..], 16).unwrap(),
        debug_file: name.into(),
        format: ObjectFormat::Elf,
    }
}

/// The first FUNC of a `.sym` file: its address and name.
fn first_func(sym: &str) -> (u64, String) {
    let l = sym.lines().find(|l| l.starts_with("FUNC ")).unwrap();
    let f: Vec<&str> = l.splitn(5, ' ').collect();
    (u64::from_str_radix(f[1], 16).unwrap(), f[4].to_string())
}

/// The `.sym` vignette writes for fixture `binary`: (debug ID, text).
fn sym_of(binary: &str) -> (String, String) {
    // Tests run in parallel: each call gets a folder of its own.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let store = tmp(&format!("sym-{binary}-{n}"));
    let (ok, out, err) = cli(&[
        "symbols",
        common::fixture(binary).to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ]);
    assert!(ok, "{out}{err}");
    let dir = std::fs::read_dir(store.join(binary))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let id = dir.file_name().to_str().unwrap().to_string();
    let text = std::fs::read_to_string(dir.path().join(format!("{binary}.sym"))).unwrap();
    (id, text)
}

/// A static server over `root` that logs each request path to `log`, answers 500 for paths
/// with `fail` in them, cuts bodies short for paths with `trunc` and announces 10 GiB for
/// paths with `huge`.
const SERVER: &str = r#"
import http.server, sys, os
root, log = sys.argv[2], sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        with open(log, "a") as f: f.write(self.path + "\n")
        if "fail" in self.path:
            self.send_response(500); self.end_headers(); return
        if "huge" in self.path:
            self.send_response(200)
            self.send_header("Content-Length", str(10 << 30))
            self.end_headers()
            self.wfile.write(b"MODULE " * 1000)
            return
        p = os.path.join(root, self.path.lstrip("/"))
        if not os.path.isfile(p):
            self.send_response(404); self.end_headers(); return
        data = open(p, "rb").read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2] if "trunc" in self.path else data)
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

fn requests(log: &Path) -> usize {
    std::fs::read_to_string(log).map_or(0, |s| s.lines().count())
}

#[test]
fn a_breakpad_store_over_http_serves_good_and_bad_answers_and_is_cached() {
    let dir = tmp("breakpad");
    let (root, log, cache) = (
        dir.join("root"),
        dir.join("requests.log"),
        dir.join("cache"),
    );
    // Module "clones": served gzipped. "clones-cpp": its path serves clones' .sym (another
    // debug ID). "trunc.so": a cut-off body. "fail.so": HTTP 500. "gone.so": 404.
    let (clones_id, clones_sym) = sym_of("clones");
    let (cpp_id, _) = sym_of("clones-cpp");
    let put = |rel: &str, bytes: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, clones_sym.as_bytes()).unwrap();
    put(
        &format!("clones/{clones_id}/clones.sym"),
        &gz.finish().unwrap(),
    );
    put(
        &format!("clones-cpp/{cpp_id}/clones-cpp.sym"),
        clones_sym.as_bytes(),
    );
    let other = "0123456789ABCDEF0123456789ABCDEF0";
    put(
        &format!("trunc.so/{other}/trunc.so.sym"),
        clones_sym.as_bytes(),
    );
    let port = free_port();
    let _server = Server(
        Command::new("python3")
            .args(["-c", SERVER, &port.to_string()])
            .arg(&root)
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs"),
    );
    let url = format!("http://127.0.0.1:{port}");
    wait_for("the HTTP server", || {
        http_status(&format!("{url}/x")) == Some(404)
    });
    let _ = std::fs::remove_file(&log);
    let (addr, name) = first_func(&clones_sym);
    let p = profile(
        vec![
            elf_module("clones", &clones_id, vec![]),
            elf_module("clones-cpp", &cpp_id, vec![]),
            elf_module("trunc.so", other, vec![]),
            elf_module("fail.so", other, vec![]),
            elf_module("gone.so", other, vec![]),
            elf_module("huge.so", other, vec![]),
        ],
        &[addr, 0x10, 0x10, 0x10, 0x10, 0x10],
    );
    let path = dir.join("p.vignette");
    std::fs::write(&path, p.encode()).unwrap();
    let run = || {
        cli(&[
            "report",
            path.to_str().unwrap(),
            "--symbols",
            &url,
            "--symbol-cache",
            cache.to_str().unwrap(),
        ])
    };
    let (ok, out, err) = run();
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&name),
        "clones resolved through the gzipped .sym:\n{out}\n{err}"
    );
    assert!(
        err.contains(&format!("served symbols for debug ID {clones_id}")),
        "{err}"
    );
    assert!(err.contains("HTTP 500"), "{err}");
    assert!(
        err.contains("trunc.so: http") && err.contains("closed before"),
        "{err}"
    );
    assert!(
        err.contains("huge.so: http") && err.contains("10737418240 bytes"),
        "{err}"
    );
    let first = requests(&log);
    // 6 modules, the 500 and the truncated body retried once each (a body announced too large
    // is not retried).
    assert_eq!(first, 8, "{first} requests");
    // Cached: the good module and the 404. The second run asks again only what failed (the
    // 500, the cut body, the wrong ID), never what was answered.
    let (ok, out2, _) = run();
    assert!(ok);
    assert!(out2.contains(&name));
    let again: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .skip(first)
        .map(String::from)
        .collect();
    assert!(
        !again.is_empty()
            && again
                .iter()
                .all(|r| !r.contains("/clones/") && !r.contains("gone.so")),
        "{again:?}"
    );
    assert!(cache
        .join(format!("clones/{clones_id}/clones.sym"))
        .is_file());
}

#[test]
fn debuginfod_serves_debug_files_that_become_symbols_in_the_cache() {
    let dir = tmp("debuginfod");
    let (index, cache) = (dir.join("index"), dir.join("cache"));
    std::fs::create_dir_all(&index).unwrap();
    // The unstripped fixture, as a build's output folder holds it.
    std::fs::copy(common::fixture("clones"), index.join("clones")).unwrap();
    let port = free_port();
    let mut child = Command::new("debuginfod")
        .args(["-F", "-p", &port.to_string(), "-d"])
        .arg(dir.join("db.sqlite"))
        .arg(&index)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("debuginfod (Debian package debuginfod) is needed for this test");
    let stderr = child.stderr.take().unwrap();
    let _server = Server(child);
    std::thread::spawn(move || for _ in BufReader::new(stderr).lines() {});
    let (clones_id, clones_sym) = sym_of("clones");
    let build_id = {
        let elf = std::fs::read(common::fixture("clones")).unwrap();
        let id = vignette::tools::store::elf_build_id(&common::fixture("clones")).unwrap();
        drop(elf);
        id
    };
    let hex: String = build_id.iter().map(|b| format!("{b:02x}")).collect();
    let url = format!("http://127.0.0.1:{port}");
    wait_for("debuginfod to index the folder", || {
        http_status(&format!("{url}/buildid/{hex}/debuginfo")) == Some(200)
    });
    let metric = || -> u64 {
        let out = Command::new("python3")
            .args([
                "-c",
                "import sys, urllib.request\nprint(urllib.request.urlopen(sys.argv[1]).read().decode())",
                &format!("{url}/metrics"),
            ])
            .output()
            .unwrap();
        // Requests for build IDs, whatever their answer.
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("http_responses_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    let (addr, name) = first_func(&clones_sym);
    let p = profile(vec![elf_module("clones", &clones_id, build_id)], &[addr]);
    let path = dir.join("p.vignette");
    std::fs::write(&path, p.encode()).unwrap();
    let run = || {
        cli(&[
            "report",
            path.to_str().unwrap(),
            "--symbols",
            &format!("debuginfod:{url}"),
            "--symbol-cache",
            cache.to_str().unwrap(),
        ])
    };
    let before = metric();
    let (ok, out, err) = run();
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&name),
        "resolved through debuginfod:\n{out}\n{err}"
    );
    let after_first = metric();
    assert!(after_first > before, "the first run asked debuginfod");
    assert!(cache
        .join(format!("clones/{clones_id}/clones.sym"))
        .is_file());
    let (ok, out, _) = run();
    assert!(ok && out.contains(&name));
    assert_eq!(
        metric(),
        after_first,
        "the second run was served from the cache"
    );
}
