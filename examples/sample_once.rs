//! On-demand sampling: take samples of chosen threads, right now, without a sampler thread.
//!
//! A busy thread and a sleeping thread run; the main thread samples the busy one 20 times, then
//! every thread once, and prints what it captured.
//!
//! `cargo run --example sample_once -- [OUT]` (default `profiles/sample_once.vignette`).

#[path = "common/workload.rs"]
mod workload;

use std::error::Error;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use vignette::{Profiler, Target};

#[inline(never)]
fn boring_one(stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "profiles/sample_once.vignette".into());
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let busy = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("fun-one".into())
            .spawn(move || {
                tx.send(Profiler::current_thread_id()).ok();
                workload::worker_loop(1, &stop)
            })?
    };
    let boring = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("boring-one".into())
            .spawn(move || boring_one(&stop))?
    };
    let busy_tid = rx.recv()?;
    std::thread::sleep(Duration::from_millis(50));

    let mut profiler = Profiler::builder().build()?;
    for _ in 0..20 {
        profiler.sample_once(Target::Thread(busy_tid))?;
        std::thread::sleep(Duration::from_millis(5));
    }
    profiler.sample_once(Target::AllThreads)?;
    stop.store(true, Ordering::Relaxed);
    busy.join().ok();
    boring.join().ok();

    let capture = profiler.stop()?;
    if let Some(dir) = std::path::Path::new(&out).parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::io::BufWriter::new(std::fs::File::create(&out)?);
    capture.write_to(&mut file)?;
    let profile = capture.to_profile();
    println!("wrote {out}");
    for t in &profile.threads {
        println!("thread {} ({}): {} samples", t.tid, t.name, t.samples.len());
        if let Some(s) = t.samples.last() {
            for f in profile.stack_frames(s.stack) {
                let module = f
                    .module
                    .checked_sub(1)
                    .map(|m| profile.modules[m as usize].name.as_str());
                println!("    {}+{:#x}", module.unwrap_or("?"), f.address);
            }
        }
    }
    Ok(())
}
