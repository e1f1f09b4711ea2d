//! Many profiles into one: chunks of one process's session, or profiles of many processes and
//! machines. Modules are the same module when their identity is (object format, debug file,
//! name, debug ID, age, code ID), whatever address they were loaded at; frames are the same
//! frame when their module and module-relative address are; stacks are re-interned into one
//! prefix tree. Samples keep their times on one timeline starting at the earliest input's
//! start. Every step is a hash lookup, so the cost is linear in the inputs.

use std::collections::HashMap;

use super::{ErrorKind, ToolError};
use crate::{Frame, Module, Profile, Sample, StackNode, Thread};

/// How [`merge`] treats threads.
#[derive(Debug, Clone, Copy, Default)]
pub struct MergeOptions {
    /// Threads of the same name become one thread (their samples interleaved in time order),
    /// instead of each input's threads being kept apart.
    pub fold_threads: bool,
}

/// What identifies a module across processes.
pub(crate) type ModuleKey = (u8, String, String, [u8; 16], u32, Vec<u8>);

pub(crate) fn module_key(m: &Module) -> ModuleKey {
    (
        m.format as u8,
        m.debug_file.clone(),
        m.name.clone(),
        m.debug_id,
        m.age,
        m.code_id.clone(),
    )
}

/// The merged tables, filled input by input.
#[derive(Default)]
struct Tables {
    modules: Vec<Module>,
    module_index: HashMap<ModuleKey, u32>,
    frames: Vec<Frame>,
    frame_index: HashMap<(u32, u64), u32>,
    stacks: Vec<StackNode>,
    stack_index: HashMap<(u32, u32), u32>,
}

impl Tables {
    /// Adds `p`'s modules, frames and stacks; returns, per stack node of `p`, its node here.
    fn add(&mut self, p: &Profile) -> Vec<u32> {
        let modules: Vec<u32> = p
            .modules
            .iter()
            .map(|m| {
                let key = module_key(m);
                *self.module_index.entry(key).or_insert_with(|| {
                    self.modules.push(m.clone());
                    self.modules.len() as u32
                })
            })
            .collect();
        let frames: Vec<u32> = p
            .frames
            .iter()
            .map(|f| {
                // Module 0 is "in no module" (an absolute address), kept as it is.
                let module = match f.module {
                    0 => 0,
                    m => modules[m as usize - 1],
                };
                let key = (module, f.address);
                *self.frame_index.entry(key).or_insert_with(|| {
                    self.frames.push(Frame {
                        module,
                        address: f.address,
                    });
                    self.frames.len() as u32 - 1
                })
            })
            .collect();
        // Parents precede children (the decoder checked), so one pass maps every node.
        let mut nodes = Vec::with_capacity(p.stacks.len());
        for n in &p.stacks {
            let parent = match n.parent {
                0 => 0,
                i => nodes[i as usize - 1] + 1,
            };
            let frame = frames[n.frame as usize];
            let node = *self.stack_index.entry((parent, frame)).or_insert_with(|| {
                self.stacks.push(StackNode { parent, frame });
                self.stacks.len() as u32 - 1
            });
            nodes.push(node);
        }
        nodes
    }
}

/// A sample on the merged timeline: microseconds since the merged start.
struct Timed {
    at_us: u64,
    sample: Sample,
}

/// Merges `profiles` into one. They must share a clock and an interval (a sample's weight is
/// a count of intervals); lost counts add up; the result's `max_frames` is the largest.
pub fn merge(profiles: &[Profile], options: MergeOptions) -> Result<Profile, ToolError> {
    let Some(first) = profiles.first() else {
        return Err(ToolError::new(
            ErrorKind::Profile,
            "nothing to merge: no profiles given",
        ));
    };
    for (i, p) in profiles.iter().enumerate() {
        // Profiles built in code have not been through the decoder's checks.
        p.validate()
            .map_err(|e| ToolError::new(ErrorKind::Profile, format!("profile {}: {e}", i + 1)))?;
        if p.clock != first.clock || p.interval_ns != first.interval_ns {
            return Err(ToolError::new(
                ErrorKind::Profile,
                format!(
                    "profile {} samples with clock {:?} every {} ns, the first with {:?} every {} ns: \
                     profiles merge only when their weights mean the same",
                    i + 1,
                    p.clock,
                    p.interval_ns,
                    first.clock,
                    first.interval_ns
                ),
            ));
        }
    }
    let start = profiles.iter().map(|p| p.start_unix_ns).min().unwrap_or(0);
    let end = profiles
        .iter()
        .map(|p| p.start_unix_ns.saturating_add(p.duration_ns))
        .max()
        .unwrap_or(start);
    let mut tables = Tables::default();
    // Threads in order of first appearance: (tid, name, samples on the merged timeline).
    let mut threads: Vec<(u32, String, Vec<Timed>)> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut lost = crate::Lost::default();
    let mut labels = LabelMerger::default();
    // Heaps: a profile's allocated counts run from when its process began sampling, so of
    // each process only its last capture counts (chunks of one session would count twice);
    // processes add up.
    let end_of = |p: &Profile| p.start_unix_ns.saturating_add(p.duration_ns);
    let mut last_of_process: HashMap<u32, usize> = HashMap::new();
    let mut heap_inputs = std::collections::HashSet::new();
    for (i, p) in profiles
        .iter()
        .enumerate()
        .filter(|(_, p)| p.heap.is_some())
    {
        if p.pid == 0 {
            // No process recorded: each stands for its own.
            heap_inputs.insert(i);
            continue;
        }
        let last = last_of_process.entry(p.pid).or_insert(i);
        if end_of(p) >= end_of(&profiles[*last]) {
            *last = i;
        }
    }
    heap_inputs.extend(last_of_process.into_values());
    let mut heap: Option<crate::Heap> = None;
    let mut heap_sites: HashMap<u32, crate::HeapSite> = HashMap::new();
    for (i, p) in profiles.iter().enumerate() {
        let nodes = tables.add(p);
        if let Some(h) = p.heap.as_ref().filter(|_| heap_inputs.contains(&i)) {
            let m = heap.get_or_insert_with(|| crate::Heap {
                mean_bytes: h.mean_bytes,
                ..Default::default()
            });
            // Counts from files: saturating sums.
            m.samples = m.samples.saturating_add(h.samples);
            let (l, hl) = (&mut m.lost, &h.lost);
            l.sites_full = l.sites_full.saturating_add(hl.sites_full);
            l.unwalked = l.unwalked.saturating_add(hl.unwalked);
            l.untracked = l.untracked.saturating_add(hl.untracked);
            l.reentrant = l.reentrant.saturating_add(hl.reentrant);
            for site in &h.sites {
                let stack = nodes[site.stack as usize];
                let e = heap_sites.entry(stack).or_insert(crate::HeapSite {
                    stack,
                    ..Default::default()
                });
                e.alloc_bytes = e.alloc_bytes.saturating_add(site.alloc_bytes);
                e.alloc_objects = e.alloc_objects.saturating_add(site.alloc_objects);
                e.inuse_bytes = e.inuse_bytes.saturating_add(site.inuse_bytes);
                e.inuse_objects = e.inuse_objects.saturating_add(site.inuse_objects);
            }
        }
        let sets = labels.add(&p.labels);
        let offset_us = (p.start_unix_ns - start) / 1000;
        for t in &p.threads {
            let slot = match options.fold_threads {
                true => *by_name.entry(t.name.clone()).or_insert_with(|| {
                    threads.push((t.tid, t.name.clone(), Vec::new()));
                    threads.len() - 1
                }),
                false => {
                    threads.push((t.tid, t.name.clone(), Vec::new()));
                    threads.len() - 1
                }
            };
            let out = &mut threads[slot].2;
            let mut at_us = offset_us;
            for s in &t.samples {
                at_us = at_us.saturating_add(s.dt_us);
                out.push(Timed {
                    at_us,
                    sample: Sample {
                        stack: nodes[s.stack as usize],
                        labels: sets[s.labels as usize],
                        ..*s
                    },
                });
            }
        }
        lost += p.lost;
    }
    let threads = threads
        .into_iter()
        .map(|(tid, name, mut timed)| {
            // Stable: samples at the same time keep their inputs' order.
            timed.sort_by_key(|t| t.at_us);
            let mut last = 0;
            let samples = timed
                .into_iter()
                .map(|t| {
                    let dt_us = t.at_us - last;
                    last = t.at_us;
                    Sample { dt_us, ..t.sample }
                })
                .collect();
            Thread { tid, name, samples }
        })
        .collect();
    Ok(Profile {
        start_unix_ns: start,
        duration_ns: end - start,
        clock: first.clock,
        interval_ns: first.interval_ns,
        max_frames: profiles.iter().map(|p| p.max_frames).max().unwrap_or(1),
        modules: tables.modules,
        frames: tables.frames,
        stacks: tables.stacks,
        threads,
        lost,
        // A merge is a series of its own.
        chunk: Default::default(),
        labels: labels.out,
        // One backend if every input says the same, else none in particular.
        backend: match profiles.iter().all(|p| p.backend == first.backend) {
            true => first.backend,
            false => crate::Backend::Unrecorded,
        },
        // What every input says alike; the CPU time they were exposed to adds up.
        metadata: common_pairs(profiles.iter().map(|p| &p.metadata)),
        system: common_pairs(profiles.iter().map(|p| &p.system)),
        process_cpu_ns: profiles.iter().map(|p| p.process_cpu_ns).sum(),
        // One process if every input says the same.
        pid: match profiles.iter().all(|p| p.pid == first.pid) {
            true => first.pid,
            false => 0,
        },
        rates: merged_rates(profiles, start),
        jit: merged_jit(profiles),
        heap: heap.map(|mut h| {
            h.sites = heap_sites.into_values().collect();
            h.sites.sort_by_key(|s| s.stack);
            h
        }),
    })
}

/// The inputs' JIT names, in input order (a later input's entry for an address is the newer
/// code), each distinct entry once, at its last place.
fn merged_jit(profiles: &[Profile]) -> Vec<crate::JitSymbol> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<crate::JitSymbol> = (profiles.iter().rev())
        .flat_map(|p| p.jit.iter().rev())
        .filter(|j| seen.insert(*j))
        .cloned()
        .collect();
    out.reverse();
    out
}

/// The inputs' sampling intervals over time, when they are one process's chunks (each
/// input from its start at its own interval until its first change); none for inputs of
/// different processes, whose samples' weights say what their rates were.
fn merged_rates(profiles: &[Profile], start_unix_ns: u64) -> Vec<crate::RateChange> {
    let Some(first) = profiles.first() else {
        return Vec::new();
    };
    let one_process = profiles
        .iter()
        .all(|p| p.pid == first.pid && p.interval_ns == first.interval_ns);
    if !one_process || profiles.iter().all(|p| p.rates.is_empty()) {
        return Vec::new();
    }
    let mut all = Vec::new();
    for p in profiles {
        let offset = p.start_unix_ns.saturating_sub(start_unix_ns);
        if p.rates.first().is_none_or(|r| r.at_ns > 0) {
            all.push((offset, p.interval_ns));
        }
        all.extend((p.rates.iter()).map(|r| (offset.saturating_add(r.at_ns), r.interval_ns)));
    }
    // Stable: changes at one moment keep their order.
    all.sort_by_key(|&(at, _)| at);
    let mut out: Vec<crate::RateChange> = Vec::new();
    for (at_ns, interval_ns) in all {
        if out.last().map(|r| r.interval_ns) != Some(interval_ns) {
            out.push(crate::RateChange { at_ns, interval_ns });
        }
    }
    if out.first().map(|r| (r.at_ns, r.interval_ns)) == Some((0, first.interval_ns)) {
        out.remove(0);
    }
    out
}

/// The pairs every list has (with the same value), in the first list's order.
fn common_pairs<'a>(
    mut lists: impl Iterator<Item = &'a Vec<(String, String)>> + Clone,
) -> Vec<(String, String)> {
    let Some(first) = lists.next() else {
        return Vec::new();
    };
    (first.iter())
        .filter(|pair| lists.clone().all(|l| l.contains(pair)))
        .cloned()
        .collect()
}

/// The merged label names and sets, each input's mapped into them.
#[derive(Default)]
struct LabelMerger {
    keys: HashMap<String, u32>,
    strings: HashMap<String, u32>,
    sets: HashMap<Vec<crate::Label>, u32>,
    out: crate::Labels,
}

impl LabelMerger {
    /// Adds `l`'s sets; returns, by a sample's `labels` (0 for none, else set + 1), its
    /// value in the merged profile.
    fn add(&mut self, l: &crate::Labels) -> Vec<u32> {
        let intern = |map: &mut HashMap<String, u32>, out: &mut Vec<String>, s: &str| {
            *map.entry(s.to_string()).or_insert_with(|| {
                out.push(s.to_string());
                out.len() as u32 - 1
            })
        };
        let mut mapped = vec![0];
        for set in &l.sets {
            let set: Vec<crate::Label> = set
                .iter()
                .map(|x| crate::Label {
                    key: intern(&mut self.keys, &mut self.out.keys, &l.keys[x.key as usize]),
                    value: match x.value {
                        crate::LabelValue::Str(i) => crate::LabelValue::Str(intern(
                            &mut self.strings,
                            &mut self.out.strings,
                            &l.strings[i as usize],
                        )),
                        v => v,
                    },
                })
                .collect();
            let sets = &mut self.out.sets;
            let index = *self.sets.entry(set.clone()).or_insert_with(|| {
                sets.push(set);
                sets.len() as u32
            });
            mapped.push(index);
        }
        mapped
    }
}
