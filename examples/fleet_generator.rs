//! A fleet from one real capture, to try the fleet path (`vignette export`, `tools/fleet`) and
//! to check it (`scripts/check-fleet`): profiles of many machines running three releases on two
//! platforms, each drawn from the capture's samples, with release C's hottest function of the
//! main executable made 5% more expensive.
//!
//! ```text
//! cargo run --release --example fleet_generator -- CAPTURE OUT_DIR [PROFILES]
//! ```
//!
//! Writes `OUT_DIR/<release>-<platform>/m<i>.vignette` (PROFILES in all, default 10 000) and
//! prints the function it made slower as `module+0xoffset`. Deterministic: the same capture
//! and count give the same files.

use std::path::PathBuf;

use vignette::{Profile, Sample, Thread};

/// How much more release C spends in the chosen function.
const REGRESSION: f64 = 1.05;
const RELEASES: [&str; 3] = ["A", "B", "C"];
const PLATFORMS: [&str; 2] = ["linux", "windows"];

/// xorshift64*: small, fixed, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(capture), Some(out)) = (args.first(), args.get(1)) else {
        return Err("usage: fleet_generator CAPTURE OUT_DIR [PROFILES]".into());
    };
    let count: usize = args.get(2).map_or(Ok(10_000), |n| n.parse())?;
    let capture = vignette::tools::read_profile(std::path::Path::new(capture))?;
    let out = PathBuf::from(out);

    // Every sample of the capture as (thread, sample), weight times, to draw from.
    let pool: Vec<(usize, Sample)> = (capture.threads.iter().enumerate())
        .flat_map(|(t, th)| th.samples.iter().map(move |s| (t, *s)))
        .flat_map(|(t, s)| std::iter::repeat_n((t, Sample { weight: 1, ..s }), s.weight as usize))
        .collect();
    if pool.is_empty() {
        return Err("the capture has no samples".into());
    }
    // The function made slower: the leaf frame of the main executable (module 1) that the most
    // samples end in.
    let mut leaves = std::collections::HashMap::<u32, usize>::new();
    for (_, s) in &pool {
        let frame = capture.stacks[s.stack as usize].frame;
        if capture.frames[frame as usize].module == 1 {
            *leaves.entry(frame).or_default() += 1;
        }
    }
    let (&target, _) = (leaves.iter())
        .max_by_key(|(f, n)| (**n, std::cmp::Reverse(**f)))
        .ok_or("the capture has no sample in its main executable")?;
    let f = capture.frames[target as usize];
    println!("{}+{:#x}", capture.modules[0].name, f.address);
    let slower = |s: &Sample| capture.stacks[s.stack as usize].frame == target;

    for r in RELEASES {
        for p in PLATFORMS {
            std::fs::create_dir_all(out.join(format!("{r}-{p}")))?;
        }
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for i in 0..count {
        let (release, platform) = (RELEASES[i % 3], PLATFORMS[(i / 3) % 2]);
        // Machines differ in how long they ran: 200 to 2 000 samples.
        let n = 200 + (rng.next() % 1801) as usize;
        let boost = if release == "C" { REGRESSION } else { 1.0 };
        let mut threads: Vec<Thread> = (capture.threads.iter())
            .map(|t| Thread {
                samples: Vec::new(),
                ..t.clone()
            })
            .collect();
        let mut drawn = 0;
        while drawn < n {
            let (t, s) = pool[(rng.next() % pool.len() as u64) as usize];
            // Rejection: the slower function's samples are kept always, the others with
            // probability 1/boost, so its share grows by the boost relative to the rest.
            if boost > 1.0 && !slower(&s) && rng.unit() * boost > 1.0 {
                continue;
            }
            threads[t].samples.push(Sample {
                dt_us: capture.interval_ns / 1000,
                ..s
            });
            drawn += 1;
        }
        threads.retain(|t| !t.samples.is_empty());
        let ns = n as u64 * capture.interval_ns;
        let mut system: Vec<(String, String)> = capture
            .system
            .iter()
            .filter(|(k, _)| k != "os")
            .cloned()
            .collect();
        system.push(("os".into(), platform.into()));
        let profile = Profile {
            start_unix_ns: 1_800_000_000_000_000_000 + i as u64 * 1_000_000_000,
            duration_ns: ns * 2,
            process_cpu_ns: ns,
            threads,
            metadata: vec![
                ("app".into(), "demo".into()),
                ("version".into(), release.into()),
                ("channel".into(), "release".into()),
                ("session".into(), format!("machine-{i}")),
            ],
            system,
            pid: 1000 + i as u32,
            rates: Vec::new(),
            ..capture.clone()
        };
        let path = out.join(format!("{release}-{platform}/m{i:05}.vignette"));
        std::fs::write(path, profile.encode())?;
    }
    Ok(())
}
