//! `socklab run -- PROGRAM`: any program's socket calls on the lab's timeline.

use std::ffi::OsString;
use std::io::IsTerminal;

use clap::Args;

use super::Global;
use super::show::ShowArgs;
use crate::course::notes;
use crate::error::Error;
use crate::net::netns;
use crate::render::present::{self, Shown};
use crate::sys::ffi;
use crate::tracer::Exit;
use crate::tracer::session::{self, RunConfig};

/// `socklab run` flags.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    show: ShowArgs,
    /// Run the program alone in a private user and network namespace with its own loopback,
    /// where an ordinary user may capture packets.
    #[arg(long, conflicts_with = "pid")]
    private_net: bool,
    /// Attach to this running process (and its threads and new children) instead of starting
    /// a program; Ctrl-C detaches and leaves it running. Needs the right to trace it (your
    /// own process where Yama's ptrace_scope allows, else root).
    #[arg(long, value_name = "PID", conflicts_with = "program")]
    pid: Option<i32>,
    /// Pause before each socket call of the program, saying which process makes which call
    /// and why, until Enter (q: run to the end). The program waits at the call meanwhile.
    #[arg(long)]
    step: bool,
    /// Show each event as it happens (a server that runs until Ctrl-C), about a quarter of a
    /// second late so the kernel's events fall in place; the finished timeline's extra notes
    /// and lanes are not added. With --json, JSON lines as they happen.
    #[arg(long, conflicts_with = "diagram")]
    live: bool,
    /// The program and its arguments, after `--` (found on PATH as a shell would).
    #[arg(
        required_unless_present = "pid",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "PROGRAM"
    )]
    program: Vec<OsString>,
}

/// Runs the program under the tracer, shows the timeline, and returns the program's exit
/// status (128 + N when signal N killed it).
pub fn run(a: RunArgs, global: &Global) -> Result<i32, Error> {
    if a.private_net {
        netns::enter_private_net()?;
    }
    ffi::catch_interrupts().map_err(|e| Error::sys("sigaction", "SIGINT", e))?;
    let live = a.live && !global.quiet;
    let mut header = Vec::new();
    if a.private_net {
        header.push(notes::text("observe.private_net", &[]));
    }
    let title_of = |program: String| notes::text("run.title", &[("program", program)]);
    if live && !global.json {
        let program = match (a.pid, a.program.first()) {
            (Some(pid), _) => format!("pid {pid}"),
            (None, Some(p)) => p.to_string_lossy().into_owned(),
            (None, None) => String::new(),
        };
        let shown = shown(
            title_of(program),
            header.clone(),
            &[],
            &[],
            Vec::new(),
            None,
        );
        crate::render::write_or_exit(
            &mut std::io::stdout().lock(),
            present::head(&shown).as_bytes(),
            true,
        );
    } else if !live && !global.quiet && std::io::stderr().is_terminal() && a.pid.is_none() {
        eprintln!("{}", notes::text("run.at_end", &[]));
    }
    let cfg = RunConfig {
        argv: a.program.clone(),
        pid: a.pid,
        probe: !global.no_probe,
        probe_all: global.probe_all,
        observe: a.show.observe(),
        step: a.step,
        live: live.then_some(global.json),
        live_only: live && !a.show.draws(),
    };
    let traced = session::run(&cfg)?;
    let program = match (a.pid, a.program.first()) {
        (Some(pid), _) => traced.label(pid as u32),
        (None, Some(p)) => p.to_string_lossy().into_owned(),
        (None, None) => String::new(),
    };
    let code = traced.exit.map_or(0, Exit::code);
    if global.quiet {
        return Ok(code);
    }
    let ending = match traced.exit {
        None => notes::text("run.detached", &[("program", program.clone())]),
        Some(Exit::Code(c)) => notes::text(
            "run.exit",
            &[("program", program.clone()), ("code", c.to_string())],
        ),
        Some(Exit::Signal(sig)) => notes::text(
            "run.killed",
            &[
                ("program", program.clone()),
                ("signal", sig.as_str().to_string()),
                ("code", code.to_string()),
                ("n", (sig as i32).to_string()),
            ],
        ),
    };
    let labels = traced
        .processes
        .iter()
        .map(|(pid, p)| (*pid, p.label()))
        .collect();
    let shown = shown(
        title_of(program),
        header,
        &traced.events,
        &traced.notices,
        vec![ending],
        Some(labels),
    );
    let view = a.show.view(global.json, a.private_net);
    if live {
        // The events are out already: the rest of what was asked.
        for line in shown.notices {
            eprintln!("socklab: {line}");
        }
        present::write_pictures(&shown, &view)?;
        if !global.json {
            crate::render::write_or_exit(
                &mut std::io::stdout().lock(),
                present::footer(&shown).as_bytes(),
                true,
            );
        }
    } else {
        present::present(&shown, &view)?;
    }
    Ok(code)
}

/// What `socklab run` shows, around `events`.
fn shown<'a>(
    title: String,
    header: Vec<String>,
    events: &'a [crate::event::Event],
    notices: &'a [String],
    footer: Vec<String>,
    labels: Option<std::collections::BTreeMap<u32, String>>,
) -> Shown<'a> {
    Shown {
        title,
        header,
        events,
        server_addr: None,
        notices,
        footer,
        legend: Some("run.legend"),
        labels: labels.unwrap_or_default(),
    }
}
