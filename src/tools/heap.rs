//! The heap a profile carries (`Profile::heap`, sampled by `vignette::alloc`) as the views
//! read it: bytes in use or allocated per stack.

use super::collapsed::stack_line_trimmed;
use super::resolve::Resolution;
use super::sym_file::Location;
use crate::Profile;

/// Which of the heap's figures a view weighs stacks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeapMeasure {
    /// Bytes still live when the profile was captured.
    InUse,
    /// Bytes allocated since sampling began.
    Allocated,
}

impl HeapMeasure {
    /// Both, in the order lists show them.
    pub const ALL: [HeapMeasure; 2] = [HeapMeasure::InUse, HeapMeasure::Allocated];

    /// Its name, as the command line takes it.
    pub fn name(self) -> &'static str {
        match self {
            HeapMeasure::InUse => "inuse",
            HeapMeasure::Allocated => "alloc",
        }
    }

    /// What it is, in a few words.
    pub fn about(self) -> &'static str {
        match self {
            HeapMeasure::InUse => "bytes still live when the profile was captured",
            HeapMeasure::Allocated => "bytes allocated since sampling began",
        }
    }

    /// The bytes and objects of `site` it counts.
    pub fn of(self, site: &crate::HeapSite) -> (u64, u64) {
        match self {
            HeapMeasure::InUse => (site.inuse_bytes, site.inuse_objects),
            HeapMeasure::Allocated => (site.alloc_bytes, site.alloc_objects),
        }
    }
}

impl std::str::FromStr for HeapMeasure {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        (HeapMeasure::ALL.into_iter().find(|m| m.name() == s))
            .ok_or_else(|| format!("no heap measure {s:?} (inuse, alloc)"))
    }
}

/// Functions that only pass an allocation on to the allocator: Rust's allocation shims, the
/// `alloc::alloc` functions around them, C's allocation functions and the C API's call. Heap
/// views leave them out where they are the innermost frames, so a stack's own bytes go to the
/// code that asked for the memory (as `go tool pprof` leaves out the runtime's allocator).
const ALLOCATOR_ENTRIES: [&str; 17] = [
    "__rust_alloc",
    "__rust_alloc_zeroed",
    "__rust_realloc",
    "__rustc::__rust_alloc",
    "__rustc::__rust_alloc_zeroed",
    "__rustc::__rust_realloc",
    "__rg_alloc",
    "__rg_alloc_zeroed",
    "__rg_realloc",
    "__rdl_alloc",
    "__rdl_alloc_zeroed",
    "__rdl_realloc",
    "malloc",
    "calloc",
    "realloc",
    "aligned_alloc",
    "vignette_heap_alloc",
];

/// Prefixes of the standard library's allocation functions.
const ALLOCATOR_PREFIXES: [&str; 2] = ["alloc::alloc::", "<alloc::alloc::Global as "];

/// Whether `function` only passes an allocation on to the allocator: Rust's allocation shims
/// (`__rust_alloc`, ...), the `alloc::alloc` functions around them, C's allocation functions
/// and the C API's `vignette_heap_alloc`.
pub fn is_allocator_entry(function: &str) -> bool {
    ALLOCATOR_ENTRIES.contains(&function)
        || ALLOCATOR_PREFIXES.iter().any(|p| function.starts_with(p))
}

/// Whether `function` is an allocator entry ([`is_allocator_entry`]) or Rust's standard collections' plumbing around
/// one (the `alloc` and `core` crates): the heap report's self bytes go to the innermost
/// function outside them, the program's.
pub fn is_allocation_plumbing(function: &str) -> bool {
    let std_crate = |name: &str| name.starts_with("alloc::") || name.starts_with("core::");
    // `alloc::vec::from_elem`, `<alloc::raw_vec::RawVecInner>::try_allocate_in`, and a
    // standard trait's method on any type: `<u8 as alloc::vec::spec_from_elem::..>::from_elem`.
    let of_std_trait = || {
        let inner = function.strip_prefix('<').unwrap_or("");
        inner.split(" as ").nth(1).is_some_and(std_crate)
    };
    is_allocator_entry(function)
        || std_crate(function)
        || function.strip_prefix('<').is_some_and(std_crate)
        || of_std_trait()
}

/// Leaves out the innermost locations of a root-first `stack` whose function `trim` names (the
/// outermost stays).
pub fn trim_innermost(stack: &mut Vec<&Location>, trim: fn(&str) -> bool) {
    let trimmed = stack.iter().rev().take_while(|l| trim(&l.function)).count();
    stack.truncate(stack.len().saturating_sub(trimmed).max(1));
}

/// [`is_allocator_entry`]'s functions as a regular expression for pprof's `drop_frames` (matching whole
/// names: pprof drops a matching frame and every frame it called).
pub fn allocator_entries_regex() -> String {
    let escape = |s: &str| {
        s.chars().fold(String::new(), |mut out, c| {
            if "\\.+*?()|[]{}^$<>".contains(c) {
                out.push('\\');
            }
            out.push(c);
            out
        })
    };
    let entries = ALLOCATOR_ENTRIES.iter().map(|e| escape(e));
    let prefixes = ALLOCATOR_PREFIXES
        .iter()
        .map(|p| format!("{}.*", escape(p)));
    entries.chain(prefixes).collect::<Vec<_>>().join("|")
}

/// The heap's stacks with their bytes by `measure` (none without a heap), stacks with none
/// left out.
pub fn weights(profile: &Profile, measure: HeapMeasure) -> Vec<(u32, u64)> {
    let sites = profile.heap.iter().flat_map(|h| &h.sites);
    sites
        .map(|s| (s.stack, measure.of(s).0))
        .filter(|&(_, b)| b > 0)
        .collect()
}

/// Collapsed stacks of the heap, one line per stack weighed in bytes by `measure`, names made
/// safe as [`super::collapsed::to_collapsed`] makes them.
pub fn to_collapsed(profile: &Profile, res: &Resolution, measure: HeapMeasure) -> String {
    let mut lines: std::collections::BTreeMap<String, u64> = Default::default();
    for (stack, bytes) in weights(profile, measure) {
        let line = stack_line_trimmed(profile, res, stack, is_allocator_entry);
        let n = lines.entry(line).or_default();
        *n = n.saturating_add(bytes);
    }
    lines
        .into_iter()
        .map(|(stack, n)| format!("{stack} {n}\n"))
        .collect()
}

/// `bytes` for people: `512 B`, `3.2 KiB`, `41.0 MiB`, `1.5 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// One line about the heap for `info` and `report` (`None` without one): what was sampled,
/// what is live, and what could not be kept whole.
pub fn summary(profile: &Profile) -> Option<String> {
    let h = profile.heap.as_ref()?;
    let sum = |m: HeapMeasure| {
        h.sites.iter().fold((0u64, 0u64), |(b, o), s| {
            let (sb, so) = m.of(s);
            (b.saturating_add(sb), o.saturating_add(so))
        })
    };
    let (live, live_objects) = sum(HeapMeasure::InUse);
    let (alloc, alloc_objects) = sum(HeapMeasure::Allocated);
    let mut line = format!(
        "heap: {} in use in {live_objects} objects, {} allocated in {alloc_objects} since sampling \
         began (estimates from {} sampled allocations, one per {} on average, {} stacks)",
        human_bytes(live),
        human_bytes(alloc),
        h.samples,
        human_bytes(h.mean_bytes),
        h.sites.len(),
    );
    if h.samples == 0 {
        line.push_str(
            "; none sampled: is vignette::alloc::Sampled the program's global allocator?",
        );
    }
    let l = &h.lost;
    let lost = [
        ("with no stack (table of stacks full)", l.sites_full),
        ("with no stack (not walked)", l.unwalked),
        ("not followed to their free (live table full)", l.untracked),
        ("not sampled (made inside the sampler)", l.reentrant),
    ];
    for (what, n) in lost.iter().filter(|(_, n)| *n > 0) {
        line.push_str(&format!("; {n} {what}"));
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocator_entries_are_left_out_by_name() {
        assert!(is_allocator_entry("__rustc::__rust_alloc"));
        assert!(is_allocator_entry("alloc::alloc::exchange_malloc"));
        assert!(!is_allocator_entry("alloc::vec::from_elem"));
        assert!(!is_allocator_entry("my_malloc"));
        let re = allocator_entries_regex();
        assert!(re.starts_with("__rust_alloc|"), "{re}");
        assert!(
            re.ends_with("alloc::alloc::.*|\\<alloc::alloc::Global as .*"),
            "{re}"
        );
    }

    #[test]
    fn the_standard_librarys_plumbing_is_told_apart() {
        for f in [
            "alloc::vec::from_elem",
            "<alloc::raw_vec::RawVecInner>::try_allocate_in",
            "<u8 as alloc::vec::spec_from_elem::SpecFromElem>::from_elem",
            "<alloc::string::String as core::clone::Clone>::clone",
            "__rustc::__rust_alloc",
        ] {
            assert!(is_allocation_plumbing(f), "{f}");
        }
        for f in [
            "heap::alloc_leaked",
            "<my::Cache as my::Store>::put",
            "main",
        ] {
            assert!(!is_allocation_plumbing(f), "{f}");
        }
    }

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * 1024 + 200), "3.2 KiB");
        assert_eq!(human_bytes(41 << 20), "41.0 MiB");
        assert_eq!(human_bytes(3 << 39), "1.5 TiB");
    }
}
