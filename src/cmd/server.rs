//! `socklab server`: one of the server models, on the address given.

use std::path::PathBuf;

use clap::Args;

use super::step::{self, ProgramStepArgs};
use super::{Global, parse_secs, resolve, sink};
use crate::error::Error;
use crate::event::Role;
use crate::event::record;
use crate::programs::servers::{self, DEFAULT_MAX_CONNS, DEFAULT_PORT, Mode, Model, ServerConfig};

/// `socklab server` flags.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Interface address to listen at.
    #[arg(default_value = "127.0.0.1")]
    host: String,
    /// TCP port (0: let the kernel pick one).
    #[arg(short = 'p', long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// Serve this many connections, then exit (default: until Ctrl-C).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Bytes asked for by each read (default: the seed's recv(1024) in reply mode, which reads
    /// once; 65536 in echo mode, where 1024 would cost a read per KiB).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=16_777_216))]
    read_size: Option<u32>,
    /// The listen() backlog (default: 1 for iterative, as the seed; 128 for the others).
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..=4096))]
    backlog: Option<i32>,
    /// Set SO_REUSEADDR so a restart does not fail on old connections in TIME_WAIT.
    #[arg(long)]
    reuseaddr: bool,
    /// How connections are served: iterative (one at a time, the seed), fork (a child process
    /// each), thread (a thread each) or epoll (one thread, non-blocking sockets).
    #[arg(long, default_value_t = Model::Iterative, value_name = "MODEL")]
    model: Model,
    /// What is done on a connection: reply (read one message, reply, close: the seed) or echo
    /// (send back every byte until the client closes).
    #[arg(long, default_value_t = Mode::Reply, value_name = "MODE")]
    mode: Mode,
    /// Most connections served at once by fork and thread; the others wait in the accept
    /// queue.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONNS as u32, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_conns: u32,
    /// Close a connection that makes no progress for SECS seconds (decimals allowed, e.g. 0.5;
    /// default 0: never, as the seed).
    #[arg(long, value_name = "SECS", default_value = "0", value_parser = parse_secs)]
    idle_timeout: std::time::Duration,
    /// Write every event as a JSON line to FILE instead of printing events (buffered; flushed
    /// at exit). The program's own lines stay on stdout.
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,
    #[command(flatten)]
    stepping: ProgramStepArgs,
}

/// Runs the server until its count is served (or Ctrl-C).
pub fn run(a: ServerArgs, global: &Global) -> Result<(), Error> {
    let addr = resolve(&a.host, a.port)?;
    sink::install(global, Some(Role::Server), a.log_file.as_deref())?;
    step::enable(&a.stepping, global, addr.port())?;
    let cfg = ServerConfig {
        addr,
        count: a.count,
        read_size: a
            .read_size
            .map_or(a.mode.default_read_size(), |n| n as usize),
        backlog: a.backlog.unwrap_or(a.model.default_backlog()),
        reuse_addr: a.reuseaddr,
        model: a.model,
        mode: a.mode,
        max_conns: a.max_conns as usize,
        idle_timeout: (!a.idle_timeout.is_zero()).then_some(a.idle_timeout),
    };
    let res = servers::run(&cfg);
    record::flush();
    res.map(|_| ())
}
