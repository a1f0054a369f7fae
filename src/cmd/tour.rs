//! `socklab tour`: the flags; the stops are in [`crate::course::tour`].

use clap::{Args, CommandFactory};

use super::{Cli, Global, current_exe};
use crate::course::{notes, tour};
use crate::error::Error;

/// `socklab tour` flags.
#[derive(Debug, Args)]
pub struct TourArgs {
    /// Go on to the next stop after MS milliseconds instead of waiting for Enter (0: at once).
    #[arg(long, value_name = "MS")]
    step_delay: Option<u64>,
    /// Start at stop N (1-based).
    #[arg(long, value_name = "N", conflicts_with = "only", value_parser = clap::value_parser!(u64).range(1..))]
    from: Option<u64>,
    /// Run stop N only.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    only: Option<u64>,
}

/// Runs the stops asked for, in order.
pub fn run(a: TourArgs, _global: &Global) -> Result<(), Error> {
    let exe = current_exe()?;
    let stops = tour::STOPS.len();
    let (from, to) = match (a.from, a.only) {
        (_, Some(n)) => (n as usize, n as usize),
        (Some(n), None) => (n as usize, stops),
        (None, None) => (1, stops),
    };
    if from > stops {
        return Err(Error::Usage(notes::text(
            "cli.no_stop",
            &[("n", from.to_string()), ("stops", stops.to_string())],
        )));
    }
    let server_models = Cli::command()
        .find_subcommand("server")
        .is_some_and(|c| c.get_arguments().any(|arg| arg.get_id() == "model"));
    tour::run(&tour::TourConfig {
        exe,
        lang: notes::lang().to_string(),
        step_delay: a.step_delay.map(std::time::Duration::from_millis),
        from,
        to,
        server_models,
    })
}
