//! What a profile came from: the application's own metadata ([`crate::Builder::metadata`]:
//! its name, version, build, channel, a session id, whatever it sets) and facts about the
//! system that identify no person ([`system_facts`]). Both are fixed-size, set before
//! sampling starts, and never read on the signal path.
// Off the signal path: the signal path's lints (lib.rs) do not bind this module.
#![cfg_attr(
    not(test),
    allow(
        clippy::panic,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing
    )
)]

use arrayvec::{ArrayString, ArrayVec};

/// The most entries a [`Metadata`] holds.
pub const MAX_METADATA: usize = 16;
/// The longest key, in bytes.
pub const MAX_METADATA_KEY: usize = 32;
/// The longest value, in bytes.
pub const MAX_METADATA_VALUE: usize = 128;

/// Key-value pairs, in the order they were first set, bounded by [`MAX_METADATA`] entries of
/// [`MAX_METADATA_KEY`]-byte keys and [`MAX_METADATA_VALUE`]-byte values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    entries: ArrayVec<
        (
            ArrayString<MAX_METADATA_KEY>,
            ArrayString<MAX_METADATA_VALUE>,
        ),
        MAX_METADATA,
    >,
}

impl Metadata {
    /// Sets `key` to `value`, replacing its value if it has one. A key is 1 to 32 ASCII
    /// letters, digits, `_`, `-` or `.`; a value at most 128 bytes without control characters.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), &'static str> {
        let key_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if key.is_empty() || !key.chars().all(key_ok) {
            return Err("a metadata key is 1 to 32 ASCII letters, digits, '_', '-' or '.'");
        }
        if value.chars().any(char::is_control) {
            return Err("a metadata value has no control characters");
        }
        let key = ArrayString::from(key).map_err(|_| "a metadata key is at most 32 bytes")?;
        let value =
            ArrayString::from(value).map_err(|_| "a metadata value is at most 128 bytes")?;
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self
                .entries
                .try_push((key, value))
                .map_err(|_| "at most 16 metadata entries")?,
        }
        Ok(())
    }

    /// Sets `key` to as much of `value` as fits (cut at a character boundary, control
    /// characters dropped); for facts read from the system.
    fn set_cut(&mut self, key: &str, value: &str) {
        let mut v = ArrayString::<MAX_METADATA_VALUE>::new();
        for c in value.trim().chars().filter(|c| !c.is_control()) {
            if v.try_push(c).is_err() {
                break;
            }
        }
        let _ = self.set(key, &v);
    }

    /// The entries, in the order they were first set.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Facts about this system that identify no person: `os`, `os_version` (the kernel's release),
/// `arch`, `cpu` (the model name, where the system says it), `cores` (online), `memory_gib`
/// (total memory rounded up to a power of two) and `vignette` (this library's version), as
/// far as the system tells them.
pub fn system_facts() -> Metadata {
    let mut m = Metadata::default();
    m.set_cut("os", crate::sys::facts::OS);
    let mut buf = [0u8; 256];
    if let Some(release) = crate::sys::facts::os_release(&mut buf) {
        m.set_cut("os_version", release);
    }
    m.set_cut("arch", ARCH);
    let mut buf = [0u8; 256];
    if let Some(cpu) = crate::sys::facts::cpu_model(&mut buf) {
        m.set_cut("cpu", cpu);
    }
    let mut num = NumBuf::default();
    if let Some(cores) = crate::sys::facts::cores() {
        m.set_cut("cores", num.format(cores));
    }
    if let Some(bytes) = crate::sys::facts::memory_bytes() {
        let gib = bytes.div_ceil(1 << 30).max(1).next_power_of_two();
        m.set_cut("memory_gib", num.format(gib));
    }
    m.set_cut("vignette", env!("CARGO_PKG_VERSION"));
    m
}

/// The architecture's name, as Rust spells it.
#[cfg(target_arch = "x86_64")]
const ARCH: &str = "x86_64";
#[cfg(target_arch = "aarch64")]
const ARCH: &str = "aarch64";
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ARCH: &str = "other";

/// Room to print a u64 in decimal.
#[derive(Default)]
struct NumBuf([u8; 20]);

impl NumBuf {
    fn format(&mut self, mut v: u64) -> &str {
        let mut i = self.0.len();
        loop {
            i -= 1;
            self.0[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        core::str::from_utf8(&self.0[i..]).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_bounded_and_replaces_by_key() {
        let mut m = Metadata::default();
        m.set("app", "demo").unwrap();
        m.set("version", "1.2").unwrap();
        m.set("app", "demo2").unwrap();
        assert_eq!(
            m.iter().collect::<std::vec::Vec<_>>(),
            [("app", "demo2"), ("version", "1.2")]
        );
        assert!(m.set("", "x").is_err());
        assert!(m.set("a b", "x").is_err());
        assert!(m.set(&"k".repeat(33), "x").is_err());
        assert!(m.set("k", &"v".repeat(129)).is_err());
        assert!(m.set("k", "line\nbreak").is_err());
        for i in 2..MAX_METADATA {
            m.set(NumBuf::default().format(i as u64), "x").unwrap();
        }
        assert_eq!(m.len(), MAX_METADATA);
        assert!(m.set("one-more", "x").is_err());
    }

    #[test]
    fn the_system_says_what_it_is() {
        let facts = system_facts();
        let get = |k| facts.iter().find(|(key, _)| *key == k).map(|(_, v)| v);
        assert_eq!(get("arch"), Some(ARCH));
        assert_eq!(get("vignette"), Some(env!("CARGO_PKG_VERSION")));
        assert!(get("os").is_some_and(|os| !os.is_empty()));
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            assert!(get("os_version").is_some_and(|v| v.chars().next().unwrap().is_ascii_digit()));
            assert!(get("cores").is_some_and(|c| c.parse::<u32>().unwrap() >= 1));
            let gib: u64 = get("memory_gib").unwrap().parse().unwrap();
            assert!(gib.is_power_of_two());
        }
    }
}
