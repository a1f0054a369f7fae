//! `socklab ss`: one sock_diag snapshot, printed by [`crate::render::views::ss`].

use std::io;

use clap::Args;

use super::Global;
use crate::error::Error;
use crate::observe::sock_diag;
use crate::render::views::ss;

/// `socklab ss` flags.
#[derive(Debug, Args)]
pub struct SsArgs {
    /// Only sockets with this port at either end (repeat for more; default: all TCP).
    #[arg(short = 'p', long = "port", value_name = "P")]
    ports: Vec<u16>,
}

/// Prints the snapshot as a table (JSON lines with --json).
pub fn run(a: SsArgs, global: &Global) -> Result<(), Error> {
    let entries = sock_diag::tcp_sockets(&a.ports).map_err(|e| Error::Other(e.to_string()))?;
    let text = ss::render(&entries, global.json);
    crate::render::write_or_exit(&mut io::stdout().lock(), text.as_bytes(), true);
    Ok(())
}
