//! What the system is, for profiles (see [`crate::metadata::system_facts`]).

pub use super::super::posix::facts::{cores, os_release};

/// The operating system's name in profiles.
pub const OS: &str = "macos";

/// The CPU's model name: not read on macOS yet.
pub fn cpu_model(_: &mut [u8]) -> Option<&str> {
    None
}

/// Total memory: not read on macOS yet.
pub fn memory_bytes() -> Option<u64> {
    None
}
