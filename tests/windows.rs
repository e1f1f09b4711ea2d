//! The Windows backend end to end, under wine on Linux CI (`scripts/check-windows`) or on
//! Windows: threads are suspended, their stacks copied and walked with the x64 unwinder; the
//! walks reach the threads' entry; threads stopped inside the heap or the loader never
//! deadlock the sampler; modules carry their PE identity.
#![cfg(windows)]

use std::ffi::c_void;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vignette::{Clock, EndReason, ObjectFormat, Profile, Profiler, Target};

/// One profiler per process: tests that build one hold this lock.
static PROFILER: Mutex<()> = Mutex::new(());

fn profiler_lock() -> std::sync::MutexGuard<'static, ()> {
    PROFILER.lock().unwrap_or_else(|e| e.into_inner())
}

#[link(name = "kernel32")]
extern "system" {
    fn GetCurrentThread() -> *mut c_void;
    fn GetThreadTimes(h: *mut c_void, c: *mut u64, e: *mut u64, k: *mut u64, u: *mut u64) -> i32;
    fn LoadLibraryW(name: *const u16) -> *mut c_void;
    fn FreeLibrary(h: *mut c_void) -> i32;
    fn GetModuleHandleW(name: *const u16) -> *mut c_void;
    fn GetProcAddress(module: *mut c_void, name: *const u8) -> *mut c_void;
}

/// The calling thread's CPU time (user + kernel), in nanoseconds.
fn my_cpu_ns() -> u64 {
    let (mut c, mut e, mut k, mut u) = (0, 0, 0, 0);
    // SAFETY: four writable u64s (FILETIMEs) and the current thread's pseudo-handle.
    unsafe { GetThreadTimes(GetCurrentThread(), &mut c, &mut e, &mut k, &mut u) };
    (k + u) * 100
}

#[inline(never)]
fn spin_inner(seed: u64) -> u64 {
    let mut h = seed;
    for i in 0..20_000u64 {
        h = black_box(h.rotate_left(13).wrapping_mul(0x5851_F42D_4C95_7F2D) ^ i);
    }
    h
}

#[inline(never)]
fn spin_outer(seed: u64) -> u64 {
    let mut v = [0u64; 64];
    for (i, slot) in v.iter_mut().enumerate() {
        *slot = spin_inner(seed ^ i as u64);
    }
    black_box(v.iter().fold(0, |a, b| a ^ b))
}

/// Spins until it has used `cpu_ns` of CPU (or `stop` is set); a minute at most.
fn spin_until(cpu_ns: u64, stop: &AtomicBool) {
    let (t0, deadline) = (my_cpu_ns(), Instant::now() + Duration::from_secs(60));
    let mut x = 1;
    while my_cpu_ns() - t0 < cpu_ns && !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        x = spin_outer(x);
    }
    black_box(x);
}

/// Function names at `avma` in this process.
fn names_at(avma: u64) -> Vec<String> {
    let mut names = Vec::new();
    backtrace::resolve(avma as *mut c_void, |sym| {
        if let Some(n) = sym.name() {
            names.push(format!("{n:#}"));
        }
    });
    names
}

fn stack_names(p: &Profile, stack: u32) -> Vec<String> {
    p.stack_frames(stack)
        .map(|f| {
            let avma = match f.module {
                0 => f.address,
                m => p.modules[m as usize - 1].base_avma + f.address,
            };
            names_at(avma).join("|")
        })
        .collect()
}

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain([0]).collect()
}

#[test]
fn samples_of_busy_threads_walk_to_their_entry() {
    let _g = profiler_lock();
    let mut profiler = Profiler::builder()
        .frequency(1000)
        .clock(Clock::Wall)
        .build()
        .unwrap();
    profiler.start().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|i| {
            std::thread::Builder::new()
                .name(format!("spinner-{i}"))
                .spawn(|| spin_until(1_000_000_000, &AtomicBool::new(false)))
                .unwrap()
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let s = profiler.suspensions();
    let n = s.count.max(1);
    eprintln!(
        "{} suspensions: {} us suspended on average, {} us at most; {} us walking each copy, \
         {} of {} module reads cached",
        s.count,
        s.suspended_ns / n / 1000,
        s.longest_ns / 1000,
        s.walk_ns / n / 1000,
        s.image_reads_cached,
        s.image_reads
    );
    assert!(s.count > 0 && s.suspended_ns > 0 && s.longest_ns <= s.suspended_ns);
    let capture = profiler.stop().unwrap();
    let p = capture.to_profile();
    let spinners: Vec<_> = p
        .threads
        .iter()
        .filter(|t| t.name.starts_with("spinner"))
        .collect();
    assert_eq!(
        spinners.len(),
        2,
        "{:?}",
        p.threads.iter().map(|t| &t.name).collect::<Vec<_>>()
    );
    let samples: Vec<_> = spinners.iter().flat_map(|t| &t.samples).collect();
    // Rooted: the walk ended at the zero return address above the thread's entry, whose
    // outermost frame is in ntdll (RtlUserThreadStart) or kernel32 (BaseThreadInitThunk).
    let rooted = samples
        .iter()
        .filter(|s| {
            let outermost = p.stack_frames(s.stack).last().unwrap();
            let module = p.modules.get((outermost.module as usize).wrapping_sub(1));
            s.end == EndReason::Root
                && module.is_some_and(|m| {
                    m.name.eq_ignore_ascii_case("ntdll.dll")
                        || m.name.eq_ignore_ascii_case("kernel32.dll")
                })
        })
        .count();
    let chained = samples
        .iter()
        .filter(|s| {
            let names = stack_names(&p, s.stack);
            let i = names.iter().position(|n| n.contains("spin_outer"));
            i.is_some_and(|i| names[..i].iter().any(|n| n.contains("spin_inner")) || i == 0)
        })
        .count();
    eprintln!(
        "{} samples of the spinners: {rooted} reached the root, {chained} in spin_outer; \
         {} lost ({:?})",
        samples.len(),
        p.lost.total(),
        p.lost
    );
    // Under wine a suspension takes about half a millisecond (on Windows, microseconds), so
    // the sampler falls behind 1000 Hz; the missed intervals are carried as sample weights.
    assert!(samples.len() >= 30, "{} samples", samples.len());
    assert!(
        rooted * 100 >= samples.len() * 99,
        "{rooted} of {} rooted",
        samples.len()
    );
    assert!(
        chained * 100 >= samples.len() * 90,
        "{chained} of {} in spin_outer",
        samples.len()
    );
}

#[test]
fn threads_stopped_in_the_heap_or_the_loader_do_not_deadlock_the_sampler() {
    let _g = profiler_lock();
    let mut profiler = Profiler::builder()
        .frequency(4000)
        .clock(Clock::Wall)
        .build()
        .unwrap();
    profiler.start().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for i in 0..2 {
        let stop = stop.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("allocator-{i}"))
                .spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let v: Vec<u8> = vec![n as u8; 16 + (n as usize * 7919) % 4096];
                        n += black_box(v).len() as u64;
                    }
                    n
                })
                .unwrap(),
        );
    }
    let stop2 = stop.clone();
    threads.push(
        std::thread::Builder::new()
            .name("loader".into())
            .spawn(move || {
                let name = wide("version.dll");
                let mut n = 0;
                while !stop2.load(Ordering::Relaxed) {
                    // SAFETY: loads and unloads a system DLL with no side effects.
                    unsafe {
                        let h = LoadLibraryW(name.as_ptr());
                        assert!(!h.is_null());
                        FreeLibrary(h);
                    }
                    n += 1;
                }
                n
            })
            .unwrap(),
    );
    // Run until the sampler has been through many rounds with those threads, by CPU time of
    // this thread's own waiting being irrelevant: wait for the workers' progress instead.
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let done: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let capture = profiler.stop().unwrap();
    let p = capture.to_profile();
    let count = |prefix: &str| -> usize {
        p.threads
            .iter()
            .filter(|t| t.name.starts_with(prefix))
            .map(|t| t.samples.len())
            .sum()
    };
    eprintln!(
        "{:?} in {:?}: allocator samples {}, loader samples {}, lost {:?}",
        done,
        t0.elapsed(),
        count("allocator"),
        count("loader"),
        p.lost
    );
    assert!(
        done.iter().all(|&n| n > 0),
        "every thread made progress: {done:?}"
    );
    assert!(count("allocator") > 0 && count("loader") > 0);
}

#[test]
fn sample_once_samples_one_thread_or_all() {
    let _g = profiler_lock();
    let mut profiler = Profiler::builder().build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let t = std::thread::Builder::new()
        .name("waiter".into())
        .spawn(move || spin_until(u64::MAX, &s))
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let tid = {
        // The spinner's id: the thread that is not this one and is named "waiter".
        profiler.sample_once(Target::AllThreads).unwrap();
        let p = profiler.stop().unwrap().to_profile();
        p.threads
            .iter()
            .find(|t| t.name == "waiter")
            .expect("waiter sampled")
            .tid
    };
    assert_eq!(profiler.sample_once(Target::Thread(tid as i32)).unwrap(), 1);
    let p = profiler.stop().unwrap().to_profile();
    assert_eq!(p.sample_count(), 1);
    assert_eq!(
        profiler
            .sample_once(Target::Thread(Profiler::current_thread_id()))
            .ok(),
        None,
        "a thread cannot suspend itself"
    );
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap();
}

#[test]
fn modules_carry_their_pe_identity() {
    let _g = profiler_lock();
    let mut profiler = Profiler::builder().build().unwrap();
    profiler.sample_once(Target::AllThreads).unwrap();
    let p = profiler.stop().unwrap().to_profile();
    let exe = std::env::current_exe().unwrap();
    let exe_name = exe.file_name().unwrap().to_str().unwrap();
    let find = |name: &str| {
        p.modules
            .iter()
            .find(|m| m.name.eq_ignore_ascii_case(name))
            .unwrap_or_else(|| panic!("{name} listed"))
    };
    for m in [find(exe_name), find("ntdll.dll"), find("kernel32.dll")] {
        assert_eq!(m.format, ObjectFormat::Pe, "{}", m.name);
        assert_eq!(m.start_avma, m.base_avma, "{}", m.name);
        assert_eq!(m.code_id.len(), 8, "{}", m.name);
        assert!(m.end_avma > m.start_avma, "{}", m.name);
    }
    // The executable's base is its module handle; mingw with --build-id gives it a CodeView
    // record (.cargo/config.toml), so a debug ID; its PDB name is empty, so symbols are
    // stored under the executable's own name.
    // SAFETY: a null name asks for the executable's own handle.
    let base = unsafe { GetModuleHandleW(std::ptr::null()) } as u64;
    let me = find(exe_name);
    assert_eq!(me.base_avma, base);
    assert_ne!(me.debug_id, [0; 16]);
    assert_eq!(me.debug_file, me.name);
    let code_id = me.code_id_string();
    assert!(
        code_id.len() > 8 && code_id.chars().all(|c| c.is_ascii_hexdigit()),
        "{code_id}"
    );
}

#[test]
fn a_dll_loaded_while_sampling_is_attributed_and_unwound() {
    let _g = profiler_lock();
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("windows-dll");
    std::fs::create_dir_all(&dir).unwrap();
    let names = ["spin-a.dll", "spin-b.dll"];
    for n in names {
        std::fs::copy(
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pe-spin.dll"),
            dir.join(n),
        )
        .unwrap();
    }
    let mut profiler = Profiler::builder()
        .frequency(1000)
        .clock(Clock::Wall)
        .build()
        .unwrap();
    profiler.start().unwrap();
    let mut ranges = Vec::new();
    for n in names {
        // Loaded after sampling began, used by a thread, unloaded: the next one may take its
        // place in memory.
        let path = wide(dir.join(n).to_str().unwrap());
        // SAFETY: loads the fixture DLL, whose `spin(u64) -> u64` only computes.
        let h = unsafe { LoadLibraryW(path.as_ptr()) };
        assert!(!h.is_null(), "{n} loads");
        // SAFETY: the export exists with this signature (tests/fixtures/pe-spin.c).
        let spin: extern "C" fn(u64) -> u64 =
            unsafe { std::mem::transmute(GetProcAddress(h, c"spin".as_ptr().cast())) };
        let worker = std::thread::Builder::new()
            .name(format!("user-{n}"))
            .spawn(move || {
                let t0 = my_cpu_ns();
                let deadline = Instant::now() + Duration::from_secs(60);
                while my_cpu_ns() - t0 < 800_000_000 && Instant::now() < deadline {
                    black_box(spin(2000));
                }
            })
            .unwrap();
        worker.join().unwrap();
        ranges.push((n, h as u64));
        // SAFETY: no code of the DLL runs any more.
        unsafe { FreeLibrary(h) };
    }
    let p = profiler.stop().unwrap().to_profile();
    for (n, base) in ranges {
        let t = p
            .threads
            .iter()
            .find(|t| t.name == format!("user-{n}"))
            .unwrap_or_else(|| panic!("user-{n} sampled"));
        let m = p
            .modules
            .iter()
            .position(|m| m.name.eq_ignore_ascii_case(n))
            .unwrap_or_else(|| panic!("{n} listed"));
        assert_eq!(p.modules[m].base_avma, base);
        let in_dll = t
            .samples
            .iter()
            .filter(|s| p.stack_frames(s.stack).next().unwrap().module as usize == m + 1)
            .collect::<Vec<_>>();
        let rooted = in_dll.iter().filter(|s| s.end == EndReason::Root).count();
        eprintln!(
            "{n} at {base:#x}: {} of {} samples of its user in it, {rooted} rooted",
            in_dll.len(),
            t.samples.len()
        );
        // The rest are in thread start and exit, and in the CPU-time calls (system calls under
        // wine).
        assert!(
            in_dll.len() >= 3 && in_dll.len() * 10 >= t.samples.len() * 6,
            "{n}: most samples in the DLL"
        );
        assert_eq!(
            rooted,
            in_dll.len(),
            "{n}: every walk crosses the DLL to the root"
        );
    }
}

/// Rotation and a flight recorder on the suspending engine: chunks follow on with abutting
/// time ranges and a sleeping thread's weights cover the whole run under the wall clock; a
/// hang watchdog's window names the silent thread.
#[test]
fn rotation_and_the_flight_recorder_work_by_suspension() {
    let _g = profiler_lock();
    let mut profiler = Profiler::builder()
        .frequency(200)
        .clock(Clock::Wall)
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sleeper = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("win-sleeper".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(3));
                }
            })
            .unwrap()
    };
    profiler.start().unwrap();
    let mut chunks: Vec<Profile> = Vec::new();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(50));
        chunks.push(profiler.rotate().unwrap().to_profile());
    }
    chunks.push(profiler.stop().unwrap().to_profile());
    for (i, w) in chunks.windows(2).enumerate() {
        assert_eq!(w[0].chunk.sequence + 1, w[1].chunk.sequence, "chunk {i}");
        assert_eq!(
            w[0].start_unix_ns + w[0].duration_ns,
            w[1].start_unix_ns,
            "chunk {i}"
        );
    }
    let total_ns: u64 = chunks.iter().map(|p| p.duration_ns).sum();
    let expected = total_ns / chunks[0].interval_ns;
    let weights: u64 = (chunks.iter())
        .flat_map(|p| p.threads.iter().filter(|t| t.name == "win-sleeper"))
        .flat_map(|t| &t.samples)
        .map(|s| s.weight as u64)
        .sum();
    let lost: u64 = chunks.iter().map(|p| p.lost.total()).sum();
    eprintln!("sleeper: weight {weights} of {expected} intervals, {lost} lost");
    assert!(
        weights <= expected + 2 && weights + lost + expected / 10 + 2 >= expected,
        "weight {weights} of {expected}"
    );
    stop.store(true, Ordering::Relaxed);
    sleeper.join().unwrap();

    drop(profiler);
    let mut recorder = Profiler::builder()
        .frequency(200)
        .clock(Clock::Wall)
        .flight_recorder(Duration::from_millis(500))
        .build()
        .unwrap();
    recorder.start().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let triggers = recorder
        .deliver(None, move |w| {
            let _ = tx.send(w.to_profile());
        })
        .unwrap();
    let release = Arc::new(AtomicBool::new(false));
    let hung = {
        let (release, triggers) = (release.clone(), triggers.clone());
        std::thread::spawn(move || {
            let beat = triggers.heartbeat("win loop", Duration::from_millis(150));
            beat.beat();
            let tid = Profiler::current_thread_id();
            spin_until(u64::MAX, &release);
            tid
        })
    };
    let w = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a hang window");
    release.store(true, Ordering::Relaxed);
    let tid = hung.join().unwrap();
    let t = w.chunk.trigger.clone().expect("a trigger");
    assert_eq!(
        (t.kind, t.tid, t.note.as_str()),
        (vignette::TriggerKind::Hang, tid as u32, "win loop")
    );
    assert_eq!(w.chunk.window_ns, 500_000_000);
    assert!(w
        .threads
        .iter()
        .any(|th| th.tid == tid as u32 && !th.samples.is_empty()));
    recorder.stop().unwrap();
}

/// Labels on the suspending engine: the sampler reads a thread's labels while it is suspended,
/// so samples of a thread spinning under one carry it, and none after its guard is dropped.
#[test]
fn labels_are_read_while_the_thread_is_suspended() {
    use vignette::labels::{self, LabelKey};
    let _g = profiler_lock();
    let mut profiler = Profiler::builder()
        .frequency(500)
        .clock(Clock::Wall)
        .build()
        .unwrap();
    profiler.start().unwrap();
    let tid = std::thread::spawn(|| {
        let key = LabelKey::new("job");
        {
            let _l = labels::set(key, 77);
            spin_until(400_000_000, &AtomicBool::new(false));
        }
        Profiler::current_thread_id()
    })
    .join()
    .unwrap();
    let p = profiler.stop().unwrap().to_profile();
    let t = p
        .threads
        .iter()
        .find(|t| t.tid == tid as u32)
        .expect("the thread's samples");
    let labelled = t
        .samples
        .iter()
        .filter(|s| p.labels.of(s.labels).any(|(k, v)| k == "job" && v == "77"))
        .count();
    eprintln!("{labelled} of {} samples labelled", t.samples.len());
    assert!(t.samples.len() > 20);
    // The thread's last samples may fall after the guard (it exits right after).
    assert!(
        labelled * 100 >= (t.samples.len() - 2) * 99,
        "{labelled} of {}",
        t.samples.len()
    );
}
