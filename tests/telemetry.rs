//! Capture for telemetry: rotation without gaps, the flight recorder's window, triggers.
//!
//! Counts are checked against each thread's own CPU time (clock `Cpu`) or the profile's own
//! time range (clock `Wall`), never against a stopwatch, so a busy machine does not make
//! these tests flaky.
#![cfg(target_os = "linux")]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{profiler_lock, workload};
use vignette::{Clock, Profile, Profiler, TriggerKind};

/// Raises the flag when dropped: the threads of a scope end even if the test panics.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// 4 busy threads at 1000 Hz cut into 200 chunks (and the rest, at `stop`): per thread, the
/// chunks' weights add up to its CPU time in intervals, as one long session's do
/// (tests/rate.rs); sequence numbers have no gaps and time ranges abut.
#[test]
fn rotated_chunks_add_up_to_one_session() {
    let _g = profiler_lock();
    let mut profiler = Profiler::builder()
        .frequency(1000)
        .clock(Clock::Cpu)
        .build()
        .unwrap();
    assert!(matches!(
        profiler.rotate(),
        Err(vignette::Error::NotRunning)
    ));
    assert!(profiler.window().is_err(), "no flight recorder configured");
    profiler.start().unwrap();
    let stop = AtomicBool::new(false);
    let mut chunks: Vec<(u64, std::ops::Range<u64>, Profile)> = Vec::new();
    let names: Vec<String> = (0..4).map(|i| format!("rot-{i}")).collect();
    let cpu: Vec<(String, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let stop = &stop;
                std::thread::Builder::new()
                    .name(name.clone())
                    .spawn_scoped(s, move || {
                        workload::worker_loop(i as u64, stop);
                        (name.clone(), workload::thread_cpu_ns())
                    })
                    .unwrap()
            })
            .collect();
        let _stop = StopOnDrop(&stop);
        for _ in 0..200 {
            std::thread::sleep(Duration::from_millis(5));
            let c = profiler.rotate().unwrap();
            chunks.push((c.sequence(), c.time_range_ns(), c.to_profile()));
        }
        // And at least 150 ms of CPU each, however long that takes on a busy machine.
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        common::wait_for_cpu(&refs, 150_000_000);
        drop(_stop);
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let last = profiler.stop().unwrap();
    chunks.push((last.sequence(), last.time_range_ns(), last.to_profile()));

    for (i, w) in chunks.windows(2).enumerate() {
        assert_eq!(
            w[0].0 + 1,
            w[1].0,
            "sequence numbers follow on at chunk {i}"
        );
        assert_eq!(w[0].1.end, w[1].1.start, "chunk {i} and the next abut");
        assert_eq!(w[0].2.chunk.sequence, w[0].0);
        assert_eq!(
            w[0].2.start_unix_ns + w[0].2.duration_ns,
            w[1].2.start_unix_ns,
            "wall-clock ranges abut too"
        );
    }
    assert_eq!(chunks[0].0, 0);
    assert_eq!(chunks.len(), 201);
    let interval = chunks[0].2.interval_ns;
    let lost: u64 = chunks.iter().map(|c| c.2.lost.total()).sum();
    for (name, cpu_ns) in cpu {
        let expected = cpu_ns / interval;
        let (mut weights, mut with_samples) = (0u64, 0);
        for (_, _, p) in &chunks {
            let w: u64 = (p.threads.iter())
                .filter(|t| t.name == name)
                .flat_map(|t| &t.samples)
                .map(|s| s.weight as u64)
                .sum();
            weights += w;
            with_samples += (w > 0) as usize;
        }
        eprintln!(
            "{name}: weight {weights} in {with_samples} chunks, {expected} intervals of CPU, \
             {lost} lost in all"
        );
        assert!(expected >= 150, "{name} ran: {cpu_ns} ns");
        assert!(
            // Never over but for two, on any host (see tests/backends.rs): perf events'
            // samples are weighed by the thread's own CPU clock, which is read here too.
            weights <= expected + 2 && weights + lost + expected / 20 + 2 >= expected,
            "weights {weights} vs {expected} intervals"
        );
        assert!(with_samples > 100, "{name} is in most chunks");
    }
}

/// Sleeping threads under the wall clock are sampled every interval: a flight recorder run
/// for 10 windows keeps exactly the last window, whole.
#[test]
fn the_flight_recorder_keeps_exactly_its_window() {
    let _g = profiler_lock();
    let window = Duration::from_millis(300);
    let mut profiler = Profiler::builder()
        .frequency(1000)
        .clock(Clock::Wall)
        .flight_recorder(window)
        .build()
        .unwrap();
    assert!(profiler.rotate().is_err(), "a flight recorder has windows");
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // The sleepers end even if an assertion below fails (the scope waits for them).
        let _stop = StopOnDrop(&stop);
        for i in 0..2 {
            let stop = &stop;
            std::thread::Builder::new()
                .name(format!("fr-sleeper-{i}"))
                .spawn_scoped(s, move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                })
                .unwrap();
        }
        profiler.start().unwrap();
        let started = std::time::Instant::now();
        let mut sequence = 0;
        // Ten windows' time, with a window taken every half window.
        while started.elapsed() < window * 10 {
            std::thread::sleep(window / 2);
            let w = profiler.window().unwrap();
            assert_eq!(w.sequence(), sequence);
            sequence += 1;
            check_window(&w.to_profile(), window, started.elapsed() > window * 3 / 2);
        }
        let p = profiler.trigger("before the end").unwrap().to_profile();
        check_window(&p, window, true);
        let t = p.chunk.trigger.as_ref().expect("a trigger");
        assert_eq!(t.kind, TriggerKind::Manual);
        assert_eq!(t.tid, Profiler::current_thread_id() as u32);
        assert_eq!(t.note, "before the end");
        assert!(t.at_ns <= p.duration_ns);
    });
    // Stopping gives the last window too.
    let last = profiler.stop().unwrap().to_profile();
    check_window(&last, window, true);
    assert!(last.chunk.evicted > 0);
}

/// A window of `window`: every sample inside it, and (once the recorder is older than the
/// window, `full`) each sleeper's weights covering it: one per millisecond up to its last
/// sample. The time after the last sample is not yet covered: the sampler thread serves the
/// window between two ticks, and on a busy machine it may have been kept off the CPU before
/// serving (its next tick would carry those intervals). A sample's weight stands for the
/// intervals since the tick before it; the first one's is clipped at the window's start.
fn check_window(p: &Profile, window: Duration, full: bool) {
    let window_ns = window.as_nanos() as u64;
    assert_eq!(p.chunk.window_ns, window_ns);
    assert!(p.duration_ns <= window_ns);
    for t in &p.threads {
        let at_us: u64 = t.samples.iter().map(|s| s.dt_us).sum();
        assert!(
            at_us * 1000 <= p.duration_ns,
            "{}: a sample after the end",
            t.name
        );
    }
    if !full {
        return;
    }
    assert_eq!(p.duration_ns, window_ns, "a full window");
    let expected = window_ns / p.interval_ns;
    let sleepers: Vec<_> = p
        .threads
        .iter()
        .filter(|t| t.name.starts_with("fr-sleeper"))
        .collect();
    assert_eq!(sleepers.len(), 2, "both sleepers are in the window");
    for t in sleepers {
        let weights: u64 = t.samples.iter().map(|s| s.weight as u64).sum();
        let first = t.samples.first().map_or(0, |s| s.weight as u64);
        let last_ns = t.samples.iter().map(|s| s.dt_us).sum::<u64>() * 1000;
        let covered = last_ns / p.interval_ns;
        let lost = p.lost.total();
        eprintln!(
            "{}: weights {weights} (first {first}), {covered} of {expected} intervals to \
             the last sample, {lost} lost",
            t.name
        );
        assert!(
            covered >= expected * 2 / 3,
            "{}: no sample in the window's last {} intervals",
            t.name,
            expected - covered
        );
        assert!(
            weights <= expected + 2 && weights + lost + covered / 20 + 2 >= covered,
            "{}: weights {weights} (first {first}) for {covered} intervals to the last \
             sample of a {expected}-interval window ({lost} lost)",
            t.name
        );
    }
}

/// The delivery thread rotates on a timer and hands each chunk over; `stop` gives the rest,
/// next in sequence.
#[test]
fn delivery_rotates_on_a_timer() {
    let _g = profiler_lock();
    let mut profiler = Profiler::builder().frequency(1000).build().unwrap();
    profiler.start().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let triggers = profiler
        .deliver(Some(Duration::from_millis(30)), move |c| {
            let _ = tx.send((c.sequence(), c.time_range_ns()));
        })
        .unwrap();
    assert!(matches!(
        profiler.rotate(),
        Err(vignette::Error::Delivering)
    ));
    let stop = AtomicBool::new(false);
    let chunks: Vec<_> = std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| workload::worker_loop(1, &stop));
        (0..8)
            .map(|_| rx.recv_timeout(Duration::from_secs(60)).expect("a chunk"))
            .collect()
    });
    assert!(triggers.delivered() >= 8);
    let last = profiler.stop().unwrap();
    let (seq, range) = (last.sequence(), last.time_range_ns());
    let mut all: Vec<_> = chunks;
    // Chunks delivered after the eighth, before the stop.
    all.extend(rx.try_iter());
    all.push((seq, range));
    for (i, w) in all.windows(2).enumerate() {
        assert_eq!(w[0].0 + 1, w[1].0, "chunk {i}");
        assert_eq!(w[0].1.end, w[1].1.start, "chunk {i}");
    }
}

/// Spins until released: the function a hung thread is found in.
#[inline(never)]
fn hang_spin(release: &AtomicBool) -> u64 {
    let mut x = 1u64;
    while !release.load(Ordering::Relaxed) {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
    x
}

/// A hang watchdog over two threads, one spinning in a known function and one blocked in
/// `read`: each hang is captured as a window naming the thread, with that function or the
/// system call on top of the thread's last stacks.
#[test]
fn the_hang_watchdog_captures_the_hung_thread() {
    let _g = profiler_lock();
    let mut profiler = Profiler::builder()
        .frequency(1000)
        .clock(Clock::Wall)
        .flight_recorder(Duration::from_secs(1))
        .build()
        .unwrap();
    profiler.start().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let triggers = profiler
        .deliver(None, move |c| {
            let _ = tx.send(c.to_profile());
        })
        .unwrap();
    let mut fds = [0; 2];
    // SAFETY: fds is two writable ints.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let release = AtomicBool::new(false);
    let (spinner, reader) = std::thread::scope(|s| {
        let _stop = StopOnDrop(&release);
        let spin = s.spawn(|| {
            let beat = triggers.heartbeat("spin loop", Duration::from_millis(200));
            for _ in 0..20 {
                beat.beat();
                std::thread::sleep(Duration::from_millis(5));
            }
            let tid = Profiler::current_thread_id();
            hang_spin(&release);
            tid
        });
        let read = s.spawn(|| {
            let beat = triggers.heartbeat("reader", Duration::from_millis(200));
            beat.beat();
            let tid = Profiler::current_thread_id();
            let mut b = [0u8; 1];
            // SAFETY: reads one byte into b from the pipe's read end.
            unsafe { libc::read(fds[0], b.as_mut_ptr().cast(), 1) };
            tid
        });
        let mut hung = Vec::new();
        while hung.len() < 2 {
            let p = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("a hang window");
            let t = p.chunk.trigger.clone().expect("a trigger");
            assert_eq!(t.kind, TriggerKind::Hang);
            assert!(t.late_ns > 200_000_000, "late by {} ns", t.late_ns);
            hung.push((t, p));
        }
        release.store(true, Ordering::Relaxed);
        // SAFETY: writes one byte from a valid buffer to the pipe's write end.
        unsafe { libc::write(fds[1], b"x".as_ptr().cast(), 1) };
        let ids = (spin.join().unwrap(), read.join().unwrap());
        for (t, p) in &hung {
            let (who, want) = if t.note == "spin loop" {
                (ids.0, "hang_spin")
            } else {
                assert_eq!(t.note, "reader");
                (ids.1, "read")
            };
            assert_eq!(t.tid, who as u32, "the trigger names the hung thread");
            let thread = p
                .threads
                .iter()
                .find(|th| th.tid == who as u32)
                .expect("its samples");
            // Its last samples, taken during the hang, are in that function.
            let last: Vec<_> = thread.samples.iter().rev().take(50).collect();
            let inside = last
                .iter()
                .filter(|s| {
                    // Among the innermost frames (an unoptimised build calls even
                    // `AtomicBool::load`): libc's `read` (`__libc_read`), or hang_spin.
                    (common::stack_names(p, s.stack).iter().take(4))
                        .any(|n| n.split('|').any(|f| f.ends_with(want)))
                })
                .count();
            eprintln!(
                "{}: {inside} of the last {} samples in {want} ({:?})",
                t.note,
                last.len(),
                common::stack_names(p, last[0].stack).first()
            );
            assert!(
                inside * 10 >= last.len() * 9,
                "{want}: {inside} of {}",
                last.len()
            );
        }
        ids
    });
    assert_ne!(spinner, reader);
    profiler.stop().unwrap();
    // SAFETY: closes the two descriptors made above.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
}

/// A panic is captured (with the thread and the message) before the panic goes on.
#[test]
fn a_panic_is_captured_before_it_unwinds() {
    let _g = profiler_lock();
    let mut profiler = Profiler::builder()
        .frequency(1000)
        .flight_recorder(Duration::from_millis(500))
        .build()
        .unwrap();
    profiler.start().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let triggers = profiler
        .deliver(None, move |c| {
            let _ = tx.send(c.to_profile());
        })
        .unwrap();
    triggers.catch_panics();
    let handle = std::thread::spawn(|| {
        let tid = Profiler::current_thread_id();
        std::thread::sleep(Duration::from_millis(50));
        if tid != 0 {
            panic!("the test's own panic");
        }
    });
    assert!(handle.join().is_err());
    // The hook waited for the delivery: the window is already there.
    let p = rx.try_recv().expect("delivered before the panic unwound");
    let t = p.chunk.trigger.expect("a trigger");
    assert_eq!(t.kind, TriggerKind::Panic);
    assert!(
        t.note
            .starts_with("the test's own panic (tests/telemetry.rs:"),
        "{}",
        t.note
    );
    triggers.fire("by hand");
    let p = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    let t = p.chunk.trigger.expect("a trigger");
    assert_eq!((t.kind, t.note.as_str()), (TriggerKind::Manual, "by hand"));
    assert_eq!(t.tid, Profiler::current_thread_id() as u32);
    profiler.stop().unwrap();
}

/// A callback that panics costs its chunk, counted, and nothing more: delivery goes on at
/// once (the panic hook does not wait on the delivery thread for itself), and the panic is
/// delivered as a trigger.
#[test]
fn a_panicking_callback_costs_its_chunk_only() {
    let _g = profiler_lock();
    let mut profiler = Profiler::builder()
        .frequency(1000)
        .flight_recorder(Duration::from_millis(500))
        .build()
        .unwrap();
    profiler.start().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let calls = std::sync::atomic::AtomicU32::new(0);
    let triggers = profiler
        .deliver(None, move |c| {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("the callback's own panic");
            }
            let _ = tx.send((std::time::Instant::now(), c.to_profile()));
        })
        .unwrap();
    triggers.catch_panics();
    let fired = std::time::Instant::now();
    triggers.fire("first");
    // The next capture is the panic's own trigger, delivered without a 2 s stall.
    let (at, p) = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    let t = p.chunk.trigger.expect("a trigger");
    assert_eq!(t.kind, TriggerKind::Panic, "{}", t.note);
    assert!(t.note.starts_with("the callback's own panic"), "{}", t.note);
    assert!(
        at - fired < Duration::from_secs(1),
        "delivery stalled {:?}",
        at - fired
    );
    // Counted once the callback has returned: after stop, which ends the delivery thread.
    profiler.stop().unwrap();
    assert_eq!(triggers.failed(), 1);
    assert_eq!(triggers.delivered(), 1);
}

/// Builds `examples/<name>.rs` with this test's features; returns the program.
fn build_example(name: &str) -> std::path::PathBuf {
    let mut features = vec!["std"];
    for (on, f) in [
        (cfg!(feature = "tools"), "tools"),
        (cfg!(feature = "ffi"), "ffi"),
        (cfg!(feature = "unstable-internals"), "unstable-internals"),
    ] {
        if on {
            features.push(f);
        }
    }
    let status = std::process::Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "--example",
            name,
            "--no-default-features",
            "--features",
        ])
        .arg(features.join(","))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(status.success(), "building the {name} example");
    let deps = std::env::current_exe().unwrap();
    deps.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name)
}

/// The upload example against a collector on 127.0.0.1: every chunk arrives as a complete
/// profile, in sequence, without gaps, the last one after `stop`.
#[test]
fn the_upload_example_posts_every_chunk_in_sequence() {
    use std::io::{BufRead, BufReader, Read, Write};
    let exe = build_example("rotate_upload");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/ingest", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let mut got = Vec::new();
        for stream in listener.incoming() {
            let mut stream = BufReader::new(stream.unwrap());
            let (mut length, mut sequence, mut line) = (0usize, None, String::new());
            stream.read_line(&mut line).unwrap();
            if line.is_empty() {
                // The test's own empty connection: the example is done.
                break;
            }
            assert_eq!(line, "POST /ingest HTTP/1.1\r\n");
            loop {
                line.clear();
                stream.read_line(&mut line).unwrap();
                let l = line.trim_end().to_ascii_lowercase();
                if l.is_empty() {
                    break;
                }
                if let Some(v) = l.strip_prefix("content-length: ") {
                    length = v.parse().unwrap();
                }
                if let Some(v) = l.strip_prefix("x-vignette-sequence: ") {
                    sequence = Some(v.parse::<u64>().unwrap());
                }
            }
            let mut body = vec![0; length];
            stream.read_exact(&mut body).unwrap();
            let p = Profile::decode(&body).expect("a whole profile");
            assert_eq!(Some(p.chunk.sequence), sequence);
            let _ = stream
                .get_mut()
                .write_all(b"HTTP/1.1 204 No Content\r\n\r\n");
            got.push(p);
        }
        got
    });
    let out = std::process::Command::new(&exe)
        .args([url.as_str(), "1.2", "250"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    drop(std::net::TcpStream::connect(listener_addr(&url)));
    let got = server.join().expect("the collector read every request");
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sequences: Vec<u64> = got.iter().map(|p| p.chunk.sequence).collect();
    assert!(got.len() >= 3, "{said}");
    assert_eq!(
        sequences,
        (0..got.len() as u64).collect::<Vec<_>>(),
        "{said}"
    );
    for w in got.windows(2) {
        assert_eq!(w[0].start_unix_ns + w[0].duration_ns, w[1].start_unix_ns);
    }
    assert!(
        got.iter().map(Profile::sample_count).sum::<usize>() > 500,
        "{said}"
    );
    assert!(said.contains("(last)"), "{said}");
    assert!(
        said.lines().all(|l| l.ends_with("204 No Content")),
        "{said}"
    );
}

/// `host:port` of an `http://host:port/path` URL.
fn listener_addr(url: &str) -> &str {
    url.trim_start_matches("http://").split('/').next().unwrap()
}

/// The watchdog example catches its own event loop's slow turn.
#[test]
fn the_watchdog_example_writes_the_hang() {
    let exe = build_example("hang_watchdog");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("hang_watchdog");
    let _ = std::fs::remove_dir_all(&dir);
    let out = std::process::Command::new(&exe).arg(&dir).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = Profile::decode(&std::fs::read(dir.join("hang-0.vignette")).unwrap()).unwrap();
    let t = p.chunk.trigger.expect("a trigger");
    assert_eq!((t.kind, t.note.as_str()), (TriggerKind::Hang, "event loop"));
    let thread = p
        .threads
        .iter()
        .find(|x| x.tid == t.tid)
        .expect("the hung thread");
    assert_eq!(thread.name, "event-loop");
}

/// Threads that start and exit all the time while chunks are taken (slots freed and reused
/// across rotations): every chunk decodes, each thread's samples stay with its own tid, and
/// nothing is lost to the registry. Then rotation without a sampler thread (after
/// `sample_once`).
#[test]
fn rotation_survives_thread_churn() {
    let _g = profiler_lock();
    let mut profiler = Profiler::builder()
        .frequency(1000)
        .clock(Clock::Wall)
        .max_threads(16)
        .build()
        .unwrap();
    profiler.start().unwrap();
    let stop = AtomicBool::new(false);
    let mut seen = std::collections::BTreeSet::new();
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let handles: Vec<_> = (0..4)
                    .map(|i| {
                        std::thread::Builder::new()
                            .name(format!("churn-{}", n * 4 + i))
                            .spawn(|| std::thread::sleep(Duration::from_millis(3)))
                            .unwrap()
                    })
                    .collect();
                handles.into_iter().for_each(|h| h.join().unwrap());
                n += 1;
            }
        });
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(4));
            let p = profiler.rotate().unwrap().to_profile();
            for t in &p.threads {
                // A thread's samples are its own: one name per tid in a chunk.
                assert_eq!(p.threads.iter().filter(|x| x.tid == t.tid).count(), 1);
                if t.name.starts_with("churn-") {
                    seen.insert(t.name.clone());
                }
            }
            assert_eq!(p.lost.threads_over_capacity, 0, "{:?}", p.lost);
        }
    });
    profiler.stop().unwrap();
    assert!(
        seen.len() > 50,
        "short-lived threads were sampled: {}",
        seen.len()
    );

    // Without a sampler thread: on-demand samples, rotated.
    profiler.sample_once(vignette::Target::AllThreads).unwrap();
    let first = profiler.rotate().unwrap().to_profile();
    profiler.sample_once(vignette::Target::AllThreads).unwrap();
    let second = profiler.stop().unwrap().to_profile();
    assert!(first.sample_count() > 0 && second.sample_count() > 0);
    assert_eq!((first.chunk.sequence, second.chunk.sequence), (0, 1));
}

/// Spins for `cpu_ns` of this thread's CPU time.
#[inline(never)]
fn labelled_spin(cpu_ns: u64) -> u64 {
    spin_for(cpu_ns)
}

/// The same, under another name (after the labels' guards are dropped).
#[inline(never)]
fn unlabelled_spin(cpu_ns: u64) -> u64 {
    spin_for(cpu_ns)
}

fn spin_for(cpu_ns: u64) -> u64 {
    let t0 = workload::thread_cpu_ns();
    let mut x = 1;
    while workload::thread_cpu_ns() - t0 < cpu_ns {
        x = workload::crunch(x);
    }
    x
}

/// Samples taken under a label carry it (>= 99% of a thread spinning under one; the rest is
/// the moment the guard changes), none carry it after the guard is dropped, and pprof's own
/// reader filters by it (`go tool pprof -tagfocus`).
#[test]
fn labels_mark_the_samples_taken_under_them() {
    use vignette::labels::{self, LabelKey, LabelStr};
    let _g = profiler_lock();
    let mut profiler = Profiler::builder().frequency(1000).build().unwrap();
    profiler.start().unwrap();
    std::thread::Builder::new()
        .name("labelled".into())
        .spawn(|| {
            let (endpoint, request) = (LabelKey::new("endpoint"), LabelKey::new("request"));
            let search = LabelStr::new("/search");
            {
                let _e = labels::set(endpoint, search);
                let _r = labels::set(request, -1234);
                std::hint::black_box(labelled_spin(300_000_000));
            }
            std::hint::black_box(unlabelled_spin(300_000_000));
        })
        .unwrap()
        .join()
        .unwrap();
    let p = profiler.stop().unwrap().to_profile();
    let t = p.threads.iter().find(|t| t.name == "labelled").unwrap();
    let (mut under, mut carried, mut after, mut leaked) = (0, 0, 0, 0);
    for s in &t.samples {
        let names = common::stack_names(&p, s.stack);
        let labels: Vec<(String, String)> = p
            .labels
            .of(s.labels)
            .map(|(k, v)| (k.to_string(), v.into_owned()))
            .collect();
        if names
            .iter()
            .any(|n| n.contains("labelled_spin") && !n.contains("unlabelled"))
        {
            under += 1;
            let want = [("endpoint", "/search"), ("request", "-1234")];
            carried += (labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .eq(want)) as usize;
        } else if names.iter().any(|n| n.contains("unlabelled_spin")) {
            after += 1;
            leaked += !labels.is_empty() as usize;
        }
    }
    eprintln!(
        "{carried} of {under} samples under the labels carry them; {leaked} of {after} after"
    );
    assert!(under > 100 && after > 100, "{under} and {after} samples");
    assert!(carried * 100 >= under * 99, "{carried} of {under}");
    assert_eq!(
        leaked, 0,
        "samples after the guards were dropped carry labels"
    );

    // pprof: Sample.label, which go tool pprof filters by.
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("labelled.pb");
    std::fs::write(&path, vignette::tools::pprof::to_pprof(&p, None)).unwrap();
    let out = std::process::Command::new("go")
        .args(["tool", "pprof", "-raw", "-tagfocus=endpoint=/search"])
        .arg(&path)
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .output()
        .expect("go (Debian package golang-go; .ci/run installs it) reads pprof files");
    let raw = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{raw}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // -raw lists the samples kept (alike ones merged, with their count), each with its
    // labels: exactly the labelled samples' weights.
    let kept: u64 = raw
        .lines()
        .skip_while(|l| !l.starts_with("samples/count"))
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .filter_map(|l| l.split_once(": ").map(|(counts, _)| counts))
        .filter_map(|c| c.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    let labelled: u64 = (p.threads.iter().flat_map(|t| &t.samples))
        .filter(|s| {
            p.labels
                .of(s.labels)
                .any(|(k, v)| k == "endpoint" && v == "/search")
        })
        .map(|s| s.weight as u64)
        .sum();
    assert_eq!(
        raw.matches("endpoint:[/search]").count(),
        raw.matches("thread:[").count()
    );
    assert_eq!(kept, labelled, "{raw}");
}

/// Every profile says what it came from (the application's metadata, the system's facts) and
/// what it was exposed to; chunks too. Metadata out of bounds is refused at `build()`.
#[test]
fn profiles_say_what_they_came_from_and_their_exposure() {
    let _g = profiler_lock();
    let refused = Profiler::builder().metadata("bad key", "x").build();
    assert!(matches!(refused, Err(vignette::Error::InvalidConfig(_))));
    let mut profiler = Profiler::builder()
        .frequency(1000)
        .metadata("app", "telemetry-test")
        .metadata("version", "1.2.3")
        .metadata("channel", "nightly")
        .build()
        .unwrap();
    profiler.start().unwrap();
    let burn = |ns| {
        let start = workload::thread_cpu_ns();
        let mut x = 1;
        while workload::thread_cpu_ns() - start < ns {
            x = workload::mix_hash(x, 1000);
        }
        std::hint::black_box(x);
    };
    burn(100_000_000);
    let chunk = profiler.rotate().unwrap().to_profile();
    burn(100_000_000);
    let last = profiler.stop().unwrap().to_profile();
    for p in [&chunk, &last] {
        let app: Vec<(&str, &str)> = p
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            app,
            [
                ("app", "telemetry-test"),
                ("version", "1.2.3"),
                ("channel", "nightly")
            ]
        );
        let fact = |k: &str| {
            p.system
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(fact("os").as_deref(), Some("linux"));
        assert_eq!(fact("arch").as_deref(), Some(std::env::consts::ARCH));
        assert!(fact("cores").is_some() && fact("memory_gib").is_some());
        // The process used at least the 100 ms this thread burned, and a chunk's CPU time is
        // no more than its wall time on every core.
        assert!(p.process_cpu_ns >= 90_000_000, "{}", p.process_cpu_ns);
        let cores: u64 = fact("cores").unwrap().parse().unwrap();
        assert!(p.process_cpu_ns <= p.duration_ns * cores + 10_000_000);
    }
    drop(profiler);
    // A flight-recorder window states its exposure too: the CPU time of what it covers.
    let mut recorder = Profiler::builder()
        .frequency(1000)
        .flight_recorder(Duration::from_secs(10))
        .build()
        .unwrap();
    recorder.start().unwrap();
    burn(150_000_000);
    let window = recorder.window().unwrap().to_profile();
    assert!(
        window.process_cpu_ns >= 140_000_000,
        "{}",
        window.process_cpu_ns
    );
    let cores = std::thread::available_parallelism().unwrap().get() as u64;
    assert!(window.process_cpu_ns <= window.duration_ns * cores + 10_000_000);
    drop(recorder);
    // pprof carries them as comments, which Go's own reader lists.
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("metadata.pb.gz");
    std::fs::write(&path, vignette::tools::pprof::to_pprof(&last, None)).unwrap();
    let out = std::process::Command::new("go")
        .args(["tool", "pprof", "-comments"])
        .arg(&path)
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .output()
        .expect("go (Debian package golang-go; .ci/run installs it) reads pprof files");
    let comments = String::from_utf8_lossy(&out.stdout);
    for line in [
        "app=telemetry-test",
        "version=1.2.3",
        "os=linux",
        "process_cpu_ns=",
    ] {
        assert!(comments.contains(line), "{line} not in {comments}");
    }
}
