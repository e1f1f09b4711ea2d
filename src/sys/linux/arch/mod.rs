//! What the Linux backend does in each architecture's own terms: the interrupted registers
//! from a `ucontext`, the size of the signal frame, the fault-recovering load and its fault
//! handler (assembly), and the switch onto a handler stack (assembly). Every architecture
//! module offers the same names.

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "aarch64")]
pub use aarch64::*;
#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use x86_64::*;

/// What [`guarded_load`] returns: `ok` is 1 with the loaded `value`, 0 if the load faulted.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Loaded {
    /// The 8 bytes read (little-endian), 0 on a fault.
    pub value: u64,
    /// 1 if the load succeeded.
    pub ok: u64,
}
