//! `socklab trace`: the flags; the work is in [`crate::trace`].

use clap::Args;

use super::{Global, current_exe};
use crate::error::Error;

/// `socklab trace` flags.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Trace this example (built next to this executable, e.g. 05_accept), not the demo.
    #[arg(long, value_name = "NAME")]
    example: Option<String>,
    /// Keep strace's full log in FILE (default: a file in the temp directory).
    #[arg(long, value_name = "FILE")]
    log: Option<std::path::PathBuf>,
}

/// Runs the demo or the example under strace.
pub fn run(a: TraceArgs, global: &Global) -> Result<(), Error> {
    crate::trace::command(
        &current_exe()?,
        a.example.as_deref(),
        a.log.as_deref(),
        !global.no_probe,
    )
}
