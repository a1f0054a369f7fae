//! The command line: parse, set up the recorder, call the library, turn errors into one line.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::course::notes;
use crate::error::Error;
use crate::event::Role;
use crate::event::record::{self, Options};
use crate::observe::session::ObserveOptions;
use crate::programs::client::{self, ClientConfig};
use crate::programs::demo::{self, DemoConfig, View};
use crate::programs::output;
use crate::programs::servers::{self, DEFAULT_MAX_CONNS, DEFAULT_PORT, Mode, Model, ServerConfig};
use crate::render::live::human::HumanLines;
use crate::render::live::json::JsonLines;

/// socklab: see what the operating system does for network IPC, one system call at a time.
#[derive(Debug, Parser)]
#[command(name = "socklab", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Global {
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
    Server(ServerArgs),
    /// Run the seed's client: connect, send one message, print the reply.
    Client(ClientArgs),
    /// Run a server and a client on loopback and show the whole exchange on one timeline.
    Demo(DemoArgs),
    /// Set up two computers (network namespaces joined by a veth pair, 198.18.0.0/15; with
    /// --nat a router between them) that stay until `socklab hosts down`. Needs root.
    Hosts(HostsArgs),
    /// Print live TCP state changes of every process (the kernel's tracepoint; needs root,
    /// else polls sock_diag).
    Watch(WatchArgs),
    /// Run the demo (or an example) under strace -f: each lab event beside strace's line.
    Trace(TraceArgs),
    /// One sock_diag snapshot of TCP sockets (like `ss -tan`), with what each state means.
    Ss(SsArgs),
    /// Run a scenario: one socket behaviour reproduced on the real kernel, explained and
    /// checked (exit 1 when the kernel did otherwise).
    Scenario(ScenarioArgs),
    /// A short reference: a system call, TCP state, errno or concept, and the command that
    /// shows it live.
    Explain(ExplainArgs),
    /// Load on loopback: RR, CRR, bulk and head-of-line against a server model, any echo
    /// server (--target), or every model beside the C baseline and strace (--compare); a
    /// table at the end, or with --json one JSON document.
    Bench(BenchArgs),
    /// Walk the course in order (what a server is, IP and port, the socket calls, the
    /// handshake, the backlog, accept, server models, TCP vs UDP), running each part live.
    Tour(TourArgs),
}

#[derive(Debug, Args)]
struct ExplainArgs {
    /// What to explain: accept4, SYN_RECV, ECONNREFUSED, backlog, time-wait, ... (any case;
    /// - and _ are alike).
    #[arg(required_unless_present = "list")]
    topic: Option<String>,
    /// List every topic, one line each.
    #[arg(long)]
    list: bool,
}

#[derive(Debug, Args)]
struct TourArgs {
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

/// `socklab bench`: the server under test runs as a child process on 127.0.0.1; the load
/// generator's threads connect to it. With the global --json the report is one JSON document
/// on stdout.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("subject").required(true).args(["model", "target", "compare"])))]
struct BenchArgs {
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
}

#[derive(Debug, Args)]
struct SsArgs {
    /// Only sockets with this port at either end (repeat for more; default: all TCP).
    #[arg(short = 'p', long = "port", value_name = "P")]
    ports: Vec<u16>,
}

#[derive(Debug, Args)]
struct ServerArgs {
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

/// `--step` and `--step-delay MS` (demo, scenario, server, client).
#[derive(Debug, Args)]
struct StepArgs {
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
    fn pace(&self) -> Result<Option<crate::programs::step::Pace>, Error> {
        crate::programs::step::Pace::from_flags(self.step, self.step_delay)
    }
}

/// The step flags of a program the demo may start.
#[derive(Debug, Args)]
struct ProgramStepArgs {
    #[command(flatten)]
    step: StepArgs,
    /// Set by `demo --step` for its programs: the demo serves the pauses (a note on stdout,
    /// then one line from stdin).
    #[arg(long, hide = true)]
    step_remote: bool,
}

/// Turns step mode on for a server or client when its flags ask, once its sink is installed.
fn enable_step(a: &ProgramStepArgs, global: &Global, port: u16) -> Result<(), Error> {
    let pace = match (a.step.pace()?, a.step_remote) {
        (Some(pace), _) => pace,
        (None, true) => crate::programs::step::Pace::Enter,
        (None, false) => return Ok(()),
    };
    if global.quiet {
        return Err(Error::Usage(
            "--step pauses before each logged call, and --quiet logs none: drop one of them".into(),
        ));
    }
    crate::programs::step::enable(crate::programs::step::StepConfig {
        pace,
        remote: a.step_remote,
        to_stderr: output::json(),
        port,
    })
}

/// `--idle-timeout`: a number of seconds, decimals allowed.
fn parse_secs(s: &str) -> Result<std::time::Duration, String> {
    s.parse::<f64>()
        .ok()
        .and_then(|v| std::time::Duration::try_from_secs_f64(v).ok())
        .ok_or_else(|| format!("'{s}' is not a number of seconds (try 30 or 0.5)"))
}

#[derive(Debug, Args)]
struct ClientArgs {
    /// Host to connect to (an IP address or a name such as localhost).
    host: String,
    /// TCP port.
    #[arg(short = 'p', long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// Message to send (default: read one line from stdin, like the seed).
    #[arg(short = 'm', long)]
    message: Option<String>,
    #[command(flatten)]
    stepping: ProgramStepArgs,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Server port on 127.0.0.1 (0: let the kernel pick one).
    #[arg(short = 'p', long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// The client's message.
    #[arg(short = 'm', long, default_value = "hello from socklab")]
    message: String,
    #[command(flatten)]
    show: ShowArgs,
    /// Run in a private user and network namespace with its own loopback, where an ordinary
    /// user may capture packets.
    #[arg(long)]
    private_net: bool,
    /// Slow-motion wire: hold every packet of the exchange in the kernel (in a private network
    /// namespace) and release it on Enter (hold: d drops it, q releases the rest) or after MS
    /// milliseconds (delay=MS). Needs root, or a user namespace the kernel allows.
    #[arg(long, value_name = "hold|delay=MS", value_parser = clap::value_parser!(crate::net::wire::Pace), conflicts_with_all = ["step", "step_delay"])]
    wire: Option<crate::net::wire::Pace>,
    /// Run the server and the client on two computers of their own: network namespaces with
    /// addresses 198.18.0.2 and 198.18.0.1, removed after the run (needs root).
    #[arg(long, conflicts_with_all = ["private_net", "wire"])]
    hosts: bool,
    /// With --hosts: a NAT router between them rewrites the client's source address and port.
    #[arg(long, requires = "hosts")]
    nat: bool,
    #[command(flatten)]
    stepping: StepArgs,
}

#[derive(Debug, Args)]
struct HostsArgs {
    #[command(subcommand)]
    action: Option<HostsAction>,
    /// Put a router between client and server that rewrites the client's source address and
    /// port (NAT, nftables masquerade).
    #[arg(long)]
    nat: bool,
}

#[derive(Debug, Subcommand)]
enum HostsAction {
    /// Remove the lab (and any namespace a killed socklab left behind).
    Down,
}

/// Observer and output flags shared by `demo` and `scenario`.
#[derive(Debug, Args)]
struct ShowArgs {
    /// Watch the kernel's TCP state machine: the tracepoint as root, else sock_diag polling
    /// (on by default).
    #[arg(long, overrides_with = "no_kernel")]
    kernel: bool,
    /// Do not watch kernel state changes.
    #[arg(long)]
    no_kernel: bool,
    /// Capture the packets on loopback: needs root or CAP_NET_RAW, or --private-net (on by
    /// default).
    #[arg(long, overrides_with = "no_packets")]
    packets: bool,
    /// Do not capture packets.
    #[arg(long)]
    no_packets: bool,
    /// Also write the captured packets to FILE (pcap; tcpdump -r and tshark -r read it).
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Draw the timeline as a sequence diagram: client | wire | server.
    #[arg(long)]
    diagram: bool,
    /// Write the sequence diagram as a standalone SVG picture.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Write the sequence diagram and the event table as a standalone HTML page.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

impl ShowArgs {
    fn observe(&self) -> ObserveOptions {
        ObserveOptions {
            kernel: !self.no_kernel,
            packets: !self.no_packets,
            pcap: self.pcap.clone(),
        }
    }

    fn view(&self, json: bool, private_net: bool) -> View {
        View {
            json,
            diagram: self.diagram,
            svg: self.svg.clone(),
            html: self.html.clone(),
            private_net,
        }
    }
}

#[derive(Debug, Args)]
struct ScenarioArgs {
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

#[derive(Debug, Args)]
struct TraceArgs {
    /// Trace this example (built next to this executable, e.g. 05_accept), not the demo.
    #[arg(long, value_name = "NAME")]
    example: Option<String>,
    /// Keep strace's full log in FILE (default: a file in the temp directory).
    #[arg(long, value_name = "FILE")]
    log: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
struct WatchArgs {
    /// Only sockets with this port at either end (repeat for more; default: all TCP).
    #[arg(short = 'p', long = "port", value_name = "P")]
    ports: Vec<u16>,
    /// Stop after SECS seconds (default: until Ctrl-C).
    #[arg(long, value_name = "SECS")]
    duration: Option<u64>,
}

/// Resolves HOST: an IP address as is, otherwise the first address the resolver gives.
pub fn resolve(host: &str, port: u16) -> Result<SocketAddr, Error> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    let bad = || {
        Error::Usage(notes::text(
            "cli.invalid_host",
            &[("host", host.to_string())],
        ))
    };
    (host, port)
        .to_socket_addrs()
        .map_err(|_| bad())?
        .next()
        .ok_or_else(bad)
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

fn install_sink(global: &Global, role: Option<Role>) {
    let _ = install_sink_to(global, role, None);
}

/// Installs the event sink: `log_file` (JSON lines, buffered), else stdout.
fn install_sink_to(
    global: &Global,
    role: Option<Role>,
    log_file: Option<&std::path::Path>,
) -> Result<(), Error> {
    record::set_process_role(role);
    output::set_json(global.json && log_file.is_none());
    if global.quiet {
        return Ok(());
    }
    let opts = Options {
        probe: !global.no_probe,
        probe_all: global.probe_all,
        narrate: true,
    };
    if let Some(path) = log_file {
        let file = std::fs::File::create(path).map_err(|e| {
            Error::Other(format!("cannot create --log-file {}: {e}", path.display()))
        })?;
        let out = io::BufWriter::with_capacity(64 * 1024, file);
        record::install(Box::new(JsonLines::new(out, false)), opts);
    } else if global.json {
        record::install(Box::new(JsonLines::new(io::stdout(), true)), opts);
    } else {
        record::install(Box::new(HumanLines::new(io::stdout(), true)), opts);
    }
    Ok(())
}

fn run_scenario(a: &ScenarioArgs, json: bool) -> Result<(), Error> {
    use crate::course::scenarios;
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
        crate::programs::step::enable(crate::programs::step::StepConfig {
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

fn run_explain(a: &ExplainArgs) -> Result<(), Error> {
    let text = match (&a.topic, a.list) {
        (Some(topic), false) => crate::course::explain::explain(topic).map_err(|close| {
            let key = if close.is_empty() {
                "cli.no_topic"
            } else {
                "cli.no_topic_close"
            };
            Error::Usage(notes::text(
                key,
                &[("topic", topic.clone()), ("close", close.join(", "))],
            ))
        })?,
        (_, true) | (None, false) => crate::course::explain::list(),
    };
    crate::render::write_or_exit(&mut io::stdout().lock(), text.as_bytes(), true);
    Ok(())
}

fn run_tour(a: &TourArgs, lang: String) -> Result<(), Error> {
    let exe = crate::programs::self_exe()
        .map_err(|e| Error::Other(format!("cannot find the socklab executable: {e}")))?;
    let stops = crate::course::tour::STOPS.len();
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
    crate::course::tour::run(&crate::course::tour::TourConfig {
        exe,
        lang,
        step_delay: a.step_delay.map(std::time::Duration::from_millis),
        from,
        to,
        server_models,
    })
}

fn run_bench(a: &BenchArgs, global: &Global) -> Result<(), Error> {
    let json = global.json;
    use crate::bench::{self, BenchConfig, Pin, Subject};
    use std::io::IsTerminal;
    let subject = match (&a.model, &a.target, a.compare) {
        (Some(m), _, _) => Subject::Model(*m),
        (_, Some(t), _) => {
            let (host, port) = t.rsplit_once(':').ok_or_else(|| {
                Error::Usage(format!(
                    "--target '{t}' needs HOST:PORT (e.g. 127.0.0.1:7000)"
                ))
            })?;
            let port = port
                .parse()
                .map_err(|_| Error::Usage(format!("--target '{t}': '{port}' is not a port")))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            Subject::Target(resolve(host, port)?)
        }
        _ => Subject::Compare,
    };
    if a.target.is_some() && a.log != bench::LogModes::Off {
        return Err(Error::Usage(format!(
            "--log {} is for socklab's own servers (--model, --compare), not --target",
            if a.log == bench::LogModes::Both {
                "both"
            } else {
                "json"
            }
        )));
    }
    let exe = crate::programs::self_exe()
        .map_err(|e| Error::Other(format!("cannot find the socklab executable: {e}")))?;
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
        (true, _) => bench::Probe::Off,
        (_, true) => bench::Probe::All,
        _ => bench::Probe::Sampled,
    };
    cfg.pin = a.pin.unwrap_or(if compare { Pin::Same } else { Pin::Off });
    cfg.c_baseline = a.c_baseline;
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
    match rep.runs.iter().find_map(|r| {
        let b = r.bulk.as_ref()?;
        (!b.verified).then(|| (r.label.clone(), b.mismatch.clone().unwrap_or_default()))
    }) {
        Some((label, why)) => Err(Error::Other(format!(
            "bulk: {label} did not echo every byte as sent: {why}"
        ))),
        None => Ok(()),
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), Error> {
    let (choice, unknown) = pick_lang(cli.global.lang.as_deref());
    let lang = notes::set_lang(choice);
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
    match cli.command {
        Command::Server(a) => {
            let addr = resolve(&a.host, a.port)?;
            install_sink_to(&cli.global, Some(Role::Server), a.log_file.as_deref())?;
            enable_step(&a.stepping, &cli.global, addr.port())?;
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
        Command::Client(a) => {
            let addr = resolve(&a.host, a.port)?;
            install_sink(&cli.global, Some(Role::Client));
            enable_step(&a.stepping, &cli.global, addr.port())?;
            let res = client::run(&ClientConfig {
                addr,
                message: a.message,
            });
            record::flush();
            res.map(|_| ())
        }
        Command::Demo(a) => {
            let exe = crate::programs::self_exe()
                .map_err(|e| Error::Other(format!("cannot find the socklab executable: {e}")))?;
            if a.wire.is_some() {
                crate::net::wire::enter_namespace()?;
            } else if a.private_net {
                crate::net::netns::enter_private_net()?;
            }
            let private_net = a.private_net || a.wire.is_some();
            let cfg = DemoConfig {
                port: a.port,
                message: a.message,
                lang,
                probe: !cli.global.no_probe,
                observe: a.show.observe(),
                wire: a.wire,
                hosts: a.hosts.then_some(crate::net::hosts::Layout { nat: a.nat }),
                step: a.stepping.pace()?,
            };
            let run = demo::run(&exe, &cfg)?;
            demo::present(&run, &a.show.view(cli.global.json, private_net))
        }
        Command::Scenario(a) => run_scenario(&a, cli.global.json),
        Command::Explain(a) => run_explain(&a),
        Command::Tour(a) => run_tour(&a, lang),
        Command::Bench(a) => run_bench(&a, &cli.global),
        Command::Ss(a) => {
            let entries = crate::observe::sock_diag::tcp_sockets(&a.ports)
                .map_err(|e| Error::Other(e.to_string()))?;
            let mut text = String::new();
            if cli.global.json {
                for e in &entries {
                    text.push_str(&serde_json::to_string(e).expect("entries serialize"));
                    text.push('\n');
                }
            } else {
                text = crate::render::views::ss::table(&entries);
            }
            crate::render::write_or_exit(&mut io::stdout().lock(), text.as_bytes(), true);
            Ok(())
        }
        Command::Hosts(a) => match a.action {
            Some(HostsAction::Down) => crate::net::hosts::down_command(),
            None => {
                let exe = crate::programs::self_exe().map_err(|e| {
                    Error::Other(format!("cannot find the socklab executable: {e}"))
                })?;
                crate::net::hosts::up_command(crate::net::hosts::Layout { nat: a.nat }, &exe)
            }
        },
        Command::Watch(a) => {
            let cfg = crate::observe::watch::WatchConfig {
                ports: a.ports,
                duration: a.duration.map(std::time::Duration::from_secs),
                json: cli.global.json,
            };
            crate::observe::watch::run(&cfg, &mut io::stdout(), &mut io::stderr())
                .map(|_| ())
                .map_err(|e| Error::Other(format!("watch: {e}")))
        }
        Command::Trace(a) => {
            let exe = crate::programs::self_exe()
                .map_err(|e| Error::Other(format!("cannot find the socklab executable: {e}")))?;
            crate::trace::command(
                &exe,
                a.example.as_deref(),
                a.log.as_deref(),
                !cli.global.no_probe,
            )
        }
    }
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
        Ok(()) => 0,
        Err(e) => {
            record::flush();
            output::end_open_prompt();
            eprintln!("socklab: {e}");
            e.exit_code()
        }
    }
}
