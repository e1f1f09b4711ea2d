//! What the system is, for profiles (see [`crate::metadata::system_facts`]).

/// The operating system's name in profiles.
pub const OS: &str = "windows";

/// The system's release: not read on Windows yet.
pub fn os_release(_: &mut [u8]) -> Option<&str> {
    None
}

/// The CPU's model name: not read on Windows yet.
pub fn cpu_model(_: &mut [u8]) -> Option<&str> {
    None
}

/// Logical processors: not read on Windows yet.
pub fn cores() -> Option<u64> {
    None
}

/// Total memory: not read on Windows yet.
pub fn memory_bytes() -> Option<u64> {
    None
}
