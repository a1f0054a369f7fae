//! `socklab bench`: load on loopback against a server model, the C baseline or any echo server,
//! and the cost of the lab's visibility as a number.
//!
//! Four workloads ([`load`]): RR (request/response on N long-lived connections), CRR
//! (connect, request, response, close), bulk (MiB through each connection, verified byte for
//! byte) and head-of-line (one silent client, K others waiting). The server under test is a
//! child process ([`server`]); `--compare` runs every model as socklab's server with logging
//! off, with every event logged as JSON to a file, the C echo server of the same model
//! (`bench-support/echo_server.c`), and socklab's server under `strace -f`, and prints the
//! ratios ([`report`]).
//!
//! On a small machine the scheduler decides more than the code: a client and a server on two
//! CPUs swing tenfold in round-trip rate from run to run. `--pin` puts both on one CPU, where
//! each transaction's cost is what the CPU spends on it, and ratios are stable.
//!
//! Read first: tcp(7), the LINUX-FACTS notes on pinning and TIME_WAIT, and Brendan Gregg,
//! Systems Performance, ch. 12 (benchmarking: "active benchmarking", know what limits it).

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
use crate::servers::Model;
use crate::sys::ffi;

use load::{BulkParams, CrrParams, Ctx, HolParams, RrParams};
use report::{Machine, Report, Run};
use server::{Kind, Pinning, Spawned};

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
    /// Every event as a JSON line to a file (`--log-file`), TCP_INFO probed after each call.
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
    pub log: LogMode,
    /// CPU pinning.
    pub pin: Pin,
    /// Also measure the C echo server of the same model and print the ratios.
    pub c_baseline: bool,
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
            log: LogMode::Off,
            pin: Pin::Off,
            c_baseline: false,
            progress: false,
        }
    }

    fn warmup(&self) -> Duration {
        (self.duration / 4).min(Duration::from_millis(250))
    }
}

/// Default connections (and CRR workers, and head-of-line clients).
pub const DEFAULT_CONNS: usize = 4;
/// Default request size: 1 byte, where per-call costs show most.
pub const DEFAULT_SIZE: usize = 1;
/// Largest request size (a request must fit the socket buffers while it is written before
/// its echo is read).
pub const MAX_SIZE: usize = 64 * 1024;
/// Default counted time of RR and CRR.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(2);
/// Default bulk MiB per connection.
pub const DEFAULT_MIB: u64 = 32;
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
    };
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
            rep.runs.push(measure(cfg, None, *addr, addr.to_string())?);
        }
        Subject::Model(m) => {
            let mut c_run = None;
            if cfg.c_baseline {
                let exe = c_exe(cfg)?;
                c_run = Some(measure_kind(cfg, pin, &Kind::C { model: *m, exe })?);
            }
            let own = measure_kind(
                cfg,
                pin,
                &Kind::Socklab {
                    model: *m,
                    log: cfg.log,
                },
            )?;
            if let Some(c) = c_run {
                rep.ratios
                    .extend(report::ratios("socklab/C", m.name(), &own, &c));
                rep.runs.push(c);
            }
            rep.runs.push(own);
        }
        Subject::Compare => compare(cfg, pin, rep)?,
    }
    Ok(())
}

fn c_exe(cfg: &BenchConfig) -> Result<PathBuf, Error> {
    server::build_c_baseline(&server::c_baseline_dir(&cfg.socklab)).map_err(Error::Other)
}

/// Every model, one after another: the C baseline, socklab logging off, socklab logging JSON
/// to a file (adjacent in time, so a load change on a shared machine touches all three
/// alike); then RR under strace -f.
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
        let c_run = match &c {
            Some(exe) => Some(measure_kind(
                cfg,
                pin,
                &Kind::C {
                    model: m,
                    exe: exe.clone(),
                },
            )?),
            None => None,
        };
        let off = measure_kind(
            cfg,
            pin,
            &Kind::Socklab {
                model: m,
                log: LogMode::Off,
            },
        )?;
        let json = measure_kind(
            cfg,
            pin,
            &Kind::Socklab {
                model: m,
                log: LogMode::Json,
            },
        )?;
        if let Some(c_run) = &c_run {
            rep.ratios
                .extend(report::ratios("socklab/C", m.name(), &off, c_run));
        }
        rep.ratios
            .extend(report::ratios("json/off", m.name(), &json, &off));
        let traced = match (&strace, cfg.workloads.list().contains(&Workload::Rr)) {
            (Some(st), true) => {
                let only_rr = BenchConfig {
                    workloads: Workloads::One(Workload::Rr),
                    ..cfg.clone()
                };
                Some(measure_kind(
                    &only_rr,
                    pin,
                    &Kind::Strace {
                        model: m,
                        strace: st.clone(),
                    },
                )?)
            }
            _ => None,
        };
        if let Some(t) = &traced {
            rep.ratios
                .extend(report::ratios("strace/off", m.name(), t, &off));
        }
        rep.runs.extend(c_run);
        rep.runs.push(off);
        rep.runs.push(json);
        rep.runs.extend(traced);
    }
    Ok(())
}

/// Starts `kind`, measures it, stops it.
fn measure_kind(cfg: &BenchConfig, pin: &Pinning, kind: &Kind) -> Result<Run, Error> {
    let mut srv = Spawned::start(&cfg.socklab, kind, pin)?;
    let addr = srv.addr;
    let mut run = measure(cfg, Some(&mut srv), addr, kind.label());
    let left = srv.stop();
    if let Ok(r) = run.as_mut() {
        r.server = kind.server().into();
        r.model = Some(kind.model().name().into());
        r.log = kind.log().to_string();
        r.logged_events = left.events;
        r.logged_bytes = left.bytes;
    }
    run
}

fn bar(cfg: &BenchConfig, label: &str, w: Workload, len: u64) -> ProgressBar {
    if !cfg.progress {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{prefix:>16} {wide_bar} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    b.set_style(style);
    b.set_prefix(format!("{label} {}", w.name()));
    b
}

/// Runs each workload against `addr`, ticking the progress bar and watching the server and
/// Ctrl-C from this thread while the load runs on others.
fn measure(
    cfg: &BenchConfig,
    mut srv: Option<&mut Spawned>,
    addr: SocketAddr,
    label: String,
) -> Result<Run, Error> {
    let mut run = Run {
        label: label.clone(),
        server: "target".into(),
        model: None,
        log: "off".into(),
        addr: addr.to_string(),
        rr: None,
        crr: None,
        bulk: None,
        hol: None,
        logged_events: None,
        logged_bytes: None,
    };
    let shown = label.as_str();
    for w in cfg.workloads.list() {
        let ctx = Ctx::new(addr);
        let timed = cfg.warmup() + cfg.duration;
        match w {
            Workload::Rr => {
                let p = RrParams {
                    conns: cfg.conns,
                    size: cfg.size,
                    warmup: cfg.warmup(),
                    duration: cfg.duration,
                };
                let b = bar(cfg, shown, w, timed.as_millis() as u64);
                run.rr = Some(drive(&ctx, &b, srv.as_deref_mut(), "tx", || {
                    load::rr(&ctx, p)
                })?);
            }
            Workload::Crr => {
                let p = CrrParams {
                    workers: cfg.conns,
                    size: cfg.size,
                    warmup: cfg.warmup(),
                    duration: cfg.duration,
                };
                let b = bar(cfg, shown, w, timed.as_millis() as u64);
                run.crr = Some(drive(&ctx, &b, srv.as_deref_mut(), "conns", || {
                    load::crr(&ctx, p)
                })?);
            }
            Workload::Bulk => {
                let p = BulkParams {
                    conns: cfg.conns,
                    bytes: cfg.mib << 20,
                    limit: BULK_LIMIT + BULK_PER_MIB * (cfg.mib as u32) * (cfg.conns as u32),
                };
                let b = bar(cfg, shown, w, (cfg.mib << 20) * cfg.conns as u64);
                run.bulk = Some(drive(&ctx, &b, srv.as_deref_mut(), "", || {
                    load::bulk(&ctx, p)
                })?);
            }
            Workload::Hol => {
                let p = HolParams {
                    silent: cfg.silent,
                    others: cfg.conns,
                    size: cfg.size,
                };
                let b = bar(cfg, shown, w, cfg.silent.as_millis() as u64);
                run.hol = Some(drive(&ctx, &b, srv.as_deref_mut(), "answered", || {
                    load::hol(&ctx, p)
                })?);
            }
        }
    }
    Ok(run)
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
            "interrupted (Ctrl-C): the load and the server under test were stopped".into(),
        ));
    }
    if let Some(e) = died {
        return Err(e);
    }
    out.map_err(|_| Error::Other("a load worker panicked".into()))
}
