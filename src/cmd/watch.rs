//! `socklab watch`: the flags; the work is in [`crate::observe::watch`].

use std::io;

use clap::Args;

use super::Global;
use crate::error::Error;
use crate::observe::watch::{self, WatchConfig};

/// `socklab watch` flags.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Only sockets with this port at either end (repeat for more; default: all TCP).
    #[arg(short = 'p', long = "port", value_name = "P")]
    ports: Vec<u16>,
    /// Stop after SECS seconds (default: until Ctrl-C).
    #[arg(long, value_name = "SECS")]
    duration: Option<u64>,
}

/// Prints state changes until the duration ends or Ctrl-C.
pub fn run(a: WatchArgs, global: &Global) -> Result<(), Error> {
    let cfg = WatchConfig {
        ports: a.ports,
        duration: a.duration.map(std::time::Duration::from_secs),
        json: global.json,
    };
    watch::run(&cfg, &mut io::stdout(), &mut io::stderr())
        .map(|_| ())
        .map_err(|e| Error::Other(format!("watch: {e}")))
}
