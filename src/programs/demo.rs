//! `socklab demo`: a server and a client as two processes on loopback, one timeline.
//!
//! The demo runs this same executable twice (`socklab --json server ...` and `socklab --json
//! client ...`), reads both event streams and merges them by their CLOCK_MONOTONIC times,
//! which are comparable across processes. With `--hosts` each runs on a computer of its own
//! (a network namespace, see [`crate::net::hosts`]), started with `ip netns exec NAME socklab ...`.
//! With `--step` both run with `--step --step-remote` and stdin a pipe from the demo, which
//! serves their pauses ([`crate::programs::step::Coordinator`]).

use std::io::Write;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use crate::course::notes;
use crate::error::Error;
use crate::event::timeline;
use crate::event::{self, Event, Role};
use crate::net::hosts::{Host, Hosts, Layout};
use crate::observe::session::{ObserveOptions, Observers, Place};
use crate::programs::step::{self, Coordinator, Release};
use crate::render;
use crate::render::present::Shown;
pub use crate::render::present::View;
use crate::sys::ffi;

/// How long the whole exchange may take before the demo gives up and stops its children.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// What the demo runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoConfig {
    /// Server port (0: let the kernel choose).
    pub port: u16,
    /// The client's message.
    pub message: String,
    /// Language of the notes.
    pub lang: String,
    /// Whether the children probe TCP_INFO after each call.
    pub probe: bool,
    /// Kernel and packet observers to run beside the programs.
    pub observe: ObserveOptions,
    /// The slow-motion wire (`--wire`): hold every packet of the port at this pace. The
    /// process must be in a private network namespace already ([`crate::net::wire::enter_namespace`]).
    pub wire: Option<crate::net::wire::Pace>,
    /// Run the server and the client on two computers of their own (network namespaces,
    /// needs root) instead of both on loopback.
    pub hosts: Option<Layout>,
    /// Step mode (`--step`): both programs pause before each call, at this pace.
    pub step: Option<step::Pace>,
}

/// The computers of a `--hosts` run (removed by the time the run is shown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsRun {
    /// Their layout (and so their addresses).
    pub layout: Layout,
    /// The client's network namespace.
    pub client_ns: String,
    /// The server's network namespace.
    pub server_ns: String,
}

/// What one demo run saw.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoRun {
    /// Every event, merged and ordered, kernel events on their lanes.
    pub events: Vec<Event>,
    /// The server's port.
    pub port: u16,
    /// One line per observer tier that could not run, and why.
    pub notices: Vec<String>,
    /// With `--hosts`: the computers it ran on.
    pub hosts: Option<HostsRun>,
}

impl DemoRun {
    /// The server's `ip:port`.
    pub fn server_addr(&self) -> String {
        match &self.hosts {
            Some(h) => format!("{}:{}", h.layout.server_ip(), self.port),
            None => format!("127.0.0.1:{}", self.port),
        }
    }
}

/// Where the two programs run: the server's address, and for `--hosts` how to enter each
/// computer (`ip netns exec NAME`).
struct Spot<'a> {
    server_ip: String,
    /// `ip` and the server's namespace.
    server_ns: Option<(&'a Path, String)>,
    /// `ip` and the client's namespace.
    client_ns: Option<(&'a Path, String)>,
}

impl Spot<'_> {
    fn enter<'b>(ns: &'b Option<(&'b Path, String)>) -> Option<(&'b Path, &'b str)> {
        ns.as_ref().map(|(ip, name)| (*ip, name.as_str()))
    }
}

/// A child process that is killed and reaped if the demo ends early.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Starts `exe` with `args`; inside network namespace `netns` (through `ip netns exec`, which
/// execs socklab in place: the child's pid is socklab's) when given.
fn spawn(
    exe: &Path,
    cfg: &DemoConfig,
    args: &[&str],
    netns: Option<(&Path, &str)>,
) -> Result<Guard, Error> {
    let mut cmd = match netns {
        Some((ip, name)) => {
            let mut c = Command::new(ip);
            c.args(["netns", "exec", name]).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.args(["--json", "--lang", &cfg.lang]);
    if !cfg.probe {
        cmd.arg("--no-probe");
    }
    cmd.args(args);
    // Stepping, the demo answers each pause on the child's stdin.
    let stdin = if cfg.step.is_some() {
        cmd.args(["--step", "--step-remote"]);
        Stdio::piped()
    } else {
        Stdio::null()
    };
    cmd.stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn()
        .map(Guard)
        .map_err(|e| Error::Other(format!("cannot start {}: {e}", exe.display())))
}

fn parse(line: &str, who: &str) -> Result<Event, Error> {
    Event::from_json(line).map_err(|e| {
        Error::Other(format!(
            "the {who} printed a line that is not an event ({e}): {line}"
        ))
    })
}

/// What a child's reader thread sends: one event (or why the line was none), or the end of
/// its output.
type Line = (Role, Option<Result<Event, Error>>);

/// Sends each line the child prints as an event, then `None` at the end of its output.
fn forward(out: impl Read + Send + 'static, who: Role, tx: Sender<Line>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let ev = line
                .map_err(|e| Error::Other(format!("reading the {}: {e}", who.name())))
                .and_then(|l| parse(&l, who.name()));
            if tx.send((who, Some(ev))).is_err() {
                return;
            }
        }
        let _ = tx.send((who, None));
    })
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut s);
    }
    // The child's own one-line error, without its "socklab: " prefix.
    let s = s.trim();
    s.strip_prefix("socklab: ").unwrap_or(s).to_string()
}

/// What a demo stopped by Ctrl-C (SIGINT) or SIGTERM returns, once its programs are stopped
/// and its observers removed (the tracefs instance goes with the observers' Drop).
fn interrupted() -> Error {
    Error::Other("interrupted: the demo stopped its programs and observers".into())
}

/// `Err(interrupted())` once SIGINT or SIGTERM arrived.
fn check_interrupt() -> Result<(), Error> {
    if ffi::interrupted() {
        Err(interrupted())
    } else {
        Ok(())
    }
}

/// Waits for `child` until `deadline` or an interrupt; kills it after.
fn wait_until(
    child: &mut Child,
    deadline: Instant,
    limit: Duration,
    who: &str,
) -> Result<(), Error> {
    loop {
        if ffi::interrupted() {
            let _ = child.kill();
            return Err(interrupted());
        }
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(_)) => {
                return Err(Error::Other(format!(
                    "the {who} failed: {}",
                    stderr_of(child)
                )));
            }
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                return Err(Error::Other(format!(
                    "the {who} did not finish within {}s and was stopped",
                    limit.as_secs()
                )));
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(Error::Other(format!("waiting for the {who}: {e}"))),
        }
    }
}

/// Runs one exchange with `exe` as both programs, with the observers `cfg` asks for; returns
/// the merged timeline.
pub fn run(exe: &Path, cfg: &DemoConfig) -> Result<DemoRun, Error> {
    // Without a handler, Ctrl-C would kill the demo where it stands: no Drop would run, and
    // the tracefs instance and the children would outlive it. With it, the waits below notice
    // the interrupt and return an error, and the Guards and the observers clean up.
    ffi::catch_interrupts().map_err(|e| Error::sys("sigaction", "SIGINT", e))?;
    if cfg.hosts.is_some() && cfg.wire.is_some() {
        return Err(Error::Usage(
            "--hosts and --wire cannot be combined (the wire has a namespace of its own)".into(),
        ));
    }
    if cfg.step.is_some() && cfg.wire.is_some() {
        return Err(Error::Usage(
            "--step and --wire cannot be combined: both stop the exchange and wait for Enter \
             (--step before each call, --wire before each packet); use one at a time"
                .into(),
        ));
    }
    // Declared before the children and the observers, so dropped after them: the namespaces
    // go last, once nothing runs or looks inside them.
    let hosts = match cfg.hosts {
        Some(layout) => Some(Hosts::for_run(layout, &mut |_| {})?),
        None => None,
    };
    check_interrupt()?;
    let observing = cfg.observe.kernel || cfg.observe.packets || cfg.observe.pcap.is_some();
    // Observers (and the wire, and the pauses' snapshots) filter on the port, so they need it
    // before the server starts.
    let claim = (cfg.port == 0 && (observing || cfg.wire.is_some() || cfg.step.is_some()))
        .then(|| crate::net::ports::free_server_port(false).map_err(Error::Other))
        .transpose()?;
    let port = claim
        .as_ref()
        .map_or(cfg.port, crate::net::ports::Claim::port);
    let wire = match &cfg.wire {
        Some(pace) => Some(crate::net::wire::Wire::start(port, pace.clone())?),
        None => None,
    };
    let place = hosts.as_ref().map_or_else(Place::default, Hosts::place);
    let observers = Observers::start_in(&[port], &cfg.observe, &place);
    let notices = observers
        .notices()
        .iter()
        .filter_map(|e| e.note().map(|n| n.text.clone()))
        .collect();
    check_interrupt()?;
    let spot = match &hosts {
        Some(h) => Spot {
            server_ip: h.layout().server_ip().to_string(),
            server_ns: Some((h.ip_command(), h.name(Host::Server))),
            client_ns: Some((h.ip_command(), h.name(Host::Client))),
        },
        None => Spot {
            server_ip: "127.0.0.1".into(),
            server_ns: None,
            client_ns: None,
        },
    };
    let steps = cfg
        .step
        .clone()
        .map(|pace| Coordinator::new(pace, port, place.netns.clone()));
    let (programs, port) = exchange(exe, cfg, port, &spot, steps)?;
    if let Some(wire) = &wire {
        // The programs are gone, but their last FINs and ACKs may still be held.
        wire.settle();
    }
    // Let the last ACK of the close sequence land before the observers stop.
    thread::sleep(Duration::from_millis(20));
    let mut observed = observers.finish();
    check_interrupt()?;
    let wired = match wire {
        // Its packets, stamped when let go and with how long they were held, replace the
        // capture's copies (the pcap file keeps those).
        Some(wire) => {
            observed.retain(|e| !matches!(e.body, event::Body::Packet(_)));
            wire.finish()
        }
        None => Vec::new(),
    };
    let mut events = event::merge([programs, observed, wired]);
    timeline::assign_lanes(&mut events, port);
    timeline::sort(&mut events);
    timeline::dedup_snapshots(&mut events);
    timeline::add_insight_notes(&mut events);
    timeline::add_rewrite_note(&mut events);
    timeline::mark_unfinished(&mut events);
    Ok(DemoRun {
        events,
        port,
        notices,
        hosts: hosts.as_ref().map(|h| HostsRun {
            layout: h.layout(),
            client_ns: h.name(Host::Client),
            server_ns: h.name(Host::Server),
        }),
    })
}

/// What the demo's loop got from its children.
enum Got {
    /// One event of this child (boxed: an event is large, the other answers small).
    Event(Role, Box<Event>),
    /// This child's output ended.
    End(Role),
    /// Nothing yet.
    Idle,
}

/// Lets a paused child go on: a line on its stdin (`q` to every child: no more pauses).
fn release(stdins: &mut [(Role, ChildStdin)], r: Release) {
    for (who, stdin) in stdins.iter_mut() {
        let line: &[u8] = match r {
            Release::Go(to) if to == *who => b"\n",
            Release::Go(_) => continue,
            Release::Quit => b"q\n",
        };
        // A child that is gone cannot be released; its end is seen on its stdout.
        let _ = stdin.write_all(line).and_then(|()| stdin.flush());
    }
}

/// Serves the pauses (without blocking), then waits briefly for the next line of either child.
fn next(
    rx: &mpsc::Receiver<Line>,
    steps: &mut Option<Coordinator>,
    stdins: &mut [(Role, ChildStdin)],
) -> Result<Got, Error> {
    if let Some(r) = steps.as_mut().and_then(Coordinator::tick) {
        release(stdins, r);
    }
    let wait = match steps {
        Some(s) if s.busy() => Duration::from_millis(5),
        _ => Duration::from_millis(50),
    };
    match rx.recv_timeout(wait) {
        Ok((who, Some(ev))) => {
            let ev = ev?;
            if let Some(s) = steps.as_mut() {
                s.offer(&ev);
            }
            Ok(Got::Event(who, Box::new(ev)))
        }
        Ok((who, None)) => Ok(Got::End(who)),
        Err(RecvTimeoutError::Timeout) => Ok(Got::Idle),
        Err(RecvTimeoutError::Disconnected) => Err(Error::Other(
            "the demo lost its programs' output (a reader thread ended)".into(),
        )),
    }
}

/// The two programs' events, merged, and the port the server really got.
fn exchange(
    exe: &Path,
    cfg: &DemoConfig,
    port: u16,
    spot: &Spot<'_>,
    steps: Option<Coordinator>,
) -> Result<(Vec<Event>, u16), Error> {
    let res = run_programs(exe, cfg, port, spot, steps);
    // An interrupted child may have failed or left half a line: say why the run stopped.
    check_interrupt()?;
    res
}

fn run_programs(
    exe: &Path,
    cfg: &DemoConfig,
    port: u16,
    spot: &Spot<'_>,
    mut steps: Option<Coordinator>,
) -> Result<(Vec<Event>, u16), Error> {
    // A held wire slows the exchange down on purpose.
    let limit = cfg
        .wire
        .as_ref()
        .map_or(DEADLINE, crate::net::wire::Pace::deadline);
    let start = Instant::now();
    // Time held at pauses does not count: the limit is for the programs' own time. (Each pause
    // is bounded by step::MAX_PAUSE, and the programs make a bounded number of calls.)
    let deadline = |steps: &Option<Coordinator>| {
        start + limit + steps.as_ref().map_or(Duration::ZERO, Coordinator::paused)
    };
    let port = port.to_string();
    let host = spot.server_ip.as_str();
    let mut server = spawn(
        exe,
        cfg,
        &["server", host, "-p", &port, "--count", "1", "--reuseaddr"],
        Spot::enter(&spot.server_ns),
    )?;
    let mut stdins = Vec::new();
    if let Some(stdin) = server.0.stdin.take() {
        stdins.push((Role::Server, stdin));
    }
    // One reader thread per child, both into one channel, so that every wait is bounded and
    // interruptible, and pauses are served in the order they came.
    let (tx, rx) = mpsc::channel::<Line>();
    let out = server.0.stdout.take().expect("stdout is piped");
    let server_reader = forward(out, Role::Server, tx.clone());
    let mut server_events = Vec::new();
    // Wait for the server's getsockname (after listen) before starting the client.
    let addr = loop {
        check_interrupt()?;
        if Instant::now() >= deadline(&steps) {
            return Err(Error::Other(format!(
                "the demo's server did not start listening within {}s",
                limit.as_secs()
            )));
        }
        let ev = match next(&rx, &mut steps, &mut stdins)? {
            Got::Event(_, ev) => *ev,
            Got::Idle => continue,
            Got::End(_) => {
                let _ = server.0.wait();
                check_interrupt()?;
                return Err(Error::Other(format!(
                    "the demo's server could not start: {}",
                    stderr_of(&mut server.0)
                )));
            }
        };
        let addr = ev
            .syscall()
            .filter(|s| s.name == "getsockname" && !s.failed())
            .and_then(|s| s.args.get("addr"))
            .and_then(|a| a.as_str())
            .map(str::to_string);
        server_events.push(ev);
        if let Some(addr) = addr {
            break addr;
        }
    };
    let real_port = addr.rsplit(':').next().unwrap_or(&port).to_string();
    let mut client = spawn(
        exe,
        cfg,
        &["client", host, "-p", &real_port, "-m", &cfg.message],
        Spot::enter(&spot.client_ns),
    )?;
    if let Some(mut stdin) = client.0.stdin.take() {
        if steps.as_ref().is_some_and(Coordinator::stopped) {
            let _ = stdin.write_all(b"q\n");
        }
        stdins.push((Role::Client, stdin));
    }
    let out = client.0.stdout.take().expect("stdout is piped");
    let client_reader = forward(out, Role::Client, tx);
    let mut client_events = Vec::new();
    let (mut server_open, mut client_open) = (true, true);
    while server_open || client_open {
        check_interrupt()?;
        if Instant::now() >= deadline(&steps) {
            let who = if client_open { "client" } else { "server" };
            return Err(Error::Other(format!(
                "the {who} did not finish within {}s and was stopped",
                limit.as_secs()
            )));
        }
        match next(&rx, &mut steps, &mut stdins)? {
            Got::Event(Role::Server, ev) => server_events.push(*ev),
            Got::Event(Role::Client, ev) => client_events.push(*ev),
            // A program whose output ended is exiting: its status says how it went.
            Got::End(Role::Server) => {
                server_open = false;
                wait_until(&mut server.0, deadline(&steps), limit, "server")?;
            }
            Got::End(Role::Client) => {
                client_open = false;
                wait_until(&mut client.0, deadline(&steps), limit, "client")?;
            }
            Got::Idle => {}
        }
    }
    server_reader
        .join()
        .map_err(|_| Error::Other("server reader panicked".into()))?;
    client_reader
        .join()
        .map_err(|_| Error::Other("client reader panicked".into()))?;
    let real_port = real_port.parse().unwrap_or(0);
    Ok((event::merge([server_events, client_events]), real_port))
}

/// Prints the run as `view` asks and writes the picture files.
pub fn present(run: &DemoRun, view: &View) -> Result<(), Error> {
    let mut header = Vec::new();
    if view.private_net {
        header.push(notes::text("observe.private_net", &[]));
    }
    if let Some(h) = &run.hosts {
        header.push(hosts_header(h));
    }
    let title = match &run.hosts {
        Some(_) => notes::text("hosts.demo_title", &[]),
        None => notes::text("demo.title", &[]),
    };
    let shown = Shown {
        title,
        header,
        events: &run.events,
        server_addr: Some(run.server_addr()),
        notices: &run.notices,
        footer: Vec::new(),
        legend: None,
        labels: Default::default(),
    };
    render::present::present(&shown, view)
}

/// The line under the title of a `--hosts` run: which computer has which address.
fn hosts_header(h: &HostsRun) -> String {
    let l = h.layout;
    let mut args = vec![
        ("client", l.client_ip().to_string()),
        ("server", l.server_ip().to_string()),
        ("client_ns", h.client_ns.clone()),
        ("server_ns", h.server_ns.clone()),
    ];
    match l.router_ips() {
        Some((lan, wan)) => {
            args.push(("router_lan", lan.to_string()));
            args.push(("router_wan", wan.to_string()));
            notes::text("hosts.demo_nat", &args)
        }
        None => notes::text("hosts.demo", &args),
    }
}
