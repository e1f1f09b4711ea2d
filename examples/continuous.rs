//! Continuous profiling of a multi-threaded CPU workload; writes an un-symbolicated profile.
//!
//! `cargo run --release --example continuous -- [OUT] [SECONDS] [THREADS]`
//! (defaults: `target/demo/demo.vignette`, 2 seconds, 4 workers). `scripts/demo` builds the same
//! file as the `continuous` binary of `examples/demo`, which needs no dev-dependencies.

#[path = "common/workload.rs"]
mod workload;

use std::error::Error;
use std::io::BufWriter;

use vignette::{Clock, Profiler};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let out = args
        .next()
        .unwrap_or_else(|| "target/demo/demo.vignette".into());
    let seconds: f64 = args.next().map_or(Ok(2.0), |s| s.parse())?;
    let threads: usize = args.next().map_or(Ok(4), |s| s.parse())?;

    let mut profiler = Profiler::builder()
        .frequency(1000)
        .clock(Clock::Cpu)
        .build()?;
    profiler.start()?;
    let units = workload::run_for(threads, (seconds * 1000.0) as u64);
    // On Windows threads are suspended to be sampled: what that cost.
    #[cfg(windows)]
    let suspensions = profiler.suspensions();
    let capture = profiler.stop()?;

    if let Some(dir) = std::path::Path::new(&out).parent() {
        std::fs::create_dir_all(dir)?;
    }
    let bytes = capture.write_to(BufWriter::new(std::fs::File::create(&out)?))?;
    let profile = capture.to_profile();
    println!("workers finished {units:?} units of work");
    println!(
        "wrote {out}: {} samples ({}), {} threads, {} frames, {} stacks, {} modules, {bytes} bytes",
        profile.sample_count(),
        profile.backend.name(),
        profile.threads.len(),
        profile.frames.len(),
        profile.stacks.len(),
        profile.modules.len(),
    );
    for t in &profile.threads {
        let ended_at_root = t
            .samples
            .iter()
            .filter(|s| s.end == vignette::EndReason::Root)
            .count();
        let intervals: u64 = t.samples.iter().map(|s| s.weight as u64).sum();
        println!(
            "  {:>7} {:<16} {:>6} samples for {intervals} intervals of CPU \
             ({ended_at_root} reached the root)",
            t.tid,
            t.name,
            t.samples.len()
        );
    }
    let all: Vec<_> = profile.threads.iter().flat_map(|t| &t.samples).collect();
    let rooted = all
        .iter()
        .filter(|s| s.end == vignette::EndReason::Root)
        .count();
    println!(
        "  {rooted} of {} samples ({:.2}%) unwound to the thread's entry",
        all.len(),
        100.0 * rooted as f64 / all.len().max(1) as f64
    );
    for m in &profile.modules {
        println!(
            "  module {:<24} debug id {} code id {}",
            m.name,
            m.debug_id_string(),
            m.code_id_string()
        );
    }
    #[cfg(windows)]
    {
        let s = suspensions;
        let n = s.count.max(1);
        println!(
            "  {} suspensions: {:.1} us each on average, {:.1} us at most; walking a copy took \
             {:.1} us on average; {} of {} reads of module memory from vignette's cache",
            s.count,
            s.suspended_ns as f64 / n as f64 / 1000.0,
            s.longest_ns as f64 / 1000.0,
            s.walk_ns as f64 / n as f64 / 1000.0,
            s.image_reads_cached,
            s.image_reads
        );
    }
    let lost = profile.lost;
    if lost.total() > 0 {
        println!("  lost: {lost:?}");
    }
    Ok(())
}
