//! What every example shares: where the events go, the examples' own words, and two looks at
//! the kernel: TCP_INFO on one of our sockets (a logged `getsockopt` call, like every other
//! call an example makes on a socket), and sock_diag on the kernel's socket table.
//!
//! Events go to stdout: aligned human lines, or JSON lines when `SOCKLAB_JSON=1` (then stdout
//! carries only events and the examples' own sentences go to stderr, so that
//! tests/examples.rs can parse what the kernel reported).

// Each example uses only some of these helpers.
#![allow(dead_code)]

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsFd, OwnedFd};

use socklab::course::notes;
use socklab::event::record::{self, Options, Sink};
use socklab::event::{AcceptQueue, Body, Event, StateChange};
use socklab::observe::sock_diag;
use socklab::render::live::{human, json::JsonLines};
use socklab::sys::{self, Domain, Flags, Type};
use socklab::{Role, TcpState};

/// The error type of the examples' `main`: any failed call ends the example with its message.
pub type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// True when `SOCKLAB_JSON=1`.
pub fn json() -> bool {
    std::env::var("SOCKLAB_JSON").is_ok_and(|v| v == "1")
}

/// The example's own sentence `example.KEY` from the catalogue, in the language of the run
/// (SOCKLAB_LANG, else LC_ALL/LC_MESSAGES/LANG: the examples take no flags).
pub fn t(key: &str, args: &[(&str, String)]) -> String {
    // The first call chooses the language for the process (a later set_lang cannot).
    notes::set_lang(notes::lang_from_env());
    notes::text(&format!("example.{key}"), args)
}

/// Picks the language, installs the sink (from here on every `socklab::sys` call prints its
/// event) and prints the example's title.
pub fn start(title: &str) {
    notes::set_lang(notes::lang_from_env());
    if json() {
        record::install(
            Box::new(JsonLines::new(std::io::stdout(), true)),
            Options::default(),
        );
    } else {
        record::install(Box::new(Lines { t0: None }), Options::default());
    }
    say(title);
    say("");
}

/// Flushes the events and stops logging.
pub fn finish() {
    record::uninstall();
}

/// Prints one of the example's own sentences between the events (to stderr in JSON mode).
pub fn say(text: &str) {
    if json() {
        eprintln!("{text}");
    } else {
        record::flush();
        println!("{text}");
    }
}

/// From now on, this thread's events go to `role`'s lane.
pub fn act_as(role: Role) {
    record::set_thread_role(Some(role));
}

/// 127.0.0.1, port 0: loopback only, and the kernel picks a free port.
pub fn loopback_any_port() -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
}

/// The connection steps 6 and 7 start from (steps 3 to 5 build it call by call).
pub struct Connected {
    /// The server's listening socket.
    pub listener: OwnedFd,
    /// The client's socket, connected to `server`.
    pub client: OwnedFd,
    /// The server's socket for this connection, from accept4().
    pub conn: OwnedFd,
    /// The listener's address.
    pub server: SocketAddr,
}

/// A listener on a loopback port, a client connected to it and the accepted socket, each
/// call logged in its side's lane. Ends acting as the server.
pub fn connected() -> Result<Connected> {
    act_as(Role::Server);
    let listener = sys::socket(Domain::Inet, Type::Stream, Flags::SOCK_CLOEXEC)?;
    sys::bind(&listener, loopback_any_port())?;
    sys::listen(&listener, 1)?;
    let server = sys::getsockname(&listener)?;
    act_as(Role::Client);
    let client = sys::socket(Domain::Inet, Type::Stream, Flags::SOCK_CLOEXEC)?;
    sys::connect(&client, server)?;
    act_as(Role::Server);
    let (conn, _) = sys::accept4(&listener, Flags::SOCK_CLOEXEC)?;
    Ok(Connected {
        listener,
        client,
        conn,
        server,
    })
}

/// What one TCP_INFO read returned: the socket's state and, on a listener, its accept queue.
pub struct Look {
    pub state: TcpState,
    pub queue: Option<AcceptQueue>,
}

/// Asks the kernel about `fd` with `getsockopt(fd, SOL_TCP, TCP_INFO, ...)`, through the logged
/// wrapper: the call is an event like any other, and its state column is what this very call
/// returned (the lab adds no probe after it).
pub fn look_at(fd: &impl AsFd) -> Result<Look> {
    let raw = sys::tcp_info(fd)?;
    let state = TcpState::from_linux(raw.state)
        .ok_or_else(|| format!("TCP_INFO reported an unknown state {}", raw.state))?;
    // On a listener tcpi_unacked is the accept queue's length and tcpi_sacked its cap.
    let queue = (state == TcpState::Listen).then_some(AcceptQueue {
        len: raw.unacked,
        backlog: raw.sacked,
    });
    Ok(Look { state, queue })
}

/// `fd`'s TCP state, read with one logged `getsockopt(TCP_INFO)` (see [`look_at`]).
pub fn look(fd: &impl AsFd) -> Result<TcpState> {
    Ok(look_at(fd)?.state)
}

/// A listener's accept queue (waiting connections and cap), read with one logged
/// `getsockopt(TCP_INFO)` (see [`look_at`]).
pub fn accept_queue(fd: &impl AsFd) -> Result<AcceptQueue> {
    look_at(fd)?
        .queue
        .ok_or_else(|| "TCP_INFO reports no accept queue: the socket is not listening".into())
}

/// Lists the kernel's TCP sockets of the connection between `client` and `server` (a
/// sock_diag dump, as `ss -tan` does) and shows each as a `state` event (source `sock_diag`)
/// in its side's lane. Unlike TCP_INFO this also sees sockets no descriptor holds, such as
/// TIME_WAIT. Returns each side's state.
pub fn kernel_table(client: SocketAddr, server: SocketAddr) -> Result<Vec<(Role, TcpState)>> {
    let mut found = Vec::new();
    for e in sock_diag::tcp_sockets(&[client.port()])? {
        let role = if (e.local, e.remote) == (client, server) {
            Role::Client
        } else if (e.local, e.remote) == (server, client) {
            Role::Server
        } else {
            continue; // another connection that happens to use the same port number
        };
        let mut event = record::event_now(
            record::now_ns(),
            Body::State(StateChange {
                from: None,
                to: e.state,
                local: Some(e.local.to_string()),
                remote: Some(e.remote.to_string()),
                source: "sock_diag".to_string(),
                sock: Some(format!("inode {}", e.inode)),
            }),
        );
        event.role = Some(role);
        event.lane = role.lane();
        record::emit(event);
        found.push((role, e.state));
    }
    Ok(found)
}

/// socklab's human lines, except that a snapshot (a state event with no `from`) reads
/// `[kernel] STATE` rather than `? -> STATE`: a look is not a transition.
struct Lines {
    t0: Option<u64>,
}

impl Sink for Lines {
    fn record(&mut self, event: &Event) {
        let t0 = *self.t0.get_or_insert(event.t);
        let line = match &event.body {
            Body::State(st @ StateChange { from: None, .. }) => {
                let ms = event.t.saturating_sub(t0) as f64 / 1e6;
                let lane = format!("{:?}", event.lane).to_lowercase();
                let ends = match (&st.local, &st.remote) {
                    (Some(l), Some(r)) => format!("  {l} <-> {r}"),
                    (Some(l), None) => format!("  {l}"),
                    (None, Some(r)) => format!("  ? <-> {r}"),
                    (None, None) => String::new(),
                };
                format!(
                    "{ms:>10.3}ms  {lane:<6}  [kernel] {}{ends}  ({})",
                    st.to, st.source
                )
            }
            _ => human::format_event(event, t0),
        };
        // A closed stdout (`| head`) is not worth a panic in an example.
        let _ = writeln!(std::io::stdout(), "{line}");
    }
}
