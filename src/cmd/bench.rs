//! `socklab bench`: the flags; the benchmark is [`crate::bench`].

use std::io::{self, IsTerminal};

use clap::Args;

use super::{Global, current_exe, parse_secs};
use crate::bench::{self, BenchConfig, LogModes, Pin, Probe, Subject};
use crate::error::Error;
use crate::programs::servers::Model;

/// `socklab bench`: the server under test runs as a child process on 127.0.0.1; the load
/// generator's threads connect to it. With the global --json the report is one JSON document
/// on stdout.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("subject").required(true).args(["model", "target", "compare"])))]
pub struct BenchArgs {
    /// Measure this socklab server model: iterative, fork, thread or epoll.
    #[arg(long, value_name = "MODEL")]
    model: Option<Model>,
    /// Measure an echo server already listening at HOST:PORT on loopback (yours, to compare
    /// with socklab's).
    #[arg(long, value_name = "HOST:PORT")]
    target: Option<String>,
    /// Run every model in turn, each side by side with its C echo server, with every event
    /// logged as JSON to a file, and under strace -f (RR); print the ratios. Pins to one CPU
    /// unless --pin says otherwise.
    #[arg(long)]
    compare: bool,
    /// Which load: rr (request/response on long-lived connections), crr (connect, request,
    /// response, close), bulk (MiB through each connection, verified), hol (one silent
    /// client, others waiting), or all. The lab's servers read 64 KiB at a time here; a
    /// server reading 1024 bytes per call (the seed's recv) makes 64 times the reads in bulk.
    #[arg(long, default_value = "all", value_name = "W")]
    workload: crate::bench::Workloads,
    /// Concurrent connections (RR, bulk), CRR workers, and clients waiting behind the silent
    /// one (hol).
    #[arg(long, value_name = "N", default_value_t = crate::bench::DEFAULT_CONNS as u32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    conns: u32,
    /// Request and response size in bytes (RR, CRR, hol).
    #[arg(long, value_name = "BYTES", default_value_t = crate::bench::DEFAULT_SIZE as u32, value_parser = clap::value_parser!(u32).range(1..=crate::bench::MAX_SIZE as i64))]
    size: u32,
    /// Seconds counted for RR and for CRR, each, after a short warmup (decimals allowed).
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_secs)]
    duration: std::time::Duration,
    /// MiB each bulk connection sends and must get back byte for byte.
    #[arg(long, value_name = "M", default_value_t = crate::bench::DEFAULT_MIB, value_parser = clap::value_parser!(u64).range(1..=4096))]
    mib: u64,
    /// How long the head-of-line client stays silent, in ms.
    #[arg(long, value_name = "D", default_value_t = crate::bench::DEFAULT_SILENT.as_millis() as u64, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    silent_ms: u64,
    /// The socklab server's events: off (--quiet), json (every event as JSON lines to a
    /// temporary file, TCP_INFO probed as by default; see --probe-all), or both (two servers measured in turns,
    /// with the json/off ratio). --compare measures both.
    #[arg(long, value_name = "MODE", default_value = "off")]
    log: crate::bench::LogModes,
    /// When several servers are measured (--compare, --c-baseline, --log both): cut each
    /// one's RR and CRR time into this many slices and let the servers take turns, so that a
    /// change in the machine's load falls on all of them alike.
    #[arg(long, value_name = "N", default_value_t = crate::bench::DEFAULT_ROUNDS, value_parser = clap::value_parser!(u32).range(1..=crate::bench::MAX_ROUNDS as i64))]
    rounds: u32,
    /// Pin the server and the load generator: same (both on one CPU, the default with
    /// --pin: stable ratios on a small machine), split (server on the first CPU, load on the
    /// last) or off.
    #[arg(long, value_name = "HOW", num_args = 0..=1, default_missing_value = "same")]
    pin: Option<crate::bench::Pin>,
    /// Also measure the C echo server of the same model (bench-support/echo_server.c, built
    /// with cc) and print socklab/C ratios.
    #[arg(long, requires = "model")]
    c_baseline: bool,
    /// Measure the model's socklab and C servers untraced and under `socklab run`, `strace -f`,
    /// `strace -f --seccomp-bpf` with the network calls, read, write and close, and the same
    /// with the waits on sockets added (strace-same: socklab run's own stops), each tracer's
    /// output to a file, side by side in turns,
    /// RR and CRR; print the ratios to untraced and the tracers' peak memory; then time a few
    /// file-I/O programs untraced and under the tracers. Pins to one CPU unless --pin says
    /// otherwise.
    #[arg(long, requires = "model", conflicts_with_all = ["c_baseline", "log"])]
    tracers: bool,
    /// With --tracers: the MiB each file-I/O program reads or copies.
    #[arg(long, value_name = "M", default_value_t = crate::bench::DEFAULT_IO_MIB, value_parser = clap::value_parser!(u64).range(1..=4096))]
    io_mib: u64,
}

/// Runs the benchmark, prints the report; an error when a bulk echo came back different.
pub fn run(a: BenchArgs, global: &Global) -> Result<(), Error> {
    let json = global.json;
    let subject = match (&a.model, &a.target, a.compare) {
        (Some(m), _, _) => Subject::Model(*m),
        (_, Some(t), _) => Subject::target(t)?,
        _ => Subject::Compare,
    };
    if a.target.is_some() && a.log != LogModes::Off {
        return Err(Error::Usage(format!(
            "--log {} is for socklab's own servers (--model, --compare), not --target",
            if a.log == LogModes::Both {
                "both"
            } else {
                "json"
            }
        )));
    }
    let exe = current_exe()?;
    let compare = matches!(subject, Subject::Compare);
    let mut cfg = BenchConfig::new(exe, subject);
    cfg.workloads = a.workload;
    cfg.conns = a.conns as usize;
    cfg.size = a.size as usize;
    cfg.duration = a.duration;
    cfg.mib = a.mib;
    cfg.silent = std::time::Duration::from_millis(a.silent_ms);
    cfg.log = a.log;
    cfg.rounds = a.rounds;
    cfg.probe = match (global.no_probe, global.probe_all) {
        (true, _) => Probe::Off,
        (_, true) => Probe::All,
        _ => Probe::Sampled,
    };
    cfg.pin = a.pin.unwrap_or(if compare || a.tracers {
        Pin::Same
    } else {
        Pin::Off
    });
    cfg.c_baseline = a.c_baseline;
    cfg.tracers = a.tracers;
    cfg.io_mib = a.io_mib;
    cfg.progress = !json && io::stderr().is_terminal();
    let rep = bench::run(&cfg)?;
    let text = if json {
        let mut t = serde_json::to_string_pretty(&rep).expect("the report serializes");
        t.push('\n');
        t
    } else {
        bench::report::table(&rep)
    };
    crate::render::write_or_exit(&mut io::stdout().lock(), text.as_bytes(), true);
    rep.check_bulk()
}
