//! OpenTelemetry profiles: `opentelemetry.proto.profiles.v1development.ProfilesData`, whose
//! fields are also those of the OTLP `ExportProfilesServiceRequest` a collector takes. Every
//! mapping carries the module's GNU build ID (`process.executable.build_id.gnu`) and every
//! location its raw address, so a back end can symbolize what vignette could not; frames that
//! were resolved also carry their functions, files and lines (inline frames innermost first).
//! Samples are aggregated per thread, stack and label set, their value the time they stand for.

use std::collections::HashMap;

use super::protobuf::{Msg, Strings};
use super::resolve::{fallback_name, Resolution};
use crate::{Clock, ObjectFormat, Profile};

/// An attribute's value.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Value {
    Text(String),
    Int(i64),
}

impl Value {
    /// As an `opentelemetry.proto.common.v1.AnyValue`.
    fn any(&self) -> Msg {
        let mut m = Msg::default();
        match self {
            Value::Text(s) => m.bytes(1, s.as_bytes()),
            // Written even when zero: an AnyValue without its field is no value at all.
            Value::Int(v) => m.int_present(3, *v as u64),
        };
        m
    }
}

/// The attribute table: index 0 is the zero entry, as the format asks.
struct Attributes {
    table: Vec<Msg>,
    index: HashMap<(String, Value), u64>,
}

impl Attributes {
    fn id(&mut self, strings: &mut Strings, key: &str, value: Value) -> u64 {
        let next = self.table.len() as u64;
        *(self.index.entry((key.to_string(), value.clone()))).or_insert_with(|| {
            let mut kv = Msg::default();
            kv.int(1, strings.id(key)).message(2, &value.any());
            self.table.push(kv);
            next
        })
    }
}

/// A resource attribute (`opentelemetry.proto.common.v1.KeyValue`).
fn key_value(key: &str, value: Value) -> Msg {
    let mut kv = Msg::default();
    kv.bytes(1, key.as_bytes()).message(2, &value.any());
    kv
}

/// Encodes `profile` as OpenTelemetry profiles. `res` names the frames it resolved; frames
/// left with their `module+0xoffset` name get no lines, only their address.
pub fn to_otlp(profile: &Profile, res: &Resolution) -> Vec<u8> {
    let mut strings = Strings::new();
    let mut attrs = Attributes {
        table: vec![Msg::default()],
        index: HashMap::new(),
    };
    let mut dict = Msg::default();

    // Mappings: the zero entry, then one per module (module i is mapping i + 1).
    dict.message(1, &Msg::default());
    for m in &profile.modules {
        let mut mm = Msg::default();
        mm.int(1, m.base_avma).int(2, m.end_avma);
        mm.int(
            4,
            strings.id(if m.path.is_empty() { &m.name } else { &m.path }),
        );
        if m.format == ObjectFormat::Elf && !m.code_id.is_empty() {
            let build_id = Value::Text(m.code_id_string());
            let a = attrs.id(&mut strings, "process.executable.build_id.gnu", build_id);
            mm.packed(5, &[a]);
        }
        dict.message(1, &mm);
    }
    // Locations (frame i is location i + 1) and the functions resolved frames name.
    dict.message(2, &Msg::default());
    let mut functions: HashMap<(String, String), u64> = HashMap::new();
    let mut function_table = vec![Msg::default()];
    for (i, f) in profile.frames.iter().enumerate() {
        let module = (f.module.checked_sub(1)).and_then(|m| profile.modules.get(m as usize));
        let mut loc = Msg::default();
        loc.int(1, f.module as u64).int(
            2,
            module.map_or(f.address, |m| m.base_avma.wrapping_add(f.address)),
        );
        let found = res
            .frames
            .get(i)
            .filter(|locs| !(locs.len() == 1 && locs[0].function == fallback_name(profile, f)));
        for l in found.into_iter().flatten() {
            let file = l.file.clone().unwrap_or_default();
            let next = function_table.len() as u64;
            let key = (l.function.clone(), file);
            let id = *functions.entry(key).or_insert_with(|| {
                let mut fm = Msg::default();
                let name = strings.id(&l.function);
                fm.int(1, name).int(2, name);
                fm.int(3, strings.id(l.file.as_deref().unwrap_or("")));
                function_table.push(fm);
                next
            });
            let mut line = Msg::default();
            line.int(1, id).int(2, l.line as u64);
            loc.message(3, &line);
        }
        dict.message(2, &loc);
    }
    for fm in &function_table {
        dict.message(3, fm);
    }
    dict.message(4, &Msg::default());

    // Samples: weight per (thread, stack node, label set), as time.
    let mut weights: HashMap<(usize, u32, u32), u64> = HashMap::new();
    for (t, thread) in profile.threads.iter().enumerate() {
        for s in &thread.samples {
            *weights.entry((t, s.stack, s.labels)).or_default() += s.weight as u64;
        }
    }
    let mut weights: Vec<_> = weights.into_iter().collect();
    weights.sort_unstable();
    let mut stacks: HashMap<u32, u64> = HashMap::new();
    let mut stack_table = vec![Msg::default()];
    let mut prof = Msg::default();
    let clock = match profile.clock {
        Clock::Cpu => "cpu",
        Clock::Wall => "wall",
    };
    let mut value_type = Msg::default();
    value_type
        .int(1, strings.id(clock))
        .int(2, strings.id("nanoseconds"));
    prof.message(1, &value_type);
    for ((t, node, set), weight) in weights {
        let next = stack_table.len() as u64;
        let stack = *stacks.entry(node).or_insert_with(|| {
            // Leaf first.
            let mut locations = Vec::new();
            let mut at = Some(node);
            while let Some(n) = at.and_then(|n| profile.stacks.get(n as usize)) {
                locations.push(n.frame as u64 + 1);
                at = n.parent.checked_sub(1);
            }
            let mut st = Msg::default();
            st.packed(1, &locations);
            stack_table.push(st);
            next
        });
        let thread = &profile.threads[t];
        let mut indices = vec![
            attrs.id(
                &mut strings,
                "thread.name",
                Value::Text(thread.name.clone()),
            ),
            attrs.id(&mut strings, "thread.id", Value::Int(thread.tid as i64)),
        ];
        for (key, value) in profile.labels.entries(set) {
            let value = match value {
                Ok(v) => Value::Int(v),
                Err(text) => Value::Text(text.to_string()),
            };
            indices.push(attrs.id(&mut strings, key, value));
        }
        let time = weight
            .saturating_mul(profile.interval_ns)
            .min(i64::MAX as u64);
        let mut sample = Msg::default();
        sample.int(1, stack).packed(2, &indices).packed(4, &[time]);
        prof.message(2, &sample);
    }
    prof.fixed64(3, profile.start_unix_ns)
        .int(4, profile.duration_ns)
        .message(5, &value_type)
        .int(6, profile.interval_ns)
        .bytes(7, &profile_id(profile));

    for s in &strings.table {
        dict.bytes(5, s.as_bytes());
    }
    for a in &attrs.table {
        dict.message(6, a);
    }
    for st in &stack_table {
        dict.message(7, st);
    }

    // What it came from: the application's metadata and the system, on the resource.
    let mut resource = Msg::default();
    let mut attribute = |key: &str, value: Value| {
        resource.message(1, &key_value(key, value));
    };
    if let Some(app) = profile.metadata_value("app") {
        attribute("service.name", Value::Text(app.into()));
    }
    if let Some(version) = profile.metadata_value("version") {
        attribute("service.version", Value::Text(version.into()));
    }
    attribute("process.pid", Value::Int(profile.pid as i64));
    for (k, v) in &profile.metadata {
        attribute(&format!("vignette.app.{k}"), Value::Text(v.clone()));
    }
    for (k, v) in &profile.system {
        attribute(&format!("vignette.system.{k}"), Value::Text(v.clone()));
    }
    attribute(
        "vignette.process_cpu_ns",
        Value::Int(profile.process_cpu_ns.min(i64::MAX as u64) as i64),
    );
    let mut scope = Msg::default();
    scope
        .bytes(1, b"vignette")
        .bytes(2, env!("CARGO_PKG_VERSION").as_bytes());
    let mut scope_profiles = Msg::default();
    scope_profiles.message(1, &scope).message(2, &prof);
    let mut resource_profiles = Msg::default();
    resource_profiles
        .message(1, &resource)
        .message(2, &scope_profiles);
    let mut data = Msg::default();
    data.message(1, &resource_profiles).message(2, &dict);
    data.0
}

/// A profile's 16-byte id: the same profile gets the same id (FNV-1a over what tells
/// profiles apart, twice with different seeds), never all zeros.
fn profile_id(p: &Profile) -> [u8; 16] {
    let hash = |seed: u64| {
        let mut h = seed;
        let parts = [
            p.start_unix_ns,
            p.duration_ns,
            p.pid as u64,
            p.chunk.sequence,
        ];
        for b in parts.iter().flat_map(|v| v.to_le_bytes()) {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        h | 1
    };
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&hash(0xcbf2_9ce4_8422_2325).to_le_bytes());
    id[8..].copy_from_slice(&hash(0x6c62_272e_07bb_0142).to_le_bytes());
    id
}
