//! Live sinks: each event is written as it happens, as aligned text or as one JSON line.

pub mod human;
pub mod json;
