//! The registers an unwinder tracks, indexed by DWARF register number; which numbers mean what
//! is the architecture's (`x86_64::COUNT`, `aarch64::COUNT` and their neighbours).

use super::arch;

/// The registers of one frame, by DWARF number ([`Regs::COUNT`] of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Regs {
    r: [u64; Regs::COUNT],
}

impl Default for Regs {
    fn default() -> Self {
        Regs {
            r: [0; Regs::COUNT],
        }
    }
}

/// # Signal safety
/// Every method is async-signal-safe: plain arithmetic on a fixed array.
impl Regs {
    /// Number of registers tracked.
    pub const COUNT: usize = arch::COUNT;
    /// DWARF number of the frame pointer.
    pub const FP: u16 = arch::FP;
    /// DWARF number of the stack pointer.
    pub const SP: u16 = arch::SP;
    /// Where the instruction pointer is kept.
    pub const IP: u16 = arch::IP;
    /// The return-address column compact rules expect.
    pub const RA: u16 = arch::RA;

    /// Registers with only the instruction, stack and frame pointers set (the rest zero).
    pub fn new(ip: u64, sp: u64, fp: u64) -> Self {
        let mut r = Regs::default();
        r.set(Self::IP, ip);
        r.set(Self::SP, sp);
        r.set(Self::FP, fp);
        r
    }

    /// All registers, by DWARF number.
    pub fn from_array(r: [u64; Self::COUNT]) -> Self {
        Regs { r }
    }

    /// Register `dwarf`, if tracked.
    pub fn get(&self, dwarf: u16) -> Option<u64> {
        self.r.get(dwarf as usize).copied()
    }

    /// Sets register `dwarf` (ignored if not tracked).
    pub fn set(&mut self, dwarf: u16, value: u64) {
        if let Some(r) = self.r.get_mut(dwarf as usize) {
            *r = value;
        }
    }

    /// The instruction pointer.
    pub fn ip(&self) -> u64 {
        self.get(Self::IP).unwrap_or(0)
    }

    /// The stack pointer.
    pub fn sp(&self) -> u64 {
        self.get(Self::SP).unwrap_or(0)
    }

    /// The frame pointer.
    pub fn fp(&self) -> u64 {
        self.get(Self::FP).unwrap_or(0)
    }

    /// A return address as code can be found at (on aarch64, without pointer-authentication
    /// bits).
    pub fn return_address(ra: u64) -> u64 {
        arch::return_address(ra)
    }
}
