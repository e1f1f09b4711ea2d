//! `vignette`: make symbol stores, resolve profiles, and convert them to the formats people
//! view profiles in. A thin layer over `vignette::tools`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vignette::tools::{self, read_profile, Format, ToolError};
use vignette::EndReason;

#[derive(Parser)]
#[command(
    name = "vignette",
    version,
    about = "Symbols, resolution and conversion for vignette profiles"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write Breakpad .sym files for ELF, PE or PDB files into a symbol store (<debug file>/<DEBUG_ID>/<file>.sym)
    Symbols {
        /// Binaries with debug info or at least a symbol table (ELF; PE with DWARF or its PDB beside it), or PDB files
        #[arg(required_unless_present = "profile")]
        binaries: Vec<PathBuf>,
        /// Also every module of this profile whose file exists on this machine (same build ID)
        #[arg(long)]
        profile: Option<PathBuf>,
        /// Where to look for the profile's modules by file name, before the system's library
        /// folders (profiles record file names, not paths, unless the application opted in)
        #[arg(long = "search", value_name = "DIR")]
        search: Vec<PathBuf>,
        /// The symbol store folder
        #[arg(long)]
        store: PathBuf,
        /// Where separate debug files of stripped binaries are (by build ID or .gnu_debuglink)
        #[arg(long = "debug-dir", default_value = "/usr/lib/debug")]
        debug_dirs: Vec<PathBuf>,
    },
    /// Resolve a profile's frames and report which modules have no symbols; or name a
    /// dataset's frames again (`vignette export`), with symbols that came after it
    #[command(group = clap::ArgGroup::new("symbol_sources").args(["sources", "debuginfod"]).required(true).multiple(true))]
    Resolve {
        /// The profile, or a dataset's folder (its symbols table is written again)
        profile: PathBuf,
        #[command(flatten)]
        symbols: Symbols,
        /// Write the resolved profile here (convert reads it without needing symbols)
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Convert a profile (plain, with --symbols, or resolved) to another format
    Convert {
        /// The profile
        profile: PathBuf,
        /// The output format
        #[arg(long, value_parser = choices(&Format::ALL, |f| (f.name(), f.about())))]
        to: Format,
        /// The output file (`-`: standard output)
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        symbols: Symbols,
        /// Only the samples labelled KEY=VALUE (see vignette::labels)
        #[arg(long, value_name = "KEY=VALUE")]
        filter: Option<tools::labels::LabelFilter>,
        /// Each labelled stack under a root frame naming its labels (for speedscope, collapsed,
        /// SVG and Firefox, which have no labels of their own; pprof carries them as labels)
        #[arg(long)]
        label_frames: bool,
        /// The heap instead of the CPU samples (pprof, collapsed, svg), weighed by bytes in use
        /// or allocated (pprof: Go's four heap sample types, this one the default); speedscope
        /// always has the heap beside the threads
        #[arg(long, value_name = "MEASURE",
              value_parser = choices(&tools::heap::HeapMeasure::ALL, |m| (m.name(), m.about())))]
        heap: Option<tools::heap::HeapMeasure>,
    },
    /// The hottest functions by self and total time, merged or per thread
    Report {
        /// The profile
        profile: PathBuf,
        #[command(flatten)]
        symbols: Symbols,
        /// One table per thread instead of all threads merged
        #[arg(long)]
        per_thread: bool,
        /// Rows per table
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Order rows by self time (where the CPU went) or total time (what it ran under)
        #[arg(long, default_value = "self",
              value_parser = choices(&tools::report::Sort::ALL, |o| (o.name(), o.about())))]
        sort: tools::report::Sort,
        /// Inlined functions as rows of their own (by default their time counts for the
        /// function they were inlined into)
        #[arg(long)]
        inlined: bool,
        /// Only the samples labelled KEY=VALUE (see vignette::labels)
        #[arg(long, value_name = "KEY=VALUE")]
        filter: Option<tools::labels::LabelFilter>,
        /// One table per value of the label KEY, heaviest first
        #[arg(long, value_name = "KEY")]
        by: Option<String>,
    },
    /// Merge profiles (chunks of a session, or many processes and machines) into one
    Merge {
        /// The profiles
        #[arg(required = true, num_args = 1..)]
        profiles: Vec<PathBuf>,
        /// The merged profile
        #[arg(short, long)]
        output: PathBuf,
        /// Threads of the same name become one thread (by default each input's threads are
        /// kept apart)
        #[arg(long)]
        fold_threads: bool,
    },
    /// Compare two profiles: per function, its share before and after
    Diff {
        /// The profile to compare against (before), or a folder of them: with two or more on
        /// each side, each profile is one observation and every change gets a confidence
        /// interval and a q-value (Welch's t-test, Benjamini-Hochberg)
        base: PathBuf,
        /// The profile to compare (after), or a folder of them
        new: PathBuf,
        #[command(flatten)]
        symbols: Symbols,
        /// The output: a table sorted by change, pprof (base samples negated, as `go tool
        /// pprof -diff_base` keeps them) or a differential flame graph (red grew, blue shrank)
        #[arg(long, value_enum, default_value = "report")]
        to: DiffFormat,
        /// The output file (pprof and svg; the report goes to stdout)
        #[arg(short, long, required_if_eq_any = [("to", "pprof"), ("to", "svg")])]
        output: Option<PathBuf>,
        /// Rows in the report
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Write profiles as a Parquet dataset that SQL engines read (DuckDB, Spark, BigQuery,
    /// ClickHouse): profiles with their metadata, samples per stack, stacks, frames, modules,
    /// and every distinct frame's name (profiles/DATASET.md)
    Export {
        /// Profiles, or folders of them (every *.vignette file in each)
        #[arg(required = true, num_args = 1..)]
        profiles: Vec<PathBuf>,
        /// The dataset's folder (created if needed; its tables are replaced)
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        symbols: Symbols,
    },
    /// Summarize a profile: threads, samples, modules, how stacks ended
    Info {
        /// The profile
        profile: PathBuf,
        /// The same facts as one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Profile a program, unmodified, and every program it starts: one profile per process,
    /// written when it exits (Linux; a library injected with LD_PRELOAD)
    #[cfg(target_os = "linux")]
    Record {
        /// The folder the profiles go to (created if needed)
        #[arg(short = 'o', long = "output", default_value = "vignette-profiles")]
        out: PathBuf,
        /// Samples per second of each thread's CPU time (default 1000)
        #[arg(long, value_name = "HZ")]
        rate: Option<u32>,
        /// Keep vignette's cost within this percent of the program's CPU time, sampling less
        /// when needed (0.01 to 100; 1 is a budget nobody measures)
        #[arg(long, value_name = "PERCENT")]
        max_overhead: Option<f64>,
        /// The library to inject (default: libvignette_preload.so beside this executable)
        #[arg(long)]
        lib: Option<PathBuf>,
        /// The program and its arguments (after `--`)
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        program: Vec<std::ffi::OsString>,
    },
}

/// Where symbols come from (`--symbols`, `--debuginfod`, `--symbol-cache`).
#[derive(clap::Args, Debug, Default)]
struct Symbols {
    /// Symbol stores, binaries or .sym files; Breakpad stores over HTTP(S) (`https://host/path`);
    /// debuginfod servers (`debuginfod:https://host`). Tried in order; what servers give is
    /// cached
    #[arg(long = "symbols", num_args = 1.., value_name = "SOURCE")]
    sources: Vec<String>,
    /// Also the debuginfod servers in DEBUGINFOD_URLS
    #[arg(long)]
    debuginfod: bool,
    /// Where symbols fetched from servers are kept (a store; misses are remembered for a day)
    /// [default: $XDG_CACHE_HOME/vignette/symbols or ~/.cache/vignette/symbols]
    #[arg(long, value_name = "DIR")]
    symbol_cache: Option<PathBuf>,
}

impl Symbols {
    fn is_empty(&self) -> bool {
        self.sources.is_empty() && !self.debuginfod
    }
}

/// `path`, or every `*.vignette` file in the folder `path`, by name.
fn profile_files(path: &Path) -> Result<Vec<PathBuf>, ToolError> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| ToolError::io(path, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "vignette") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ToolError::new(
            tools::ErrorKind::NotFound,
            format!("no .vignette files in {}", path.display()),
        ));
    }
    Ok(files)
}

/// The profile at `path`, or every `*.vignette` file in the folder `path`, by name.
fn profiles_at(path: &Path) -> Result<Vec<vignette::Profile>, ToolError> {
    if !path.is_dir() {
        return Ok(vec![read_profile(path)?]);
    }
    let files = profile_files(path)?;
    // One damaged file costs that profile, with a warning.
    let profiles: Vec<vignette::Profile> = (files.iter())
        .filter_map(|f| {
            read_profile(f)
                .map_err(|e| {
                    let e = tools::escape_controls(&e.to_string()).into_owned();
                    eprintln!("warning: skipping {e}");
                })
                .ok()
        })
        .collect();
    if profiles.is_empty() {
        return Err(ToolError::new(
            tools::ErrorKind::Profile,
            format!("no readable profile in {}", path.display()),
        ));
    }
    Ok(profiles)
}

/// A parser of one of `all`, each named and described by `describe` in `--help`.
fn choices<T>(
    all: &[T],
    describe: fn(&T) -> (&'static str, &'static str),
) -> impl clap::builder::TypedValueParser<Value = T>
where
    T: std::str::FromStr<Err = String> + Clone + Send + Sync + 'static,
{
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    let values = all
        .iter()
        .map(describe)
        .map(|(name, about)| PossibleValue::new(name).help(about));
    PossibleValuesParser::new(values).try_map(|s| s.parse::<T>())
}

/// What `vignette diff` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum DiffFormat {
    /// A table of functions, the largest change of self share first
    Report,
    /// gzipped pprof, base samples negated and labeled pprof::base
    Pprof,
    /// A differential SVG flame graph
    Svg,
}

/// Checks that `path` can be an output file before any work is done: its folder must exist (a
/// mistyped `-o` path does not create folders), and the error says what is wrong with it.
fn check_output(path: &Path) -> Result<(), ToolError> {
    let output = |message: String| {
        ToolError::new(
            tools::ErrorKind::Output,
            format!("cannot write {}: {message}", path.display()),
        )
        .at(path)
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // The nearest part of the path that exists says what is wrong.
    if let Some(a) = dir
        .ancestors()
        .find(|a| !a.as_os_str().is_empty() && a.exists())
    {
        if !a.is_dir() {
            return Err(output(format!("{} is a file, not a folder", a.display())));
        }
    }
    if !dir.is_dir() {
        return Err(output(format!(
            "the folder {} does not exist",
            dir.display()
        )));
    }
    if path.is_dir() {
        return Err(output("that is a folder".into()));
    }
    Ok(())
}

/// Writes an output file (see [`check_output`]).
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ToolError> {
    check_output(path)?;
    std::fs::write(path, bytes).map_err(|e| ToolError::io(path, e))
}

/// A spinner on stderr for work that takes more than a moment; invisible when stderr is not a
/// terminal.
fn spinner(message: String) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner().with_message(message);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// Resolves `p` with `symbols` (see [`tools::SymbolSources`]), showing progress on stderr: a
/// bar while fetching from servers, a spinner while resolving.
fn resolve_with(p: &vignette::Profile, symbols: &Symbols) -> Result<tools::Resolution, ToolError> {
    let urls = symbols
        .debuginfod
        .then(|| std::env::var("DEBUGINFOD_URLS").unwrap_or_default());
    let sources = tools::SymbolSources::parse(
        &symbols.sources,
        urls.as_deref(),
        symbols.symbol_cache.clone(),
    );
    let bar = std::sync::Mutex::new(None::<indicatif::ProgressBar>);
    let progress = |step: tools::sources::Progress| {
        use tools::sources::Progress;
        let mut bar = bar.lock().unwrap_or_else(|e| e.into_inner());
        match step {
            Progress::Fetching { done, of } => bar
                .get_or_insert_with(|| {
                    indicatif::ProgressBar::new(of as u64).with_message("fetching symbols")
                })
                .set_position(done as u64),
            Progress::Resolving { frames } => {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
                *bar = Some(spinner(format!("resolving {frames} frames")));
            }
            _ => {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
            }
        }
    };
    sources.resolve(p, &progress)
}

/// `vignette export`: the profiles stream into the dataset one at a time; a damaged one costs
/// itself, with a warning; the distinct frames are resolved once at the end. Returns what it
/// wrote.
fn export(paths: &[PathBuf], output: &Path, symbols: &Symbols) -> Result<String, ToolError> {
    let files = (paths.iter())
        .map(|p| profile_files(p))
        .collect::<Result<Vec<_>, _>>()?
        .concat();
    let mut dataset = tools::export::Export::create(output)?;
    let bar = indicatif::ProgressBar::new(files.len() as u64).with_message("exporting");
    let mut skipped = 0;
    for f in &files {
        bar.inc(1);
        match read_profile(f) {
            Ok(p) => {
                dataset.add(&f.to_string_lossy(), &p)?;
            }
            Err(e) => {
                skipped += 1;
                bar.suspend(|| {
                    eprintln!(
                        "warning: skipping {}",
                        tools::escape_controls(&e.to_string())
                    )
                });
            }
        }
    }
    bar.finish_and_clear();
    let res = if symbols.is_empty() {
        tools::resolve(dataset.distinct_frames(), &mut tools::SymbolStore::new(&[]))?
    } else {
        let res = resolve_with(dataset.distinct_frames(), symbols)?;
        report_missing(&res);
        res
    };
    let named = res.resolved_count(dataset.distinct_frames());
    let s = dataset.finish(&res)?;
    Ok(format!(
        "wrote {}: {} profiles{}, {} sample rows, {} stacks, {} frames ({named} named), {} modules",
        output.display(),
        s.profiles,
        if skipped > 0 {
            format!(" ({skipped} skipped)")
        } else {
            String::new()
        },
        s.sample_rows,
        s.stacks,
        s.frames,
        s.modules
    ))
}

/// `p` with only the samples `filter` names (all without one); an error if none has it.
fn filtered(
    p: vignette::Profile,
    filter: Option<&tools::labels::LabelFilter>,
) -> Result<vignette::Profile, tools::ToolError> {
    let Some(f) = filter else { return Ok(p) };
    tools::labels::check_key(&p, &f.key)?;
    let kept = tools::labels::filter(&p, f);
    if kept.sample_count() == 0 {
        return Err(tools::ToolError::new(
            tools::ErrorKind::Profile,
            format!("no sample is labelled {}={}", f.key, f.value),
        ));
    }
    Ok(kept)
}

fn report_missing(res: &tools::Resolution) {
    for w in &res.warnings {
        eprintln!("warning: {}", tools::escape_controls(w));
    }
    // A resolved profile read back keeps which modules had no symbols, not why.
    if !res.warnings.is_empty() {
        return;
    }
    for (name, id) in &res.missing {
        eprintln!(
            "no symbols for {} (debug ID {}): its frames keep module+offset names",
            tools::escape_controls(name),
            tools::escape_controls(id)
        );
    }
}

fn run(cli: Cli) -> Result<ExitCode, ToolError> {
    let mut out = std::io::stdout().lock();
    let mut say = |s: String| {
        let _ = writeln!(out, "{s}");
    };
    match cli.command {
        Command::Symbols {
            binaries,
            profile,
            search,
            store,
            debug_dirs,
        } => {
            for b in &binaries {
                let bar = spinner(format!("writing symbols for {}", b.display()));
                let path = tools::store::add_to_store(b, &store, &debug_dirs);
                bar.finish_and_clear();
                say(format!("{}", path?.display()));
            }
            // The profile's modules: best effort, each problem reported and skipped.
            let modules = match profile {
                Some(p) => read_profile(&p)?.modules,
                None => Vec::new(),
            };
            for m in modules {
                let name = tools::escape_controls(&m.name);
                let Some(dest) = tools::store::store_path(&store, &m.name, &m.debug_id_string())
                else {
                    eprintln!("skipping module {name}: unsafe name");
                    continue;
                };
                if dest.is_file() {
                    continue;
                }
                let path = match tools::store::local_file_of(&m, &search) {
                    Ok(path) => path,
                    Err(why) => {
                        eprintln!(
                            "skipping {name}: {}",
                            tools::escape_controls(&why.to_string())
                        );
                        continue;
                    }
                };
                let bar = spinner(format!("writing symbols for {name}"));
                // Stored under the name the profile knows (a soname, where the file found
                // is the versioned file it links to), so `resolve` finds it.
                let written =
                    tools::store::add_to_store_as(&path, Some(&m.name), &store, &debug_dirs);
                bar.finish_and_clear();
                match written {
                    Ok(written) => say(format!("{}", written.display())),
                    Err(e) => eprintln!("skipping {name}: {e}"),
                }
            }
        }
        Command::Resolve {
            profile,
            symbols,
            output,
        } => {
            if tools::export::is_dataset(&profile) {
                if output.is_some() {
                    return Err(ToolError::new(
                        tools::ErrorKind::Output,
                        "a dataset's symbols table is written again in its folder: no -o",
                    ));
                }
                let p = tools::export::dataset_frames(&profile)?;
                let res = resolve_with(&p, &symbols)?;
                report_missing(&res);
                let rows = tools::export::resymbolize(&profile, &res)?;
                say(format!(
                    "{} of {} frames resolved; wrote {} ({rows} names)",
                    res.resolved_count(&p),
                    res.frames.len(),
                    profile.join("symbols.parquet").display()
                ));
                return Ok(ExitCode::SUCCESS);
            }
            if let Some(output) = &output {
                check_output(output)?;
            }
            let p = read_profile(&profile)?;
            let res = resolve_with(&p, &symbols)?;
            say(format!(
                "{} of {} frames resolved",
                res.resolved_count(&p),
                res.frames.len()
            ));
            report_missing(&res);
            if let Some(output) = output {
                write_file(&output, &tools::ResolvedProfile::new(p, res).encode())?;
                say(format!("wrote {}", output.display()));
            }
        }
        Command::Convert {
            profile,
            to,
            output,
            symbols,
            filter,
            label_frames,
            heap,
        } => {
            let to_stdout = output.as_os_str() == "-";
            if !to_stdout {
                check_output(&output)?;
            }
            let (p, resolved) = tools::read_any(&profile)?;
            let p = filtered(p, filter.as_ref())?;
            let res = match (to, resolved) {
                (Format::PprofUnresolved, _) => tools::Resolution {
                    frames: Vec::new(),
                    missing: Vec::new(),
                    warnings: Vec::new(),
                },
                (_, Some(res)) if symbols.is_empty() => res,
                _ => resolve_with(&p, &symbols)?,
            };
            report_missing(&res);
            let title = profile
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let (p, res) = match label_frames {
                true => tools::labels::as_root_frames(&p, &res),
                false => (p, res),
            };
            let options = tools::ConvertOptions { title, heap };
            let bytes = tools::convert(to, &p, &res, &options)?;
            // `-o -`: the output on stdout, as Unix tools do; messages go to stderr only.
            if to_stdout {
                std::io::stdout()
                    .lock()
                    .write_all(&bytes)
                    .map_err(|e| ToolError::io(Path::new("standard output"), e))?;
                return Ok(ExitCode::SUCCESS);
            }
            write_file(&output, &bytes)?;
            eprintln!("wrote {}", output.display());
        }
        Command::Report {
            profile,
            symbols,
            per_thread,
            limit,
            sort,
            inlined,
            filter,
            by,
        } => {
            // A resolved profile (`vignette resolve -o`) reports with its own resolution,
            // unless symbols are named to resolve it again.
            let (p, resolved) = tools::read_any(&profile)?;
            let p = filtered(p, filter.as_ref())?;
            if let Some(key) = &by {
                tools::labels::check_key(&p, key)?;
            }
            let res = match resolved {
                Some(res) if symbols.is_empty() => res,
                _ => resolve_with(&p, &symbols)?,
            };
            report_missing(&res);
            let options = tools::report::Options {
                sort,
                limit,
                per_thread,
                inlined,
            };
            match by {
                None => say(tools::report::report(&p, &res, &options)),
                Some(key) => {
                    for (value, weight) in tools::labels::values(&p, &key) {
                        let f = tools::labels::LabelFilter {
                            key: key.clone(),
                            value: value.clone(),
                        };
                        let only = tools::labels::filter(&p, &f);
                        say(format!(
                            "{key}={}: {weight} sampling intervals\n{}",
                            tools::escape_controls(&value),
                            tools::report::report(&only, &res, &options)
                        ));
                    }
                }
            }
        }
        Command::Export {
            profiles,
            output,
            symbols,
        } => say(export(&profiles, &output, &symbols)?),
        Command::Merge {
            profiles,
            output,
            fold_threads,
        } => {
            check_output(&output)?;
            let bar = spinner(format!("reading {} profiles", profiles.len()));
            let inputs = profiles
                .iter()
                .map(|path| read_profile(path))
                .collect::<Result<Vec<_>, _>>();
            bar.finish_and_clear();
            let merged =
                tools::merge::merge(&inputs?, tools::merge::MergeOptions { fold_threads })?;
            write_file(&output, &merged.encode())?;
            say(format!(
                "wrote {}: {} samples, {} threads, {} modules",
                output.display(),
                merged.sample_count(),
                merged.threads.len(),
                merged.modules.len()
            ));
        }
        Command::Diff {
            base,
            new,
            symbols,
            to,
            output,
            limit,
        } => {
            if let Some(output) = &output {
                check_output(output)?;
            }
            let (before, after) = (profiles_at(&base)?, profiles_at(&new)?);
            let sets = match (before.len(), after.len()) {
                (1, 1) => None,
                _ => Some(tools::significance::combine_sets(&before, &after)?),
            };
            let cmp = match &sets {
                Some(sets) => &sets.pair,
                None => &tools::diff::combine(&before[0], &after[0])?,
            };
            let res = resolve_with(&cmp.profile, &symbols)?;
            report_missing(&res);
            let report = |limit| match &sets {
                Some(sets) => sets.report(&res, limit),
                None => cmp.report(&res, limit),
            };
            let title = format!(
                "{} -> {}",
                base.file_name().unwrap_or_default().to_string_lossy(),
                new.file_name().unwrap_or_default().to_string_lossy()
            );
            let bytes = match to {
                DiffFormat::Report if output.is_none() => {
                    say(report(limit));
                    return Ok(ExitCode::SUCCESS);
                }
                DiffFormat::Report => report(limit).into_bytes(),
                DiffFormat::Pprof => cmp.to_pprof(&res),
                DiffFormat::Svg => cmp.to_svg(&res, &title)?,
            };
            if let Some(path) = output {
                write_file(&path, &bytes)?;
                say(format!("wrote {}", path.display()));
            }
        }
        Command::Info { profile, json } => {
            let p = read_profile(&profile)?;
            if json {
                let doc = tools::info::to_json(&p);
                say(serde_json::to_string_pretty(&doc).unwrap_or_default());
                return Ok(ExitCode::SUCCESS);
            }
            let samples = p.sample_count();
            say(format!(
                "{}: {:?} clock, {} Hz, {:.3} s, {} samples, {} threads, {} modules",
                tools::escape_controls(&profile.display().to_string()),
                p.clock,
                1_000_000_000 / p.interval_ns.max(1),
                p.duration_ns as f64 / 1e9,
                samples,
                p.threads.len(),
                p.modules.len()
            ));
            if p.process_cpu_ns > 0 {
                say(format!(
                    "  exposure: {:.3} s of wall time, {:.3} s of the process's CPU",
                    p.duration_ns as f64 / 1e9,
                    p.process_cpu_ns as f64 / 1e9
                ));
            }
            for (what, pairs) in [("metadata", &p.metadata), ("system", &p.system)] {
                if !pairs.is_empty() {
                    let pairs: Vec<String> = (pairs.iter())
                        .map(|(k, v)| {
                            let (k, v) = (tools::escape_controls(k), tools::escape_controls(v));
                            format!("{k}={v}")
                        })
                        .collect();
                    say(format!("  {what}: {}", pairs.join(", ")));
                }
            }
            for t in &p.threads {
                say(format!(
                    "  thread {:>7} {:<16} {:>7} samples",
                    t.tid,
                    tools::escape_controls(&t.name),
                    t.samples.len()
                ));
            }
            if !p.jit.is_empty() {
                say(format!(
                    "  JIT code: {} names from the runtime's perf map",
                    p.jit.len()
                ));
            }
            if let Some(heap) = tools::heap::summary(&p) {
                say(format!("  {heap}"));
            }
            for m in &p.modules {
                let line = format!(
                    "  module {:<24} {} {}",
                    tools::escape_controls(&m.name),
                    m.debug_id_string(),
                    tools::escape_controls(&m.path)
                );
                say(line.trim_end().to_string());
            }
            for end in EndReason::ALL {
                let n = p
                    .threads
                    .iter()
                    .flat_map(|t| &t.samples)
                    .filter(|s| s.end == end)
                    .count();
                if n > 0 {
                    say(format!(
                        "  stacks ended: {:<24} {n:>7} ({:.2}%)",
                        end.name(),
                        100.0 * n as f64 / samples.max(1) as f64
                    ));
                }
            }
            if p.lost.total() > 0 {
                let reasons: Vec<String> = (p.lost.by_reason().into_iter())
                    .filter(|(_, n)| *n > 0)
                    .map(|(why, n)| format!("{why} {n}"))
                    .collect();
                say(format!(
                    "  lost: {} intervals ({})",
                    p.lost.total(),
                    reasons.join(", ")
                ));
            }
        }
        #[cfg(target_os = "linux")]
        Command::Record {
            out,
            rate,
            max_overhead,
            lib,
            program,
        } => {
            let lib = tools::record::preload_library(lib.as_deref())?;
            let sampling = tools::record::Sampling { rate, max_overhead };
            let r = tools::record::record(&program, &out, sampling, &lib)?;
            // The program's output is on stdout and stderr already: ours goes to stderr.
            report_recorded(&r, &out);
            return Ok(exit_code_of(r.status));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `record` wrote, on stderr.
#[cfg(target_os = "linux")]
fn report_recorded(r: &tools::record::Recorded, out: &Path) {
    const LISTED: usize = 10;
    if r.profiles.is_empty() {
        eprintln!(
            "vignette record: no profile was written to {} (a statically linked or setuid \
             program ignores LD_PRELOAD; a process killed by a signal or leaving by _exit \
             writes none)",
            out.display()
        );
        return;
    }
    eprintln!(
        "vignette record: {} profile{} in {}",
        r.profiles.len(),
        if r.profiles.len() == 1 { "" } else { "s" },
        out.display()
    );
    for path in r.profiles.iter().take(LISTED) {
        let shown = path.display().to_string();
        let name = tools::escape_controls(&shown);
        match read_profile(path) {
            Ok(p) => {
                eprintln!(
                    "  {name}: {} samples, {} threads",
                    p.sample_count(),
                    p.threads.len()
                );
                if let Some(line) = tools::report::not_sampled(&p) {
                    eprintln!("    {line}");
                }
            }
            Err(e) => eprintln!("  {name}: {e}"),
        }
    }
    if r.profiles.len() > LISTED {
        eprintln!("  and {} more", r.profiles.len() - LISTED);
    }
    eprintln!(
        "see one with `vignette report PROFILE --symbols SOURCES` (or `convert`); `vignette \
         merge` joins them"
    );
}

/// The exit code a shell gives a program that ended with `status` (128 + the signal that
/// killed it).
#[cfg(target_os = "linux")]
fn exit_code_of(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    ExitCode::from(code as u8)
}

fn main() -> ExitCode {
    tools::quiet_guarded_panics();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}
