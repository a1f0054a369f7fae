//! `socklab client`: the seed's client.

use clap::Args;

use super::step::{self, ProgramStepArgs};
use super::{Global, resolve, sink};
use crate::error::Error;
use crate::event::Role;
use crate::event::record;
use crate::programs::client::{self, ClientConfig};
use crate::programs::servers::DEFAULT_PORT;

/// `socklab client` flags.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Host to connect to (an IP address or a name such as localhost).
    host: String,
    /// TCP port.
    #[arg(short = 'p', long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// Message to send (default: read one line from stdin, like the seed).
    #[arg(short = 'm', long)]
    message: Option<String>,
    #[command(flatten)]
    stepping: ProgramStepArgs,
}

/// Connects, sends one message, prints the reply.
pub fn run(a: ClientArgs, global: &Global) -> Result<(), Error> {
    let addr = resolve(&a.host, a.port)?;
    // Without a log file the sink cannot fail.
    let _ = sink::install(global, Some(Role::Client), None);
    step::enable(&a.stepping, global, addr.port())?;
    let res = client::run(&ClientConfig {
        addr,
        message: a.message,
    });
    record::flush();
    res.map(|_| ())
}
