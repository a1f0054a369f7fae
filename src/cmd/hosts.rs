//! `socklab hosts` and `socklab hosts down`: the two-computer lab that stays.

use clap::{Args, Subcommand};

use super::{Global, current_exe};
use crate::error::Error;
use crate::net::hosts::{self, Layout};

/// `socklab hosts` flags.
#[derive(Debug, Args)]
pub struct HostsArgs {
    #[command(subcommand)]
    action: Option<HostsAction>,
    /// Put a router between client and server that rewrites the client's source address and
    /// port (NAT, nftables masquerade).
    #[arg(long)]
    nat: bool,
}

#[derive(Debug, Subcommand)]
enum HostsAction {
    /// Remove the lab (and any namespace a killed socklab left behind).
    Down,
}

/// Sets the lab up, or takes it down.
pub fn run(a: HostsArgs, _global: &Global) -> Result<(), Error> {
    match a.action {
        Some(HostsAction::Down) => hosts::down_command(),
        None => hosts::up_command(Layout { nat: a.nat }, &current_exe()?),
    }
}
