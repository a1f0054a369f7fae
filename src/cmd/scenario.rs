//! `socklab scenario`: the flags and the verdict; the runner is
//! [`crate::course::scenarios::runner`].

use std::io;

use clap::Args;

use super::Global;
use super::show::ShowArgs;
use super::step::StepArgs;
use crate::course::{notes, scenarios};
use crate::error::Error;
use crate::programs::step::{self, StepConfig};

/// `socklab scenario` flags.
#[derive(Debug, Args)]
pub struct ScenarioArgs {
    /// The scenario to run (see --list).
    #[arg(required_unless_present = "list")]
    name: Option<String>,
    /// List the scenarios, one line each.
    #[arg(long)]
    list: bool,
    #[command(flatten)]
    show: ShowArgs,
    #[command(flatten)]
    stepping: StepArgs,
}

/// Runs one scenario and shows it; an error when the kernel did otherwise.
pub fn run(a: ScenarioArgs, global: &Global) -> Result<(), Error> {
    let json = global.json;
    if a.list {
        let mut text = String::new();
        for s in scenarios::ALL {
            text.push_str(&format!("{:<20} {}\n", s.name, s.summary()));
        }
        crate::render::write_or_exit(&mut io::stdout().lock(), text.as_bytes(), true);
        return Ok(());
    }
    let name = a.name.as_deref().unwrap_or_default();
    let s = scenarios::find(name).ok_or_else(|| {
        let names: Vec<_> = scenarios::ALL.iter().map(|s| s.name).collect();
        Error::Usage(notes::text(
            "cli.no_scenario",
            &[("name", name.to_string()), ("names", names.join(", "))],
        ))
    })?;
    if let Some(pace) = a.stepping.pace()? {
        // The runner picks the port and tells step mode (step::set_port).
        step::enable(StepConfig {
            pace,
            remote: false,
            to_stderr: json,
            port: 0,
        })?;
    }
    let outcome = scenarios::runner::run(s, &a.show.observe())?;
    scenarios::runner::show(s, &outcome, &a.show.view(json, false))?;
    if outcome.passed() {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "{} {}",
            notes::text("scenario.failed", &[("name", s.name.to_string())]),
            outcome.failures().join("; ")
        )))
    }
}
