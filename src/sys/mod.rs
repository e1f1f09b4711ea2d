//! Operating-system interfaces, one backend per system behind the same names (`sys::mem`,
//! `sys::signal`, `sys::threads`, ...). Nothing outside this module names a backend; `lib.rs`
//! says which systems have one.

mod linux;
pub use linux::*;
