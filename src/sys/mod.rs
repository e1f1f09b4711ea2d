//! Operating-system interfaces.

pub mod linux;
