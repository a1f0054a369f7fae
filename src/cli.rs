//! The command line: parse, set up the recorder, call the library, turn errors into one line.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::client::{self, ClientConfig};
use crate::demo::{self, DemoConfig, View};
use crate::error::Error;
use crate::event::Role;
use crate::observe::session::ObserveOptions;
use crate::record::{self, Options};
use crate::render::human::HumanLines;
use crate::render::json::JsonLines;
use crate::servers::{
    self, DEFAULT_MAX_CONNS, DEFAULT_PORT, DEFAULT_READ_SIZE, Mode, Model, ServerConfig,
};
use crate::{notes, output};

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
    /// Bytes asked for by each read (the seed's recv(1024); reply mode reads once).
    #[arg(long, default_value_t = DEFAULT_READ_SIZE as u32, value_parser = clap::value_parser!(u32).range(1..=16_777_216))]
    read_size: u32,
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
    #[arg(long, value_name = "hold|delay=MS", value_parser = clap::value_parser!(crate::wire::Pace))]
    wire: Option<crate::wire::Pace>,
    /// Run the server and the client on two computers of their own: network namespaces with
    /// addresses 198.18.0.2 and 198.18.0.1, removed after the run (needs root).
    #[arg(long, conflicts_with_all = ["private_net", "wire"])]
    hosts: bool,
    /// With --hosts: a NAT router between them rewrites the client's source address and port.
    #[arg(long, requires = "hosts")]
    nat: bool,
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
    record::set_process_role(role);
    output::set_json(global.json);
    if global.quiet {
        return;
    }
    let opts = Options {
        probe: !global.no_probe,
        narrate: true,
    };
    if global.json {
        record::install(Box::new(JsonLines::new(io::stdout(), true)), opts);
    } else {
        record::install(Box::new(HumanLines::new(io::stdout(), true)), opts);
    }
}

fn run_scenario(a: &ScenarioArgs, json: bool) -> Result<(), Error> {
    use crate::scenarios;
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
        (Some(topic), false) => crate::explain::explain(topic).map_err(|close| {
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
        (_, true) | (None, false) => crate::explain::list(),
    };
    crate::render::write_or_exit(&mut io::stdout().lock(), text.as_bytes(), true);
    Ok(())
}

fn run_tour(a: &TourArgs, lang: String) -> Result<(), Error> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::Other(format!("cannot find the socklab executable: {e}")))?;
    let stops = crate::tour::STOPS.len();
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
    crate::tour::run(&crate::tour::TourConfig {
        exe,
        lang,
        step_delay: a.step_delay.map(std::time::Duration::from_millis),
        from,
        to,
        server_models,
    })
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
            install_sink(&cli.global, Some(Role::Server));
            let cfg = ServerConfig {
                addr,
                count: a.count,
                read_size: a.read_size as usize,
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
            let res = client::run(&ClientConfig {
                addr,
                message: a.message,
            });
            record::flush();
            res.map(|_| ())
        }
        Command::Demo(a) => {
            let exe = std::env::current_exe()
                .map_err(|e| Error::Other(format!("cannot find the socklab executable: {e}")))?;
            if a.wire.is_some() {
                crate::wire::enter_namespace()?;
            } else if a.private_net {
                crate::netns::enter_private_net()?;
            }
            let private_net = a.private_net || a.wire.is_some();
            let cfg = DemoConfig {
                port: a.port,
                message: a.message,
                lang,
                probe: !cli.global.no_probe,
                observe: a.show.observe(),
                wire: a.wire,
                hosts: a.hosts.then_some(crate::hosts::Layout { nat: a.nat }),
            };
            let run = demo::run(&exe, &cfg)?;
            demo::present(&run, &a.show.view(cli.global.json, private_net))
        }
        Command::Scenario(a) => run_scenario(&a, cli.global.json),
        Command::Explain(a) => run_explain(&a),
        Command::Tour(a) => run_tour(&a, lang),
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
                text = crate::render::ss::table(&entries);
            }
            crate::render::write_or_exit(&mut io::stdout().lock(), text.as_bytes(), true);
            Ok(())
        }
        Command::Hosts(a) => match a.action {
            Some(HostsAction::Down) => crate::hosts::down_command(),
            None => {
                let exe = std::env::current_exe().map_err(|e| {
                    Error::Other(format!("cannot find the socklab executable: {e}"))
                })?;
                crate::hosts::up_command(crate::hosts::Layout { nat: a.nat }, &exe)
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
            let exe = std::env::current_exe()
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
