//! Telemetry: profile continuously, and every few seconds POST the chunk since the last one to
//! a collector, without ever stopping the profiler.
//!
//! `cargo run --release --example rotate_upload -- URL [SECONDS] [EVERY_MS]`
//! (defaults: 3 seconds of the demo workload, a chunk every 1000 ms). URL is a plain
//! `http://host:port/path` (this example speaks HTTP/1.1 itself, to need no client crate; use
//! your HTTP client of choice for HTTPS). Each request carries one complete profile
//! (`application/x-vignette`) with its sequence number in `X-Vignette-Sequence`, so the
//! collector can tell a missing chunk from a quiet process.

#[path = "common/workload.rs"]
mod workload;

use std::error::Error;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use vignette::Profiler;

/// POSTs `body` to `url` (`http://host:port/path`); returns the response's status line.
fn post(url: &str, sequence: u64, body: &[u8]) -> Result<String, Box<dyn Error>> {
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-vignette\r\n\
         X-Vignette-Sequence: {sequence}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response.lines().next().unwrap_or("").to_string())
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: rotate_upload URL [SECONDS] [EVERY_MS]")?;
    let seconds: f64 = args.next().map_or(Ok(3.0), |s| s.parse())?;
    let every_ms: u64 = args.next().map_or(Ok(1000), |s| s.parse())?;

    let mut profiler = Profiler::builder().frequency(1000).build()?;
    profiler.start()?;
    // The three lines that matter: every chunk, on vignette's own thread, to the collector.
    let target = url.clone();
    profiler.deliver(Some(Duration::from_millis(every_ms)), move |chunk| {
        match post(&target, chunk.sequence(), &chunk.to_vec()) {
            Ok(status) => println!(
                "chunk {}: {} samples, {status}",
                chunk.sequence(),
                chunk.sample_count()
            ),
            // A failed upload costs that chunk only; a real client might queue and retry it.
            Err(e) => eprintln!("chunk {}: upload failed: {e}", chunk.sequence()),
        }
    })?;
    workload::run_for(4, (seconds * 1000.0) as u64);
    // The rest, since the last delivered chunk.
    let last = profiler.stop()?;
    let status = post(&url, last.sequence(), &last.to_vec())?;
    println!(
        "chunk {} (last): {} samples, {status}",
        last.sequence(),
        last.sample_count()
    );
    Ok(())
}
