//! What `vignette record` injects into a program with `LD_PRELOAD`: when it is loaded with
//! `VIGNETTE_RECORD_DIR` set, it starts a profiler with the defaults (the rate from
//! `VIGNETTE_RECORD_HZ`, the overhead budget from `VIGNETTE_RECORD_MAX_OVERHEAD`, if set) and, at exit, writes `DIR/<program>-<pid>.vignette`. Without
//! that variable it does nothing. It never prints: the program's output stays its own.
//!
//! A child that `fork`s without `exec` inherits the profiler but not its sampler thread and
//! writes nothing; one that `exec`s loads this library again and is profiled on its own.
//! (Linux only; the library is empty elsewhere.)

#[cfg(target_os = "linux")]
mod record {
    use std::io::Write;
    use std::sync::Mutex;

    use vignette::Profiler;

    /// The profiler, and the process that started it.
    static RECORDING: Mutex<Option<(Profiler, u32)>> = Mutex::new(None);

    /// Runs when the library is loaded, before the program's `main`.
    #[used]
    #[link_section = ".init_array"]
    static START: extern "C" fn() = start;

    extern "C" fn start() {
        // Never let a failure here unwind into the loader.
        let _ = std::panic::catch_unwind(|| {
            if std::env::var_os("VIGNETTE_RECORD_DIR").is_none() {
                return;
            }
            let mut builder = Profiler::builder();
            if let Some(hz) = std::env::var("VIGNETTE_RECORD_HZ")
                .ok()
                .and_then(|v| v.parse().ok())
            {
                builder = builder.frequency(hz);
            }
            if let Some(percent) = std::env::var("VIGNETTE_RECORD_MAX_OVERHEAD")
                .ok()
                .and_then(|v| v.parse().ok())
            {
                builder = builder.max_overhead(percent);
            }
            let Ok(mut profiler) = builder.build() else {
                return;
            };
            if profiler.start().is_err() {
                return;
            }
            if let Ok(mut slot) = RECORDING.lock() {
                *slot = Some((profiler, std::process::id()));
                // SAFETY: registers a function without arguments that lives as long as the
                // program (this library is never unloaded while the program runs).
                unsafe { libc::atexit(stop_and_write) };
            }
        });
    }

    /// At exit: stops the profiler and writes its profile (in the process that started it).
    extern "C" fn stop_and_write() {
        let _ = std::panic::catch_unwind(|| {
            let Some((mut profiler, owner)) = RECORDING.lock().ok().and_then(|mut s| s.take())
            else {
                return;
            };
            if owner != std::process::id() {
                // A child forked without exec: the profiler is its parent's.
                std::mem::forget(profiler);
                return;
            }
            let Some(dir) = std::env::var_os("VIGNETTE_RECORD_DIR") else {
                return;
            };
            let path = std::path::Path::new(&dir).join(format!("{}-{owner}.vignette", program()));
            if let Ok(capture) = profiler.stop() {
                let mut bytes = Vec::with_capacity(capture.encoded_len());
                if capture.write_to(&mut bytes).is_ok() {
                    if let Ok(mut f) = std::fs::File::create(&path) {
                        let _ = f.write_all(&bytes);
                    }
                }
            }
        });
    }

    /// The program's file name, reduced to characters safe in a file name.
    fn program() -> String {
        let name = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        let safe: String = name
            .chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
                _ => '_',
            })
            .take(64)
            .collect();
        if safe.is_empty() {
            "program".into()
        } else {
            safe
        }
    }
}
