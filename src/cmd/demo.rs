//! `socklab demo`: a server and a client on one timeline.

use clap::Args;

use super::show::ShowArgs;
use super::step::StepArgs;
use super::{Global, current_exe};
use crate::course::notes;
use crate::error::Error;
use crate::net::{hosts, netns, wire};
use crate::programs::demo::{self, DemoConfig};
use crate::programs::servers::DEFAULT_PORT;

/// `socklab demo` flags.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Server port on 127.0.0.1 (0: let the kernel pick one).
    #[arg(short = 'p', long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// The client's message.
    #[arg(short = 'm', long, default_value = "hello from socklab")]
    message: String,
    #[command(flatten)]
    show: ShowArgs,
    /// Run in a private user and network namespace with its own loopback, where an ordinary
    /// user may capture packets.
    #[arg(long)]
    private_net: bool,
    /// Slow-motion wire: hold every packet of the exchange in the kernel (in a private network
    /// namespace) and release it on Enter (hold: d drops it, q releases the rest) or after MS
    /// milliseconds (delay=MS). Needs root, or a user namespace the kernel allows.
    #[arg(long, value_name = "hold|delay=MS", value_parser = clap::value_parser!(crate::net::wire::Pace), conflicts_with_all = ["step", "step_delay"])]
    wire: Option<crate::net::wire::Pace>,
    /// Run the server and the client on two computers of their own: network namespaces with
    /// addresses 198.18.0.2 and 198.18.0.1, removed after the run (needs root).
    #[arg(long, conflicts_with_all = ["private_net", "wire"])]
    hosts: bool,
    /// With --hosts: a NAT router between them rewrites the client's source address and port.
    #[arg(long, requires = "hosts")]
    nat: bool,
    #[command(flatten)]
    stepping: StepArgs,
}

/// Runs the demo, then shows it.
pub fn run(a: DemoArgs, global: &Global) -> Result<(), Error> {
    let exe = current_exe()?;
    if a.wire.is_some() {
        wire::enter_namespace()?;
    } else if a.private_net {
        netns::enter_private_net()?;
    }
    let private_net = a.private_net || a.wire.is_some();
    let cfg = DemoConfig {
        port: a.port,
        message: a.message,
        lang: notes::lang().to_string(),
        probe: !global.no_probe,
        observe: a.show.observe(),
        wire: a.wire,
        hosts: a.hosts.then_some(hosts::Layout { nat: a.nat }),
        step: a.stepping.pace()?,
    };
    let run = demo::run(&exe, &cfg)?;
    demo::present(&run, &a.show.view(global.json, private_net))
}
