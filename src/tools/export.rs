//! Profiles into a fleet dataset: a folder of Parquet tables any engine reads (DuckDB, Spark,
//! BigQuery, ClickHouse), documented in `profiles/DATASET.md`. Profiles stream through: each is
//! read, written and dropped; what stays in memory is one entry per distinct module, frame and
//! stack of the whole dataset (for which ids are shared), not the samples. Every distinct
//! frame is symbolicated once, at the end, into the `symbols` table that joins names onto the
//! stacks.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::columns::{optional, required, Column, Kind, Table, Value};
use super::merge::{module_key, ModuleKey};
use super::resolve::Resolution;
use super::ToolError;
use crate::{Frame, Module, ObjectFormat, Profile};

use Kind::{Bool, Int32, Int64, Text};

/// The metadata keys that get columns of their own in `profiles` (all are in `metadata`).
const APP_COLUMNS: [&str; 5] = ["app", "version", "build", "channel", "session"];
/// The system facts that get columns of their own in `profiles`.
const SYSTEM_COLUMNS: [&str; 6] = ["os", "os_version", "arch", "cpu", "cores", "memory_gib"];

const PROFILES: &[Column] = &[
    required("profile_id", Int64),
    required("file", Text),
    optional("app", Text),
    optional("version", Text),
    optional("build", Text),
    optional("channel", Text),
    optional("session", Text),
    optional("os", Text),
    optional("os_version", Text),
    optional("arch", Text),
    optional("cpu", Text),
    optional("cores", Text),
    optional("memory_gib", Text),
    required("start_unix_ns", Int64),
    required("duration_ns", Int64),
    required("process_cpu_ns", Int64),
    required("clock", Text),
    required("interval_ns", Int64),
    required("backend", Text),
    required("pid", Int64),
    required("samples", Int64),
    required("weight", Int64),
    required("not_sampled", Int64),
    required("chunk", Int64),
    required("window_ns", Int64),
    optional("trigger", Text),
    optional("trigger_at_ns", Int64),
    optional("trigger_late_ns", Int64),
    optional("trigger_tid", Int64),
];
const METADATA: &[Column] = &[
    required("profile_id", Int64),
    required("source", Text),
    required("key", Text),
    required("value", Text),
];
const SAMPLES: &[Column] = &[
    required("profile_id", Int64),
    required("tid", Int64),
    required("thread", Text),
    required("stack_id", Int64),
    required("label_set", Int64),
    required("weight", Int64),
    required("samples", Int64),
];
const LABELS: &[Column] = &[
    required("profile_id", Int64),
    required("label_set", Int64),
    required("key", Text),
    required("value", Text),
];
const STACKS: &[Column] = &[
    required("stack_id", Int64),
    required("depth", Int32),
    required("frame_id", Int64),
    required("leaf", Bool),
];
const FRAMES: &[Column] = &[
    required("frame_id", Int64),
    optional("module_id", Int64),
    required("offset", Int64),
];
const MODULES: &[Column] = &[
    required("module_id", Int64),
    required("name", Text),
    required("debug_file", Text),
    required("debug_id", Text),
    required("code_id", Text),
    required("format", Text),
];
const SYMBOLS: &[Column] = &[
    required("frame_id", Int64),
    required("position", Int32),
    required("function", Text),
    optional("file", Text),
    optional("line", Int64),
];

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Profiles written.
    pub profiles: u64,
    /// Rows of `samples`: distinct (profile, thread, stack, label set).
    pub sample_rows: u64,
    /// Distinct stacks.
    pub stacks: u64,
    /// Distinct frames (each symbolicated once).
    pub frames: u64,
    /// Distinct modules.
    pub modules: u64,
}

/// A dataset being written.
pub struct Export {
    profiles: Table,
    metadata: Table,
    samples: Table,
    labels: Table,
    stacks: Table,
    frames: Table,
    modules: Table,
    symbols: Table,
    module_ids: HashMap<ModuleKey, u32>,
    /// The distinct modules and frames, in id order (a frame's module is its id plus one, 0
    /// for none, as in a profile): what the symbols are looked up for.
    seen: Profile,
    frame_ids: HashMap<(u32, u64), u32>,
    /// Each distinct stack's frame ids, outermost first.
    stack_ids: HashMap<Vec<u32>, u64>,
}

impl Export {
    /// Creates the dataset's tables in `dir` (created if needed), replacing any there.
    pub fn create(dir: &Path) -> Result<Export, ToolError> {
        std::fs::create_dir_all(dir).map_err(|e| ToolError::io(dir, e))?;
        Ok(Export {
            profiles: Table::create(dir, "profiles", PROFILES)?,
            metadata: Table::create(dir, "metadata", METADATA)?,
            samples: Table::create(dir, "samples", SAMPLES)?,
            labels: Table::create(dir, "labels", LABELS)?,
            stacks: Table::create(dir, "stacks", STACKS)?,
            frames: Table::create(dir, "frames", FRAMES)?,
            modules: Table::create(dir, "modules", MODULES)?,
            symbols: Table::create(dir, "symbols", SYMBOLS)?,
            module_ids: HashMap::new(),
            seen: Profile::default(),
            frame_ids: HashMap::new(),
            stack_ids: HashMap::new(),
        })
    }

    /// Adds profile `p`, read from the file at `file` (the path as given: it tells profiles
    /// apart).
    pub fn add(&mut self, file: &str, p: &Profile) -> Result<(), ToolError> {
        let id = self.profiles.rows() as i64;
        // This profile's module and frame indexes in the dataset's.
        let modules: Vec<u32> = p
            .modules
            .iter()
            .map(|m| self.module(m))
            .collect::<Result<_, _>>()?;
        let frames: Vec<u32> = (p.frames.iter())
            .map(|f| {
                let module = (f.module as usize)
                    .checked_sub(1)
                    .and_then(|m| modules.get(m))
                    .map_or(0, |m| m + 1);
                self.frame(module, f.address)
            })
            .collect::<Result<_, _>>()?;
        // Weight and count per (thread, stack node, label set).
        let mut rows: BTreeMap<(usize, u32, u32), (u64, u64)> = BTreeMap::new();
        for (t, thread) in p.threads.iter().enumerate() {
            for s in &thread.samples {
                let row = rows.entry((t, s.stack, s.labels)).or_default();
                row.0 += s.weight as u64;
                row.1 += 1;
            }
        }
        let mut stack_of: HashMap<u32, u64> = HashMap::new();
        let mut used_sets = std::collections::BTreeSet::new();
        for ((t, node, set), (weight, count)) in rows {
            let stack = match stack_of.get(&node) {
                Some(&s) => s,
                None => {
                    let s = self.stack(p, node, &frames)?;
                    stack_of.insert(node, s);
                    s
                }
            };
            let thread = &p.threads[t];
            self.samples.row(&[
                Value::I64(id),
                Value::I64(thread.tid as i64),
                Value::Text(&thread.name),
                Value::u64(stack),
                Value::I64(set as i64),
                Value::u64(weight),
                Value::u64(count),
            ])?;
            used_sets.insert(set);
        }
        for set in used_sets {
            for (key, value) in p.labels.of(set) {
                self.labels.row(&[
                    Value::I64(id),
                    Value::I64(set as i64),
                    Value::Text(key),
                    Value::Text(&value),
                ])?;
            }
        }
        for (source, pairs) in [("app", &p.metadata), ("system", &p.system)] {
            for (k, v) in pairs {
                self.metadata.row(&[
                    Value::I64(id),
                    Value::Text(source),
                    Value::Text(k),
                    Value::Text(v),
                ])?;
            }
        }
        self.profile_row(id, file, p)
    }

    fn profile_row(&mut self, id: i64, file: &str, p: &Profile) -> Result<(), ToolError> {
        let weight: u64 = (p.threads.iter())
            .flat_map(|t| &t.samples)
            .map(|s| s.weight as u64)
            .sum();
        let trigger = p.chunk.trigger.as_ref();
        let mut row = vec![Value::I64(id), Value::Text(file)];
        row.extend(
            APP_COLUMNS
                .iter()
                .map(|k| Value::opt_text(p.metadata_value(k))),
        );
        row.extend(
            SYSTEM_COLUMNS
                .iter()
                .map(|k| Value::opt_text(p.system_fact(k))),
        );
        let clock = match p.clock {
            crate::Clock::Cpu => "cpu",
            crate::Clock::Wall => "wall",
        };
        row.extend([
            Value::u64(p.start_unix_ns),
            Value::u64(p.duration_ns),
            Value::u64(p.process_cpu_ns),
            Value::Text(clock),
            Value::u64(p.interval_ns),
            Value::Text(p.backend.name()),
            Value::I64(p.pid as i64),
            Value::u64(p.sample_count() as u64),
            Value::u64(weight),
            Value::u64(p.lost.total()),
            Value::u64(p.chunk.sequence),
            Value::u64(p.chunk.window_ns),
            Value::opt_text(trigger.map(|t| t.kind.name())),
            trigger.map_or(Value::Null, |t| Value::u64(t.at_ns)),
            trigger.map_or(Value::Null, |t| Value::u64(t.late_ns)),
            trigger.map_or(Value::Null, |t| Value::I64(t.tid as i64)),
        ]);
        self.profiles.row(&row)
    }

    /// The dataset's id of module `m`, written on first sight.
    fn module(&mut self, m: &Module) -> Result<u32, ToolError> {
        let key = module_key(m);
        if let Some(&id) = self.module_ids.get(&key) {
            return Ok(id);
        }
        let id = self.seen.modules.len() as u32;
        let format = match m.format {
            ObjectFormat::Elf => "elf",
            ObjectFormat::Pe => "pe",
            ObjectFormat::MachO => "macho",
        };
        self.modules.row(&[
            Value::I64(id as i64),
            Value::Text(&m.name),
            Value::Text(&m.debug_file),
            Value::Text(&m.debug_id_string()),
            Value::Text(&m.code_id_string()),
            Value::Text(format),
        ])?;
        self.module_ids.insert(key, id);
        self.seen.modules.push(m.clone());
        Ok(id)
    }

    /// The dataset's id of the frame at `address` in module `module` (its id plus one; 0 for
    /// none), written on first sight.
    fn frame(&mut self, module: u32, address: u64) -> Result<u32, ToolError> {
        if let Some(&id) = self.frame_ids.get(&(module, address)) {
            return Ok(id);
        }
        let id = self.seen.frames.len() as u32;
        let module_id = module
            .checked_sub(1)
            .map_or(Value::Null, |m| Value::I64(m as i64));
        self.frames
            .row(&[Value::I64(id as i64), module_id, Value::u64(address)])?;
        self.frame_ids.insert((module, address), id);
        self.seen.frames.push(Frame { module, address });
        Ok(id)
    }

    /// The dataset's id of stack node `node` of `p` (whose frames are `frames` here), written
    /// on first sight.
    fn stack(&mut self, p: &Profile, node: u32, frames: &[u32]) -> Result<u64, ToolError> {
        let mut path: Vec<u32> = Vec::new();
        let mut next = Some(node);
        while let Some(n) = next.and_then(|n| p.stacks.get(n as usize)) {
            path.extend(frames.get(n.frame as usize));
            next = n.parent.checked_sub(1);
        }
        path.reverse();
        if let Some(&id) = self.stack_ids.get(&path) {
            return Ok(id);
        }
        let id = self.stack_ids.len() as u64;
        for (depth, frame) in path.iter().enumerate() {
            self.stacks.row(&[
                Value::u64(id),
                Value::I32(depth as i32),
                Value::I64(*frame as i64),
                Value::Bool(depth + 1 == path.len()),
            ])?;
        }
        self.stack_ids.insert(path, id);
        Ok(id)
    }

    /// The distinct modules and frames so far, as a profile without samples: what
    /// [`Export::finish`] is given the resolution of.
    pub fn distinct_frames(&self) -> &Profile {
        &self.seen
    }

    /// Writes the names of every distinct frame (`res`, a resolution of
    /// [`Export::distinct_frames`]) and closes every table.
    pub fn finish(mut self, res: &Resolution) -> Result<Summary, ToolError> {
        write_symbols(&mut self.symbols, res)?;
        let summary = Summary {
            profiles: self.profiles.finish()?,
            sample_rows: self.samples.finish()?,
            stacks: self.stack_ids.len() as u64,
            frames: self.seen.frames.len() as u64,
            modules: self.seen.modules.len() as u64,
        };
        for t in [
            self.metadata,
            self.labels,
            self.stacks,
            self.frames,
            self.modules,
            self.symbols,
        ] {
            t.finish()?;
        }
        Ok(summary)
    }
}

/// Writes a row per name of every frame `res` resolved: a resolution lists inline frames
/// innermost first; positions count from the outermost, the order of a stack's depth.
fn write_symbols(symbols: &mut Table, res: &Resolution) -> Result<(), ToolError> {
    for (id, locations) in res.frames.iter().enumerate() {
        for (position, l) in locations.iter().rev().enumerate() {
            let line = match l.line {
                0 => Value::Null,
                n => Value::I64(n as i64),
            };
            symbols.row(&[
                Value::I64(id as i64),
                Value::I32(position as i32),
                Value::Text(&l.function),
                Value::opt_text(l.file.as_deref()),
                line,
            ])?;
        }
    }
    Ok(())
}

/// Whether `dir` holds a dataset [`Export`] wrote (its modules and frames tables).
pub fn is_dataset(dir: &Path) -> bool {
    dir.join("modules.parquet").is_file() && dir.join("frames.parquet").is_file()
}

/// The distinct modules and frames of the dataset in `dir`, as a profile without samples:
/// what symbols that came after the export are looked up for ([`resymbolize`]). Every module
/// and frame id must be the row's place, as [`Export`] writes them.
pub fn dataset_frames(dir: &Path) -> Result<Profile, ToolError> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::RowAccessor;
    let rows = |name: &str| -> Result<Vec<parquet::record::Row>, ToolError> {
        let path = dir.join(format!("{name}.parquet"));
        let bad = |e: parquet::errors::ParquetError| {
            ToolError::new(
                super::ErrorKind::Profile,
                format!("{}: not a table vignette export wrote: {e}", path.display()),
            )
            .at(&path)
        };
        let file = std::fs::File::open(&path).map_err(|e| ToolError::io(&path, e))?;
        let reader = SerializedFileReader::new(file).map_err(bad)?;
        let rows = reader.get_row_iter(None).map_err(bad)?;
        rows.map(|r| r.map_err(bad)).collect()
    };
    let damaged = |what: String| {
        ToolError::new(
            super::ErrorKind::Profile,
            format!("{}: {what}", dir.display()),
        )
    };
    let mut p = Profile::default();
    for (i, r) in rows("modules")?.iter().enumerate() {
        let text = |c: usize| r.get_string(c).map(String::as_str).unwrap_or_default();
        if r.get_long(0).ok() != Some(i as i64) {
            return Err(damaged(format!("module row {i} is not module {i}")));
        }
        let format = match text(5) {
            "pe" => ObjectFormat::Pe,
            "macho" => ObjectFormat::MachO,
            _ => ObjectFormat::Elf,
        };
        let (debug_id, age) = parse_debug_id(text(3)).unwrap_or(([0; 16], 0));
        p.modules.push(Module {
            name: text(1).to_string(),
            path: String::new(),
            start_avma: 0,
            end_avma: 0,
            base_avma: 0,
            code_id: parse_code_id(text(4), format),
            debug_id,
            age,
            debug_file: text(2).to_string(),
            format,
        });
    }
    for (i, r) in rows("frames")?.iter().enumerate() {
        if r.get_long(0).ok() != Some(i as i64) {
            return Err(damaged(format!("frame row {i} is not frame {i}")));
        }
        let module = match r.get_long(1) {
            Ok(m) if (0..p.modules.len() as i64).contains(&m) => m as u32 + 1,
            Ok(m) => {
                return Err(damaged(format!(
                    "frame {i} names module {m}, which is not there"
                )))
            }
            Err(_) => 0,
        };
        let address = (r.get_long(2)).map_err(|_| damaged(format!("frame {i} has no offset")))?;
        p.frames.push(Frame {
            module,
            address: address as u64,
        });
    }
    Ok(p)
}

/// Replaces the `symbols` table of the dataset in `dir` with `res` (a resolution of
/// [`dataset_frames`]); returns its rows.
pub fn resymbolize(dir: &Path, res: &Resolution) -> Result<u64, ToolError> {
    let mut symbols = Table::create(dir, "symbols", SYMBOLS)?;
    write_symbols(&mut symbols, res)?;
    symbols.finish()
}

/// A Breakpad debug ID (32 hex digits of the identifier, then the age in hex).
fn parse_debug_id(s: &str) -> Option<([u8; 16], u32)> {
    let (id, age) = (s.get(..32)?, s.get(32..)?);
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(id.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some((out, u32::from_str_radix(age, 16).ok()?))
}

/// A code ID as [`Module::code_id_string`] writes it, back into bytes (empty if it is not one).
fn parse_code_id(s: &str, format: ObjectFormat) -> Vec<u8> {
    let hex = |h: &str| -> Option<Vec<u8>> {
        if !h.len().is_multiple_of(2) {
            return None;
        }
        (0..h.len() / 2)
            .map(|i| u8::from_str_radix(h.get(i * 2..i * 2 + 2)?, 16).ok())
            .collect()
    };
    let bytes = match format {
        // A time stamp of 8 hex digits, then the image size.
        ObjectFormat::Pe => s.get(..8).zip(s.get(8..)).and_then(|(t, size)| {
            let t = u32::from_str_radix(t, 16).ok()?;
            let size = u32::from_str_radix(size, 16).ok()?;
            Some([t.to_be_bytes(), size.to_be_bytes()].concat())
        }),
        _ => hex(s),
    };
    bytes.unwrap_or_default()
}
