//! What Linux and macOS share: POSIX memory mappings and threads.

pub mod pages;
pub mod thread;
