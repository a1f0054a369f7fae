//! `--step` and `--step-delay`: the step flags of demo, scenario, server and client.

use clap::Args;

use super::Global;
use crate::error::Error;
use crate::programs::output;
use crate::programs::step::{self, Pace, StepConfig};

/// `--step` and `--step-delay MS` (demo, scenario, server, client).
#[derive(Debug, Args)]
pub struct StepArgs {
    /// Pause before each system call: say what comes next and why, show the kernel's sockets
    /// right then (sock_diag, as `ss -tan`), and wait for Enter (q: run to the end). Reads
    /// lines from stdin, so a pipe works too.
    #[arg(long)]
    step: bool,
    /// Like --step, but go on by itself after MS milliseconds (0: at once).
    #[arg(long, value_name = "MS")]
    step_delay: Option<u64>,
}

impl StepArgs {
    /// The pace the flags ask for, if any.
    pub fn pace(&self) -> Result<Option<Pace>, Error> {
        Pace::from_flags(self.step, self.step_delay)
    }
}

/// The step flags of a program the demo may start.
#[derive(Debug, Args)]
pub struct ProgramStepArgs {
    #[command(flatten)]
    step: StepArgs,
    /// Set by `demo --step` for its programs: the demo serves the pauses (a note on stdout,
    /// then one line from stdin).
    #[arg(long, hide = true)]
    step_remote: bool,
}

/// Turns step mode on for a server or client when its flags ask, once its sink is installed.
pub fn enable(a: &ProgramStepArgs, global: &Global, port: u16) -> Result<(), Error> {
    let pace = match (a.step.pace()?, a.step_remote) {
        (Some(pace), _) => pace,
        (None, true) => Pace::Enter,
        (None, false) => return Ok(()),
    };
    if global.quiet {
        return Err(Error::Usage(
            "--step pauses before each logged call, and --quiet logs none: drop one of them".into(),
        ));
    }
    step::enable(StepConfig {
        pace,
        remote: a.step_remote,
        to_stderr: output::json(),
        port,
    })
}
