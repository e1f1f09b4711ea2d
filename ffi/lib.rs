//! `libvignette.a` / `libvignette.so`: the C API of the `vignette` crate (feature `ffi`),
//! declared in `include/vignette.h`.

pub use vignette::ffi::*;
