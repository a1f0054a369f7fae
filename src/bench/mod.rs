//! `socklab bench`: load on loopback against a server model, the C baseline or any echo server,
//! and the cost of the lab's visibility as a number.
//!
//! Four workloads ([`load`]): RR (request/response on N long-lived connections), CRR
//! (connect, request, response, close), bulk (MiB through each connection, verified byte for
//! byte) and head-of-line (one silent client, K others waiting). The server under test is a
//! child process ([`server`]); `--compare` runs every model as socklab's server with logging
//! off, with every event logged as JSON to a file, the C echo server of the same model
//! (`bench-support/echo_server.c`), and socklab's server under `strace -f`, and prints the
//! ratios ([`report`]). `--tracers` measures one model's servers (socklab's and C's) untraced
//! and under each tracer ([`server::Tracer`]: `socklab run`, `strace -f`, `strace
//! --seccomp-bpf`), and a few file-I/O programs untraced and under the tracers ([`fileio`]).
//!
//! On a small machine the scheduler decides more than the code: a client and a server on two
//! CPUs swing tenfold in round-trip rate from run to run. `--pin` puts both on one CPU, where
//! each transaction's cost is what the CPU spends on it, and ratios are stable. On a shared
//! machine the CPU itself speeds up and slows down over seconds, so servers compared with each
//! other run at the same time and take turns: RR and CRR go in `--rounds` slices.
//!
//! Read first: tcp(7), the LINUX-FACTS notes on pinning and TIME_WAIT, and Brendan Gregg,
//! Systems Performance, ch. 12 (benchmarking: "active benchmarking", know what limits it).

pub mod fileio;
pub mod load;
pub mod report;
pub mod server;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::Error;
use crate::programs::servers::Model;
use crate::sys::ffi;

use load::{BulkParams, CrrParams, Ctx, HolParams, RrParams};
use report::{Machine, Report, Run};
use server::{Kind, Pinning, Spawned, Tracer};

/// One of the four loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Request/response on long-lived connections.
    Rr,
    /// Connect, request, response, close.
    Crr,
    /// MiB through each connection, verified.
    Bulk,
    /// One silent client, others waiting.
    Hol,
}

impl Workload {
    /// Every workload, in the order they run.
    pub const ALL: [Workload; 4] = [Workload::Rr, Workload::Crr, Workload::Bulk, Workload::Hol];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Rr => "rr",
            Workload::Crr => "crr",
            Workload::Bulk => "bulk",
            Workload::Hol => "hol",
        }
    }
}

/// `--workload`: one of them, or all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Workloads {
    /// RR, CRR, bulk and head-of-line.
    #[default]
    All,
    /// Just one.
    One(Workload),
}

impl Workloads {
    /// The workloads to run, in order.
    pub fn list(self) -> Vec<Workload> {
        match self {
            Workloads::All => Workload::ALL.to_vec(),
            Workloads::One(w) => vec![w],
        }
    }
}

impl FromStr for Workloads {
    type Err = String;

    fn from_str(s: &str) -> Result<Workloads, String> {
        if s == "all" {
            return Ok(Workloads::All);
        }
        Workload::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .map(Workloads::One)
            .ok_or_else(|| format!("no workload '{s}'; try rr, crr, bulk, hol or all"))
    }
}

impl fmt::Display for Workloads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Workloads::All => f.write_str("all"),
            Workloads::One(w) => f.write_str(w.name()),
        }
    }
}

/// The server's event logging during a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LogMode {
    /// `--quiet`: no events (the wrappers check one flag and call nix).
    #[default]
    Off,
    /// Every event as a JSON line to a file (`--log-file`), TCP_INFO probed as [`Probe`] says.
    Json,
}

impl FromStr for LogMode {
    type Err = String;

    fn from_str(s: &str) -> Result<LogMode, String> {
        match s {
            "off" => Ok(LogMode::Off),
            "json" => Ok(LogMode::Json),
            _ => Err(format!("no log mode '{s}'; try json or off")),
        }
    }
}

impl fmt::Display for LogMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogMode::Off => "off",
            LogMode::Json => "json",
        })
    }
}

/// `--log`: the socklab server's logging in a run, or both side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogModes {
    /// Logging off.
    #[default]
    Off,
    /// Every event as JSON to a file.
    Json,
    /// Both, measured in turns, with the json/off ratio.
    Both,
}

impl LogModes {
    /// The servers' logging, in the order they are started.
    pub fn list(self) -> Vec<LogMode> {
        match self {
            LogModes::Off => vec![LogMode::Off],
            LogModes::Json => vec![LogMode::Json],
            LogModes::Both => vec![LogMode::Off, LogMode::Json],
        }
    }
}

impl FromStr for LogModes {
    type Err = String;

    fn from_str(s: &str) -> Result<LogModes, String> {
        match s {
            "both" => Ok(LogModes::Both),
            _ => match s.parse::<LogMode>() {
                Ok(LogMode::Off) => Ok(LogModes::Off),
                Ok(LogMode::Json) => Ok(LogModes::Json),
                Err(_) => Err(format!("no log mode '{s}'; try off, json or both")),
            },
        }
    }
}

/// The TCP_INFO probe of a socklab server that logs (the global `--no-probe`, `--probe-all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Probe {
    /// After each call, sampled under load (the default).
    #[default]
    Sampled,
    /// After every call.
    All,
    /// None.
    Off,
}

impl Probe {
    /// The flag that asks a socklab server for it, if any.
    pub fn flag(self) -> Option<&'static str> {
        match self {
            Probe::Sampled => None,
            Probe::All => Some("--probe-all"),
            Probe::Off => Some("--no-probe"),
        }
    }
}

/// Where server and load generator run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pin {
    /// Wherever the scheduler puts them.
    #[default]
    Off,
    /// Both on one CPU (the last this process may use): stable ratios on a small machine.
    Same,
    /// The server on the first CPU, the load generator on the last.
    Split,
}

impl FromStr for Pin {
    type Err = String;

    fn from_str(s: &str) -> Result<Pin, String> {
        match s {
            "off" => Ok(Pin::Off),
            "same" => Ok(Pin::Same),
            "split" => Ok(Pin::Split),
            _ => Err(format!("no pinning '{s}'; try same, split or off")),
        }
    }
}

/// What is measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// One of socklab's server models.
    Model(Model),
    /// Any echo server already listening on loopback.
    Target(SocketAddr),
    /// Every model: socklab logging off and on, the C baseline, strace -f.
    Compare,
}

impl Subject {
    /// `--target HOST:PORT`: an echo server's address (`[::1]:7000` too; a name is resolved).
    pub fn target(t: &str) -> Result<Subject, Error> {
        let (host, port) = t.rsplit_once(':').ok_or_else(|| {
            Error::Usage(format!(
                "--target '{t}' needs HOST:PORT (e.g. 127.0.0.1:7000)"
            ))
        })?;
        let port = port
            .parse()
            .map_err(|_| Error::Usage(format!("--target '{t}': '{port}' is not a port")))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Ok(Subject::Target(crate::net::resolve(host, port)?))
    }
}

/// How a benchmark runs.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The socklab executable (started as the server under test).
    pub socklab: PathBuf,
    /// What is measured.
    pub subject: Subject,
    /// Which loads.
    pub workloads: Workloads,
    /// RR and bulk connections, CRR workers, head-of-line clients besides the silent one.
    pub conns: usize,
    /// RR and CRR request size.
    pub size: usize,
    /// RR and CRR counted time (each; a short warmup comes first).
    pub duration: Duration,
    /// Bulk MiB through each connection.
    pub mib: u64,
    /// Head-of-line: how long the first client stays silent.
    pub silent: Duration,
    /// The socklab server's logging (`--model` only; `--compare` does both).
    pub log: LogModes,
    /// The TCP_INFO probe of socklab's servers when they log.
    pub probe: Probe,
    /// Slices of RR and CRR when several servers are measured side by side: each server's
    /// counted time is cut into this many, and the servers take turns.
    pub rounds: u32,
    /// CPU pinning.
    pub pin: Pin,
    /// Also measure the C echo server of the same model and print the ratios.
    pub c_baseline: bool,
    /// `--tracers` (with a model): socklab's and the C server untraced and under each tracer,
    /// RR and CRR, and the file-I/O programs.
    pub tracers: bool,
    /// `--tracers`: the MiB each file-I/O program moves.
    pub io_mib: u64,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

impl BenchConfig {
    /// Defaults that finish in a few seconds per server.
    pub fn new(socklab: PathBuf, subject: Subject) -> BenchConfig {
        BenchConfig {
            socklab,
            subject,
            workloads: Workloads::All,
            conns: DEFAULT_CONNS,
            size: DEFAULT_SIZE,
            duration: DEFAULT_DURATION,
            mib: DEFAULT_MIB,
            silent: DEFAULT_SILENT,
            log: LogModes::Off,
            rounds: DEFAULT_ROUNDS,
            probe: Probe::Sampled,
            pin: Pin::Off,
            c_baseline: false,
            tracers: false,
            io_mib: DEFAULT_IO_MIB,
            progress: false,
        }
    }

    /// The counted time of one slice of `slices`, and the warmup before it.
    fn slice(&self, slices: u32) -> (Duration, Duration) {
        let counted = self.duration / slices.max(1);
        (counted, (counted / 4).min(Duration::from_millis(250)))
    }
}

/// Default connections (and CRR workers, and head-of-line clients).
pub const DEFAULT_CONNS: usize = 4;
/// Default rounds of RR and CRR for servers measured side by side.
pub const DEFAULT_ROUNDS: u32 = 4;
/// Most rounds (each slice has its own warmup and connections).
pub const MAX_ROUNDS: u32 = 100;
/// Default request size: 1 byte, where per-call costs show most.
pub const DEFAULT_SIZE: usize = 1;
/// Largest request size (a request must fit the socket buffers while it is written before
/// its echo is read).
pub const MAX_SIZE: usize = 64 * 1024;
/// Default counted time of RR and CRR.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(2);
/// Default bulk MiB per connection.
pub const DEFAULT_MIB: u64 = 32;
/// Default MiB each file-I/O program of `--tracers` moves.
pub const DEFAULT_IO_MIB: u64 = 256;
/// Default silence of the head-of-line client.
pub const DEFAULT_SILENT: Duration = Duration::from_millis(200);
/// Longest a bulk workload may take: this, plus [`BULK_PER_MIB`] per MiB in all.
const BULK_LIMIT: Duration = Duration::from_secs(10);
/// The slowest bulk rate waited for: 20 MiB/s.
const BULK_PER_MIB: Duration = Duration::from_millis(50);

fn machine(pin: &Pinning) -> Machine {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let loadavg = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok());
    Machine {
        cpus: server::allowed_cpus().len(),
        kernel,
        loadavg,
        pinning: pin.describe(),
    }
}

fn pinning(pin: Pin) -> Pinning {
    let cpus = server::allowed_cpus();
    match (pin, cpus.first(), cpus.last()) {
        (Pin::Same, _, Some(&last)) => Pinning::cpus(last, last),
        (Pin::Split, Some(&first), Some(&last)) => Pinning::cpus(first, last),
        _ => Pinning::off(),
    }
}

/// Runs the benchmark `cfg` describes. Ctrl-C stops it (the servers are stopped too) with an
/// error.
pub fn run(cfg: &BenchConfig) -> Result<Report, Error> {
    if cfg.conns == 0 || cfg.size == 0 || cfg.size > MAX_SIZE {
        return Err(Error::Usage(format!(
            "--conns must be at least 1 and --size 1..={MAX_SIZE}"
        )));
    }
    ffi::catch_interrupts().map_err(|e| Error::sys("sigaction", "SIGINT", e))?;
    let pin = pinning(cfg.pin);
    let mut rep = Report {
        machine: machine(&pin),
        runs: Vec::new(),
        ratios: Vec::new(),
        notes: Vec::new(),
        file_io: Vec::new(),
    };
    if let Some(flag) = cfg.probe.flag() {
        rep.notes
            .push(format!("socklab's servers that log ran with {flag}"));
    }
    let res = bench(cfg, &pin, &mut rep);
    pin.restore();
    res.map(|()| rep)
}

fn bench(cfg: &BenchConfig, pin: &Pinning, rep: &mut Report) -> Result<(), Error> {
    match &cfg.subject {
        Subject::Target(addr) => {
            if !addr.ip().is_loopback() {
                return Err(Error::Usage(format!(
                    "--target {addr} is not a loopback address: socklab bench sends load to \
                     this machine only (127.0.0.0/8 or ::1)"
                )));
            }
            load::probe(*addr).map_err(|e| Error::sys("connect", addr, e))?;
            pin.pin_load()?;
            let label = addr.to_string();
            let mut run = Run::new(label.clone(), *addr);
            for w in cfg.workloads.list() {
                measure(cfg, 1, None, *addr, &label, w, &mut run)?;
            }
            rep.runs.push(run);
        }
        Subject::Model(m) if cfg.tracers => tracers(cfg, pin, rep, *m)?,
        Subject::Model(m) => {
            let mut kinds = Vec::new();
            if cfg.c_baseline {
                kinds.push(Kind::C {
                    model: *m,
                    exe: c_exe(cfg)?,
                });
            }
            for log in cfg.log.list() {
                kinds.push(Kind::Socklab { model: *m, log });
            }
            let runs = measure_together(cfg, pin, &kinds, &cfg.workloads.list())?;
            add_ratios(rep, *m, &kinds, &runs);
            rep.runs.extend(runs);
        }
        Subject::Compare => compare(cfg, pin, rep)?,
    }
    Ok(())
}

fn c_exe(cfg: &BenchConfig) -> Result<PathBuf, Error> {
    server::build_c_baseline(&server::c_baseline_dir(&cfg.socklab)).map_err(Error::Other)
}

/// The ratios between runs of one model: socklab (logging off, else the first) over C, JSON
/// logging over off, strace over off.
fn add_ratios(rep: &mut Report, m: Model, kinds: &[Kind], runs: &[Run]) {
    let find = |want: &dyn Fn(&Kind) -> bool| kinds.iter().position(want).map(|i| &runs[i]);
    let c = find(&|k| matches!(k, Kind::C { .. }));
    let off = find(&|k| {
        matches!(
            k,
            Kind::Socklab {
                log: LogMode::Off,
                ..
            }
        )
    });
    let json = find(&|k| {
        matches!(
            k,
            Kind::Socklab {
                log: LogMode::Json,
                ..
            }
        )
    });
    let traced = find(&|k| matches!(k, Kind::Strace { .. }));
    let name = m.name();
    if let (Some(own), Some(c)) = (off.or(json), c) {
        rep.ratios.extend(report::ratios("socklab/C", name, own, c));
    }
    if let (Some(json), Some(off)) = (json, off) {
        rep.ratios
            .extend(report::ratios("json/off", name, json, off));
    }
    if let (Some(t), Some(off)) = (traced, off) {
        rep.ratios
            .extend(report::ratios("strace/off", name, t, off));
    }
}

/// Every model in turn; for each, side by side ([`measure_together`]): the C baseline,
/// socklab logging off, socklab logging JSON to a file, and socklab under strace -f (RR).
fn compare(cfg: &BenchConfig, pin: &Pinning, rep: &mut Report) -> Result<(), Error> {
    let c = match c_exe(cfg) {
        Ok(exe) => Some(exe),
        Err(why) => {
            rep.notes.push(format!("no C baseline: {why}"));
            None
        }
    };
    let strace = server::which("strace");
    if strace.is_none() {
        rep.notes
            .push("no strace in PATH: its cost is not measured (apt-get install strace)".into());
    }
    for m in Model::ALL {
        let mut kinds = Vec::new();
        if let Some(exe) = &c {
            kinds.push(Kind::C {
                model: m,
                exe: exe.clone(),
            });
        }
        for log in [LogMode::Off, LogMode::Json] {
            kinds.push(Kind::Socklab { model: m, log });
        }
        if let Some(st) = &strace
            && cfg.workloads.list().contains(&Workload::Rr)
        {
            kinds.push(Kind::Strace {
                model: m,
                strace: st.clone(),
            });
        }
        let runs = measure_together(cfg, pin, &kinds, &cfg.workloads.list())?;
        add_ratios(rep, m, &kinds, &runs);
        rep.runs.extend(runs);
    }
    Ok(())
}

/// `--tracers`: model `m`'s C server and socklab's, each untraced and under every tracer
/// found, side by side in turns ([`measure_together`]), RR and CRR; the ratios of each to
/// its untraced self and of `socklab run` to strace, whether the targets are met; then
/// the file-I/O programs ([`fileio`]).
fn tracers(cfg: &BenchConfig, pin: &Pinning, rep: &mut Report, m: Model) -> Result<(), Error> {
    let workloads: Vec<Workload> = cfg
        .workloads
        .list()
        .into_iter()
        .filter(|w| matches!(w, Workload::Rr | Workload::Crr))
        .collect();
    if workloads.is_empty() {
        return Err(Error::Usage(
            "--tracers measures rr and crr: --workload rr, crr or all".into(),
        ));
    }
    let strace = server::which("strace");
    if strace.is_none() {
        rep.notes.push(
            "no strace in PATH: only socklab run is measured (apt-get install strace)".into(),
        );
    }
    let tracers: Vec<(Tracer, PathBuf)> = Tracer::ALL
        .into_iter()
        .filter_map(|t| match t {
            Tracer::Run => Some((t, cfg.socklab.clone())),
            _ => strace.clone().map(|s| (t, s)),
        })
        .collect();
    let mut bases: Vec<(Kind, Option<PathBuf>)> = Vec::new();
    match c_exe(cfg) {
        Ok(exe) => bases.push((
            Kind::C {
                model: m,
                exe: exe.clone(),
            },
            Some(exe),
        )),
        Err(why) => rep.notes.push(format!("no C baseline: {why}")),
    }
    bases.push((
        Kind::Socklab {
            model: m,
            log: LogMode::Off,
        },
        None,
    ));
    let mut kinds = Vec::new();
    for (base, c) in &bases {
        kinds.push(base.clone());
        for (t, exe) in &tracers {
            kinds.push(Kind::Traced {
                model: m,
                c: c.clone(),
                tracer: *t,
                exe: exe.clone(),
            });
        }
    }
    let runs = measure_together(cfg, pin, &kinds, &workloads)?;
    let find = |c: bool, t: Option<Tracer>| {
        kinds
            .iter()
            .position(|k| k.tracer() == t && (k.server() == "c") == c)
            .map(|i| &runs[i])
    };
    for c in [false, true] {
        let model = if c { format!("C {m}") } else { m.to_string() };
        let Some(untraced) = find(c, None) else {
            continue;
        };
        for (t, _) in &tracers {
            if let Some(traced) = find(c, Some(*t)) {
                let what = format!("{}/untraced", t.name());
                rep.ratios
                    .extend(report::ratios(&what, &model, traced, untraced));
            }
        }
        if let Some(run) = find(c, Some(Tracer::Run)) {
            for (other, want) in [(Tracer::StraceBpf, 1.0), (Tracer::Strace, 1.5)] {
                let Some(o) = find(c, Some(other)) else {
                    continue;
                };
                let rs = report::ratios(&format!("run/{}", other.name()), &model, run, o);
                for r in &rs {
                    rep.notes.push(format!(
                        "target: socklab run at least {want}x as fast as {} ({model}, {}): \
                         {:.2}x, {}",
                        match other {
                            Tracer::StraceBpf => "strace --seccomp-bpf",
                            _ => "strace -f",
                        },
                        r.workload,
                        r.ratio,
                        if r.ratio >= want { "met" } else { "NOT met" }
                    ));
                }
                rep.ratios.extend(rs);
            }
            // No target: strace with socklab's own stops, so the cost of each is compared.
            if let Some(o) = find(c, Some(Tracer::StraceSame)) {
                rep.ratios
                    .extend(report::ratios("run/strace-same", &model, run, o));
            }
        }
    }
    rep.runs.extend(runs);
    fileio::measure(cfg, strace.as_deref(), rep)
}

/// Starts every server of `kinds` at once and measures them side by side. RR and CRR go in
/// [`BenchConfig::rounds`] slices, the servers taking turns (a different one first in each
/// round): a change in the machine's load while they run falls on all of them alike, where
/// one server after another would each meet a different machine. Bulk and head-of-line run
/// once per server. The servers are stopped whatever happens.
fn measure_together(
    cfg: &BenchConfig,
    pin: &Pinning,
    kinds: &[Kind],
    workloads: &[Workload],
) -> Result<Vec<Run>, Error> {
    let mut servers = Vec::with_capacity(kinds.len());
    for k in kinds {
        // One that fails to start stops (drops) those started before it.
        servers.push(Spawned::start(&cfg.socklab, k, cfg.probe, pin)?);
    }
    let mut runs: Vec<Run> = kinds
        .iter()
        .zip(&servers)
        .map(|(k, s)| Run::new(k.label(), s.addr))
        .collect();
    let n = kinds.len();
    let rounds = if n > 1 { cfg.rounds.max(1) } else { 1 };
    for &w in workloads {
        let slices = match w {
            Workload::Rr | Workload::Crr => rounds,
            Workload::Bulk | Workload::Hol => 1,
        };
        for r in 0..slices as usize {
            for j in 0..n {
                let i = (j + r) % n;
                if !kinds[i].measures(w) {
                    continue;
                }
                let label = match slices {
                    1 => kinds[i].label(),
                    _ => format!("{} {}/{slices}", kinds[i].label(), r + 1),
                };
                let addr = servers[i].addr;
                measure(
                    cfg,
                    slices,
                    Some(&mut servers[i]),
                    addr,
                    &label,
                    w,
                    &mut runs[i],
                )?;
            }
        }
    }
    for ((run, srv), kind) in runs.iter_mut().zip(servers).zip(kinds) {
        let left = srv.stop();
        run.server = kind.server().into();
        run.model = Some(kind.model().name().into());
        run.log = kind.log().to_string();
        run.logged_events = left.events;
        run.logged_bytes = left.bytes;
        run.tracer = kind.tracer().map(|t| t.name().to_string());
        run.trace_lines = left.trace_lines;
        run.trace_bytes = left.trace_bytes;
        run.tracer_kib_loaded = left.tracer_kib_loaded;
        run.tracer_kib_peak = left.tracer_kib_peak;
    }
    Ok(runs)
}

fn bar(cfg: &BenchConfig, label: &str, w: Workload, len: u64) -> ProgressBar {
    if !cfg.progress {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{prefix:>20} {wide_bar} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    b.set_style(style);
    b.set_prefix(format!("{label} {}", w.name()));
    b
}

/// Runs workload `w` against `run`'s address (RR and CRR: one of `slices` slices, added to
/// what earlier slices measured), ticking the progress bar and watching the server and
/// Ctrl-C from this thread while the load runs on others.
fn measure(
    cfg: &BenchConfig,
    slices: u32,
    srv: Option<&mut Spawned>,
    addr: SocketAddr,
    label: &str,
    w: Workload,
    run: &mut Run,
) -> Result<(), Error> {
    let ctx = Ctx::new(addr);
    let (duration, warmup) = cfg.slice(slices);
    let timed = (warmup + duration).as_millis() as u64;
    match w {
        Workload::Rr => {
            let p = RrParams {
                conns: cfg.conns,
                size: cfg.size,
                warmup,
                duration,
            };
            let b = bar(cfg, label, w, timed);
            let got = drive(&ctx, &b, srv, "tx", || load::rr(&ctx, p))?;
            match run.rr.as_mut() {
                Some(rr) => rr.absorb(got),
                None => run.rr = Some(got),
            }
        }
        Workload::Crr => {
            let p = CrrParams {
                workers: cfg.conns,
                size: cfg.size,
                warmup,
                duration,
            };
            let b = bar(cfg, label, w, timed);
            let got = drive(&ctx, &b, srv, "conns", || load::crr(&ctx, p))?;
            match run.crr.as_mut() {
                Some(crr) => crr.absorb(got),
                None => run.crr = Some(got),
            }
        }
        Workload::Bulk => {
            let p = BulkParams {
                conns: cfg.conns,
                bytes: cfg.mib << 20,
                limit: BULK_LIMIT + BULK_PER_MIB * (cfg.mib as u32) * (cfg.conns as u32),
            };
            let b = bar(cfg, label, w, (cfg.mib << 20) * cfg.conns as u64);
            run.bulk = Some(drive(&ctx, &b, srv, "", || load::bulk(&ctx, p))?);
        }
        Workload::Hol => {
            let p = HolParams {
                silent: cfg.silent,
                others: cfg.conns,
                size: cfg.size,
            };
            let b = bar(cfg, label, w, cfg.silent.as_millis() as u64);
            run.hol = Some(drive(&ctx, &b, srv, "answered", || load::hol(&ctx, p))?);
        }
    }
    Ok(())
}

/// Runs `work` on a thread of its own while this one ticks the bar every 50 ms, stops the
/// workers at Ctrl-C, and checks that the server still runs.
fn drive<T: Send>(
    ctx: &Ctx,
    bar: &ProgressBar,
    mut srv: Option<&mut Spawned>,
    unit: &str,
    work: impl FnOnce() -> T + Send,
) -> Result<T, Error> {
    let start = Instant::now();
    let by_bytes = unit.is_empty();
    let (out, died) = thread::scope(|s| {
        let h = s.spawn(work);
        let mut died = None;
        while !h.is_finished() {
            thread::sleep(Duration::from_millis(50));
            let done = ctx.done.load(Ordering::Relaxed);
            if by_bytes {
                bar.set_position(done);
                bar.set_message(format!("{} MiB", done >> 20));
            } else {
                bar.set_position(start.elapsed().as_millis() as u64);
                bar.set_message(format!("{done} {unit}"));
            }
            if ffi::interrupted() {
                ctx.stop.store(true, Ordering::Relaxed);
            }
            if died.is_none()
                && let Some(srv) = srv.as_deref_mut()
                && let Err(e) = srv.alive()
            {
                died = Some(e);
                ctx.stop.store(true, Ordering::Relaxed);
            }
        }
        (h.join(), died)
    });
    bar.finish_and_clear();
    if ffi::interrupted() {
        return Err(Error::Other(
            "interrupted (Ctrl-C): the load and the servers under test were stopped".into(),
        ));
    }
    if let Some(e) = died {
        return Err(e);
    }
    out.map_err(|_| Error::Other("a load worker panicked".into()))
}
