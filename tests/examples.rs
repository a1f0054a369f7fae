//! Runs each example (examples/01_socket.rs ... 08_udp.rs) with `SOCKLAB_JSON=1` and checks
//! what the KERNEL reported in its events: TCP states read with TCP_INFO (the `tcp_state`
//! fields, of the lab's probes and of the examples' own `getsockopt(TCP_INFO)` calls), the
//! kernel's socket table (`sock_diag` state events), return values, and the addresses
//! getsockname() returned. Never the examples' own text.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use socklab::event::{AcceptQueue, StateChange, Syscall};
use socklab::observe::sysctl;
use socklab::{Event, Role, TcpState};

/// Longest an example may run (04 waits about 1 s for a SYN retransmission).
const TIMEOUT: Duration = Duration::from_secs(20);

/// Where cargo puts the examples: beside this test's own directory (target/debug/deps).
fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binaries live in target/<profile>/deps");
    profile_dir.join("examples").join(name)
}

fn modified(path: &Path) -> Option<SystemTime> {
    path.metadata().and_then(|m| m.modified()).ok()
}

/// The example's binary, built first if missing or older than its sources (`make test` and
/// `cargo test` build the examples anyway; `cargo test --test examples` does not).
fn example_binary(name: &str) -> PathBuf {
    let bin = example_path(name);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let built = modified(&bin);
    let stale = [src.join(format!("{name}.rs")), src.join("common/mod.rs")]
        .iter()
        .any(|s| match (modified(s), built) {
            (Some(s), Some(b)) => s > b,
            (_, None) => true,
            (None, Some(_)) => false,
        });
    if stale {
        let cargo = option_env!("CARGO").unwrap_or("cargo");
        let status = Command::new(cargo)
            .args(["build", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap_or_else(|e| panic!("cannot run cargo build --example {name}: {e}"));
        assert!(status.success(), "cargo build --example {name} failed");
    }
    bin
}

/// Runs the example with JSON events on stdout; returns its events. Panics if it fails or
/// outlives `TIMEOUT` (then it is killed).
fn run(name: &str) -> Vec<Event> {
    let bin = example_binary(name);
    let mut child = Command::new(&bin)
        .env("SOCKLAB_JSON", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let mut out = child.stdout.take().expect("stdout is piped");
    let mut err = child.stderr.take().expect("stderr is piped");
    let out = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        match child.try_wait().expect("try_wait on the example") {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{name} did not finish within {TIMEOUT:?}");
            }
            None => thread::sleep(Duration::from_millis(10)),
        }
    };
    let stdout = out.join().expect("stdout reader");
    let stderr = err.join().expect("stderr reader");
    assert!(status.success(), "{name} failed ({status}): {stderr}");
    let events: Vec<Event> = stdout
        .lines()
        .map(|l| Event::from_json(l).unwrap_or_else(|e| panic!("{name}: not an event ({e}): {l}")))
        .collect();
    // The examples read TCP_INFO through the logged wrapper (a `getsockopt` event), never as an
    // unlogged read shown as a state event.
    let unlogged = looks(&events, "tcp_info");
    assert!(unlogged.is_empty(), "{name}: {unlogged:#?}");
    assert_closes_what_it_opens(name, &events);
    events
}

/// Every socket the example opened (socket, accept4) it closes with a logged, successful
/// close(), not by dropping the descriptor.
fn assert_closes_what_it_opens(name: &str, events: &[Event]) {
    let mut open = std::collections::BTreeSet::new();
    for sc in events.iter().filter_map(Event::syscall) {
        match sc.name.as_ref() {
            "socket" | "accept4" if sc.ret >= 0 => {
                assert!(open.insert(sc.ret), "{name}: fd {} opened twice", sc.ret);
            }
            "close" => {
                assert_eq!(sc.ret, 0, "{name}: {sc:?}");
                let fd = sc.fd.map(i64::from);
                assert!(
                    fd.is_some_and(|fd| open.remove(&fd)),
                    "{name}: closed a socket it did not open: {sc:?}"
                );
            }
            _ => {}
        }
    }
    assert!(open.is_empty(), "{name}: sockets never closed: {open:?}");
}

fn calls<'a>(events: &'a [Event], name: &str) -> Vec<&'a Syscall> {
    events
        .iter()
        .filter_map(Event::syscall)
        .filter(|s| s.name == name)
        .collect()
}

/// Syscall events of one side, in order.
fn calls_by<'a>(events: &'a [Event], role: Role, name: &str) -> Vec<&'a Syscall> {
    events
        .iter()
        .filter(|e| e.role == Some(role))
        .filter_map(Event::syscall)
        .filter(|s| s.name == name)
        .collect()
}

/// True for the example's own `getsockopt(fd, SOL_TCP, TCP_INFO, ...)`.
fn is_tcp_info(sc: &Syscall) -> bool {
    sc.name == "getsockopt" && sc.args["optname"] == "TCP_INFO"
}

/// The states the example's own TCP_INFO reads returned, with their side. Each call's
/// `tcp_state` is what that call returned, and it makes no other.
fn tcp_info_looks(events: &[Event]) -> Vec<(Option<Role>, TcpState)> {
    events
        .iter()
        .filter_map(|e| e.syscall().map(|sc| (e.role, sc)))
        .filter(|(_, sc)| is_tcp_info(sc))
        .map(|(role, sc)| {
            assert_eq!(sc.ret, 0, "TCP_INFO failed: {sc:?}");
            assert!(sc.probe.is_none(), "a look needs no probe: {sc:?}");
            let state = sc
                .tcp_state
                .unwrap_or_else(|| panic!("TCP_INFO without a state: {sc:?}"));
            assert_eq!(
                sc.args["optval"].as_str(),
                Some(format!("{{tcpi_state={state}, ...}}").as_str()),
                "the state column is what the call returned"
            );
            (role, state)
        })
        .collect()
}

/// State events from `source` (`sock_diag`; `tcp_info` must not occur), with their side.
fn looks<'a>(events: &'a [Event], source: &str) -> Vec<(Option<Role>, &'a StateChange)> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            socklab::Body::State(st) if st.source == source => Some((e.role, st)),
            _ => None,
        })
        .collect()
}

/// The address a successful getsockname() returned.
fn addr_of(sc: &Syscall) -> std::net::SocketAddr {
    assert_eq!(sc.name, "getsockname");
    assert!(!sc.failed(), "getsockname failed: {sc:?}");
    sc.args["addr"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("getsockname without an address: {sc:?}"))
}

fn only<'a>(list: Vec<&'a Syscall>, what: &str) -> &'a Syscall {
    assert_eq!(list.len(), 1, "expected one {what}, got {list:#?}");
    list[0]
}

#[test]
fn socket_has_no_address_and_is_close() {
    let ev = run("01_socket");
    let socket = only(calls(&ev, "socket"), "socket");
    assert!(socket.ret >= 0);
    assert_eq!(socket.tcp_state, Some(TcpState::Close));
    let name = only(calls(&ev, "getsockname"), "getsockname");
    assert_eq!(addr_of(name).to_string(), "0.0.0.0:0");
    assert_eq!(name.tcp_state, Some(TcpState::Close));
    assert_eq!(tcp_info_looks(&ev), [(Some(Role::Server), TcpState::Close)]);
    assert_eq!(only(calls(&ev, "close"), "close").ret, 0);
}

#[test]
fn bind_gives_a_local_address_and_no_connection() {
    let ev = run("02_bind");
    let bind = only(calls(&ev, "bind"), "bind");
    assert_eq!(bind.ret, 0);
    assert_eq!(bind.tcp_state, Some(TcpState::Close));
    let addr = addr_of(only(calls(&ev, "getsockname"), "getsockname"));
    assert!(addr.ip().is_loopback(), "{addr}");
    assert_ne!(addr.port(), 0, "the kernel picked no port");
}

#[test]
fn listen_makes_a_listener_with_an_empty_queue() {
    let ev = run("03_listen");
    let listen = only(calls(&ev, "listen"), "listen");
    assert_eq!(listen.ret, 0);
    assert_eq!(listen.tcp_state, Some(TcpState::Listen));
    let backlog = listen.args["backlog"].as_u64().expect("backlog arg") as u32;
    assert_eq!(listen.queue, Some(AcceptQueue { len: 0, backlog }));
    // The example's own TCP_INFO read sees the same empty queue.
    let look = only(
        calls(&ev, "getsockopt")
            .into_iter()
            .filter(|s| is_tcp_info(s))
            .collect(),
        "TCP_INFO read",
    );
    assert_eq!(look.tcp_state, Some(TcpState::Listen));
    assert_eq!(look.queue, Some(AcceptQueue { len: 0, backlog }));
}

#[test]
fn connect_goes_syn_sent_then_established_from_an_ephemeral_port() {
    let ev = run("04_connect");
    let client = calls_by(&ev, Role::Client, "connect");
    let pending = client
        .iter()
        .find(|c| c.errno.as_deref() == Some("EINPROGRESS"))
        .expect("a non-blocking connect returning EINPROGRESS");
    assert_eq!(pending.tcp_state, Some(TcpState::SynSent));
    let fd = pending.fd;

    // The listener's queue was full (1 waiting, backlog 0) while the SYN was dropped.
    let server_polls = calls_by(&ev, Role::Server, "poll");
    assert!(
        server_polls
            .iter()
            .any(|p| p.queue.is_some_and(|q| q.len == 1 && q.backlog == 0)),
        "{server_polls:#?}"
    );

    let ready = calls_by(&ev, Role::Client, "poll");
    let ready = ready
        .iter()
        .find(|p| p.fd == fd)
        .expect("poll on the client");
    assert_eq!(ready.ret, 1, "POLLOUT never came: {ready:?}");
    assert_eq!(ready.tcp_state, Some(TcpState::Established));
    let so_error = only(
        calls_by(&ev, Role::Client, "getsockopt")
            .into_iter()
            .filter(|s| s.args["optname"] == "SO_ERROR")
            .collect(),
        "getsockopt(SO_ERROR)",
    );
    assert_eq!(so_error.args["optval"], "0");

    let client_looks: Vec<TcpState> = tcp_info_looks(&ev)
        .into_iter()
        .filter(|(r, _)| *r == Some(Role::Client))
        .map(|(_, s)| s)
        .collect();
    assert_eq!(client_looks, [TcpState::SynSent, TcpState::Established]);

    let name = calls_by(&ev, Role::Client, "getsockname");
    let name = name.iter().find(|c| c.fd == fd).expect("getsockname on it");
    let port = addr_of(name).port();
    let (lo, hi) = sysctl::local_port_range();
    assert!(
        (lo..=hi).contains(&port),
        "source port {port} outside {lo}-{hi}"
    );
}

#[test]
fn accept_returns_a_new_fd_and_empties_the_queue() {
    let ev = run("05_accept");
    let accept = only(calls(&ev, "accept4"), "accept4");
    let listener = accept.args["fd"].as_i64().expect("accept4's listener fd");
    assert!(accept.ret >= 0);
    assert_ne!(accept.ret, listener, "accept4 returned the listener itself");
    assert_eq!(accept.tcp_state, Some(TcpState::Established));
    let queues: Vec<u32> = calls_by(&ev, Role::Server, "poll")
        .iter()
        .map(|p| p.queue.expect("poll on the listener shows its queue").len)
        .collect();
    assert_eq!(queues, [1, 0], "accept queue before and after accept4");
    // The example's own TCP_INFO reads on the listener, around accept4, say the same.
    let listener_queues: Vec<u32> = calls_by(&ev, Role::Server, "getsockopt")
        .iter()
        .filter(|s| is_tcp_info(s) && s.fd == Some(listener as i32))
        .map(|s| {
            assert_eq!(s.tcp_state, Some(TcpState::Listen));
            s.queue
                .expect("TCP_INFO on the listener shows its queue")
                .len
        })
        .collect();
    assert_eq!(listener_queues, [1, 0], "TCP_INFO before and after accept4");
}

#[test]
fn read_write_is_a_byte_stream_ending_in_eof() {
    let ev = run("06_read_write");
    let written: i64 = calls_by(&ev, Role::Client, "write")
        .iter()
        .map(|w| w.ret)
        .sum();
    let reads = calls_by(&ev, Role::Server, "read");
    let (eof, data) = reads.split_last().expect("the server read");
    assert_eq!(data.iter().map(|r| r.ret).sum::<i64>(), written);
    assert_eq!(eof.ret, 0, "the last read is end of stream");
    assert_eq!(eof.tcp_state, Some(TcpState::CloseWait));

    let replied: i64 = calls_by(&ev, Role::Server, "write")
        .iter()
        .map(|w| w.ret)
        .sum();
    let pieces = calls_by(&ev, Role::Client, "read");
    assert!(
        pieces.iter().all(|r| r.ret > 0 && r.ret <= 5),
        "{pieces:#?}"
    );
    assert_eq!(pieces.iter().map(|r| r.ret).sum::<i64>(), replied);
    assert!(
        pieces.len() >= 3,
        "12 bytes cannot fit in fewer 5-byte reads"
    );
}

#[test]
fn shutdown_and_close_walk_the_closing_states() {
    let ev = run("07_shutdown_close");
    let client_port = addr_of(only(
        calls_by(&ev, Role::Client, "getsockname"),
        "client getsockname",
    ))
    .port();

    let shutdown = only(calls(&ev, "shutdown"), "shutdown");
    assert!(
        matches!(
            shutdown.tcp_state,
            Some(TcpState::FinWait1 | TcpState::FinWait2)
        ),
        "{shutdown:?}"
    );
    let server_reads = calls_by(&ev, Role::Server, "read");
    assert_eq!(server_reads[0].ret, 0);
    assert_eq!(server_reads[0].tcp_state, Some(TcpState::CloseWait));

    let client_states: Vec<TcpState> = tcp_info_looks(&ev)
        .into_iter()
        .filter(|(r, _)| *r == Some(Role::Client))
        .map(|(_, s)| s)
        .collect();
    assert!(
        client_states.contains(&TcpState::FinWait2),
        "{client_states:?}"
    );
    // Once the peer's FIN came, the descriptor's own socket is CLOSE: TIME_WAIT is elsewhere.
    assert_eq!(client_states.last(), Some(&TcpState::Close));
    let client_eof = calls_by(&ev, Role::Client, "read");
    assert_eq!(client_eof.last().map(|r| r.ret), Some(0));

    let table = looks(&ev, "sock_diag");
    assert!(
        table
            .iter()
            .any(|(r, s)| *r == Some(Role::Server) && s.to == TcpState::CloseWait),
        "{table:#?}"
    );
    let client_end = format!("127.0.0.1:{client_port}");
    let time_wait: Vec<_> = table
        .iter()
        .filter(|(_, s)| s.to == TcpState::TimeWait)
        .collect();
    assert_eq!(
        time_wait.len(),
        2,
        "TIME_WAIT before and after close(): {table:#?}"
    );
    assert!(
        time_wait
            .iter()
            .all(|(_, s)| s.local.as_deref() == Some(client_end.as_str())),
        "TIME_WAIT is on the side that sent FIN first: {time_wait:#?}"
    );
    assert_eq!(table.last().map(|(_, s)| s.to), Some(TcpState::TimeWait));
}

#[test]
fn udp_keeps_message_boundaries_and_has_no_tcp_state() {
    let ev = run("08_udp");
    assert!(
        ev.iter()
            .filter_map(Event::syscall)
            .all(|s| s.tcp_state.is_none()),
        "a UDP socket reported a TCP state"
    );
    assert!(ev.iter().all(|e| e.kind() != "state"));
    assert!(calls(&ev, "connect").is_empty() && calls(&ev, "listen").is_empty());
    let sent: Vec<i64> = calls(&ev, "sendto").iter().map(|s| s.ret).collect();
    let got: Vec<i64> = calls(&ev, "recvfrom").iter().map(|s| s.ret).collect();
    assert_eq!(sent.len(), 3);
    assert_eq!(got, sent, "one recvfrom per datagram, same sizes");
}
