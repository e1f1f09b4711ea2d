//! What Linux and macOS share: POSIX memory mappings and threads.

pub mod facts;
pub mod pages;
pub mod thread;
