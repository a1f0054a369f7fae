//! The command line: parse, set up the recorder, call the library, turn errors into one line.
//!
//! This file is the top level (the global flags, the list of subcommands, dispatch); each
//! subcommand has a file of its own with its flags and a `run(args, global)` that calls the
//! layer doing the work.

mod bench;
mod client;
mod demo;
mod explain;
mod hosts;
mod run;
mod scenario;
mod server;
mod show;
mod sink;
mod ss;
mod step;
mod tour;
mod trace;
mod watch;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::course::notes;
use crate::error::Error;
use crate::event::record;
use crate::programs::output;

pub use crate::net::resolve;

/// socklab: see what the operating system does for network IPC, one system call at a time.
#[derive(Debug, Parser)]
#[command(name = "socklab", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// The flags every subcommand takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Print events as JSON lines on stdout (everything else goes to stderr).
    #[arg(long, global = true)]
    json: bool,
    /// Log no events: just the program, as the seed's Python would run.
    #[arg(long, short = 'q', global = true)]
    quiet: bool,
    /// Do not read TCP_INFO after each call (events then carry no tcp_state).
    #[arg(long, global = true)]
    no_probe: bool,
    /// Read TCP_INFO after every call, even under load (by default, once a socket has made
    /// 100 reads and writes, one that moved data on an ESTABLISHED socket is probed at most
    /// once per millisecond).
    #[arg(long, global = true, conflicts_with = "no_probe")]
    probe_all: bool,
    /// Language of the notes and explanations: en or ko; default from SOCKLAB_LANG, LC_ALL,
    /// LC_MESSAGES or LANG (ko_KR.UTF-8 picks ko), else en.
    #[arg(long, global = true, value_name = "LANG")]
    lang: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a server: the seed's by default (accept, read one message, reply, close, repeat);
    /// --model and --mode choose others.
    Server(server::ServerArgs),
    /// Run the seed's client: connect, send one message, print the reply.
    Client(client::ClientArgs),
    /// Run a server and a client on loopback and show the whole exchange on one timeline.
    Demo(demo::DemoArgs),
    /// Set up two computers (network namespaces joined by a veth pair, 198.18.0.0/15; with
    /// --nat a router between them) that stay until `socklab hosts down`. Needs root.
    Hosts(hosts::HostsArgs),
    /// Print live TCP state changes of every process (the kernel's tracepoint; needs root,
    /// else polls sock_diag).
    Watch(watch::WatchArgs),
    /// Run the demo (or an example) under strace -f: each lab event beside strace's line.
    Trace(trace::TraceArgs),
    /// One sock_diag snapshot of TCP sockets (like `ss -tan`), with what each state means.
    Ss(ss::SsArgs),
    /// Run a scenario: one socket behaviour reproduced on the real kernel, explained and
    /// checked (exit 1 when the kernel did otherwise).
    Scenario(scenario::ScenarioArgs),
    /// A short reference: a system call, TCP state, errno or concept, and the command that
    /// shows it live.
    Explain(explain::ExplainArgs),
    /// Load on loopback: RR, CRR, bulk and head-of-line against a server model, any echo
    /// server (--target), or every model beside the C baseline and strace (--compare); a
    /// table at the end, or with --json one JSON document.
    Bench(bench::BenchArgs),
    /// Run any program (yours, the seed's Python, a real server) under the tracer and show its
    /// socket calls, every process and thread, and the kernel's side on one timeline; exits
    /// with the program's status.
    Run(run::RunArgs),
    /// Walk the course in order (what a server is, IP and port, the socket calls, the
    /// handshake, the backlog, accept, server models, TCP vs UDP), running each part live.
    Tour(tour::TourArgs),
}

/// `--idle-timeout`, `--duration`: a number of seconds, decimals allowed.
fn parse_secs(s: &str) -> Result<std::time::Duration, String> {
    s.parse::<f64>()
        .ok()
        .and_then(|v| std::time::Duration::try_from_secs_f64(v).ok())
        .ok_or_else(|| format!("'{s}' is not a number of seconds (try 30 or 0.5)"))
}

/// This executable, which the demo, the tour, the bench and `hosts` start again.
fn current_exe() -> Result<PathBuf, Error> {
    crate::programs::self_exe()
        .map_err(|e| Error::Other(format!("cannot find the socklab executable: {e}")))
}

/// The language from `--lang`, else from the environment ([`notes::lang_from_env`]). An
/// unknown `--lang` gives English and is returned second, to be reported.
fn pick_lang(flag: Option<&str>) -> (&'static str, Option<String>) {
    match flag {
        Some(l) => match notes::lang_of_locale(l) {
            Some(code) => (code, None),
            None => (notes::FALLBACK, Some(l.to_string())),
        },
        None => (notes::lang_from_env(), None),
    }
}

/// Runs the parsed command line; returns the exit status (a traced program's own, for
/// `socklab run`).
pub fn run(cli: Cli) -> Result<i32, Error> {
    let (choice, unknown) = pick_lang(cli.global.lang.as_deref());
    notes::set_lang(choice);
    if let Some(asked) = unknown {
        let known: Vec<_> = notes::languages().collect();
        eprintln!(
            "socklab: {}",
            notes::text(
                "cli.unknown_lang",
                &[("lang", asked), ("known", known.join(", "))]
            )
        );
    }
    let g = &cli.global;
    let done = match cli.command {
        Command::Run(a) => return run::run(a, g),
        Command::Server(a) => server::run(a, g),
        Command::Client(a) => client::run(a, g),
        Command::Demo(a) => demo::run(a, g),
        Command::Hosts(a) => hosts::run(a, g),
        Command::Watch(a) => watch::run(a, g),
        Command::Trace(a) => trace::run(a, g),
        Command::Ss(a) => ss::run(a, g),
        Command::Scenario(a) => scenario::run(a, g),
        Command::Explain(a) => explain::run(a, g),
        Command::Bench(a) => bench::run(a, g),
        Command::Tour(a) => tour::run(a, g),
    };
    done.map(|()| 0)
}

/// Parses the process arguments, runs, and returns the exit code (2 for usage errors).
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            record::flush();
            output::end_open_prompt();
            eprintln!("socklab: {e}");
            e.exit_code()
        }
    }
}
