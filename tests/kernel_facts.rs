//! What the kernel does for each call, checked in-process through the library: states read
//! back with TCP_INFO, addresses from getsockname/accept4, bytes from read; and that the lab
//! records exactly one event per wrapper call, with the kernel's return value and errno.
//!
//! Read first: tcp(7) (TCP_INFO), listen(2) (the accept queue), ip(7) (ip_local_port_range).
//! The recorder is process-global, so every test here holds `LOCK` while it runs.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use socklab::Event;
use socklab::TcpState;
use socklab::event::record::{self, Collector, Options};
use socklab::event::{AcceptQueue, Syscall};
use socklab::observe::tcp_info;
use socklab::sys::{self, Domain, Flags, How, Type};

static LOCK: Mutex<()> = Mutex::new(());

/// Holds the recorder for one test: a fresh Collector installed, uninstalled on drop.
struct Logged {
    events: Collector,
    _lock: MutexGuard<'static, ()>,
}

impl Logged {
    fn start() -> Logged {
        Logged::with(Options::default())
    }

    fn with(opts: Options) -> Logged {
        let lock = LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let events = Collector::new();
        record::install(Box::new(events.clone()), opts);
        Logged {
            events,
            _lock: lock,
        }
    }

    /// The syscall events recorded since the last call (notes left out).
    fn take_calls(&self) -> Vec<(Event, Syscall)> {
        self.events
            .take()
            .into_iter()
            .filter_map(|e| {
                let sc = e.syscall()?.clone();
                Some((e, sc))
            })
            .collect()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        record::uninstall();
    }
}

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

fn tcp_socket() -> OwnedFd {
    sys::socket(Domain::Inet, Type::Stream, Flags::SOCK_CLOEXEC).expect("socket")
}

fn state(fd: &impl AsFd) -> TcpState {
    tcp_info::read(fd).expect("TCP_INFO").state
}

fn queue(fd: &impl AsFd) -> AcceptQueue {
    tcp_info::read(fd)
        .expect("TCP_INFO")
        .queue
        .expect("a listener reports its queue")
}

/// Polls `f` until it returns true (loopback is fast; state changes still come from softirq
/// context, after the call that caused them may have returned).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// A listener on 127.0.0.1 at a port the kernel picks.
fn listener(backlog: i32) -> (OwnedFd, SocketAddr) {
    let fd = tcp_socket();
    sys::bind(&fd, localhost(0)).expect("bind");
    sys::listen(&fd, backlog).expect("listen");
    let addr = sys::getsockname(&fd).expect("getsockname");
    (fd, addr)
}

fn connected(to: SocketAddr) -> OwnedFd {
    let fd = tcp_socket();
    sys::connect(&fd, to).expect("connect");
    fd
}

/// A port nothing listens at (bound, then released).
fn closed_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    l.local_addr().unwrap().port()
}

fn ephemeral_range() -> (u16, u16) {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let mut it = text.split_whitespace().map(|n| n.parse::<u16>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

#[test]
fn states_and_the_accept_queue() {
    let _log = Logged::start();

    // A fresh socket has no connection.
    let fd = tcp_socket();
    assert_eq!(state(&fd), TcpState::Close);
    sys::bind(&fd, localhost(0)).unwrap();
    assert_eq!(state(&fd), TcpState::Close, "bind alone changes no state");
    sys::listen(&fd, 5).unwrap();
    assert_eq!(state(&fd), TcpState::Listen);
    assert_eq!(queue(&fd), AcceptQueue { len: 0, backlog: 5 });
    let addr = sys::getsockname(&fd).unwrap();

    // The kernel completes handshakes with nobody calling accept.
    let clients: Vec<OwnedFd> = (0..3).map(|_| connected(addr)).collect();
    for c in &clients {
        assert_eq!(state(c), TcpState::Established);
    }
    eventually("3 connections in the accept queue", || queue(&fd).len == 3);
    assert_eq!(queue(&fd), AcceptQueue { len: 3, backlog: 5 });

    // accept4 takes the oldest one off the queue, as a new descriptor.
    let (conn, peer) = sys::accept4(&fd, Flags::SOCK_CLOEXEC).unwrap();
    assert_ne!(conn.as_raw_fd(), fd.as_raw_fd());
    assert_eq!(queue(&fd), AcceptQueue { len: 2, backlog: 5 });
    assert_eq!(state(&conn), TcpState::Established);
    let first = sys::getsockname(&clients[0]).unwrap();
    assert_eq!(
        peer,
        Some(first),
        "accept4's peer is the first client's local address"
    );
    assert_eq!(sys::getpeername(&conn).unwrap(), first);
    assert_eq!(sys::getsockname(&conn).unwrap(), addr);

    // The client's port was picked at connect from the ephemeral range.
    let (lo, hi) = ephemeral_range();
    for c in &clients {
        let port = sys::getsockname(c).unwrap().port();
        assert!((lo..=hi).contains(&port), "{port} not in {lo}-{hi}");
    }
}

#[test]
fn syn_sent_while_the_accept_queue_is_full() {
    let _log = Logged::start();
    // listen(0): one finished connection fills the queue, and the kernel then drops new SYNs
    // (tcp_conn_request: sk_acceptq_is_full), so the next client stays in SYN_SENT.
    let (l, addr) = listener(0);
    let _first = connected(addr);
    eventually("the queue to fill", || queue(&l).len == 1);

    let c = tcp_socket();
    sys::set_nonblocking(&c, true).unwrap();
    assert_eq!(sys::connect(&c, addr), Err(Errno::EINPROGRESS));
    assert_eq!(state(&c), TcpState::SynSent);
    sys::close(c).unwrap();
}

#[test]
fn shutdown_wr_half_closes() {
    let _log = Logged::start();
    let (l, addr) = listener(1);
    let client = connected(addr);
    let (server, _) = sys::accept4(&l, Flags::SOCK_CLOEXEC).unwrap();

    sys::shutdown(&client, How::Write).unwrap();
    // The closer's FIN is acked: FIN_WAIT2; the peer got the FIN: CLOSE_WAIT.
    eventually("FIN_WAIT2 on the closer", || {
        state(&client) == TcpState::FinWait2
    });
    eventually("CLOSE_WAIT on the peer", || {
        state(&server) == TcpState::CloseWait
    });
    let mut buf = [0u8; 16];
    assert_eq!(sys::read(&server, &mut buf), Ok(0), "end of stream");

    // Half-closed, not closed: the peer can still send, the closer still reads.
    assert_eq!(sys::write(&server, b"still here"), Ok(10));
    assert_eq!(sys::read(&client, &mut buf), Ok(10));
    assert_eq!(&buf[..10], b"still here");
}

#[test]
fn one_event_per_call_with_the_kernels_answer() {
    let log = Logged::start();
    let pid = std::process::id();

    let l = tcp_socket();
    sys::bind(&l, localhost(0)).unwrap();
    sys::listen(&l, 4).unwrap();
    let addr = sys::getsockname(&l).unwrap();
    let c = tcp_socket();
    sys::connect(&c, addr).unwrap();
    let caddr = sys::getsockname(&c).unwrap();
    let (s, _) = sys::accept4(&l, Flags::SOCK_CLOEXEC).unwrap();
    assert_eq!(sys::write(&c, b"ping"), Ok(4));
    let mut buf = [0u8; 64];
    assert_eq!(sys::read(&s, &mut buf), Ok(4));
    sys::shutdown(&c, How::Write).unwrap();
    assert_eq!(sys::read(&s, &mut buf), Ok(0));
    let refused = tcp_socket();
    let nowhere = localhost(closed_port());
    assert_eq!(sys::connect(&refused, nowhere), Err(Errno::ECONNREFUSED));
    let (lfd, cfd, sfd, rfd) = (
        l.as_raw_fd(),
        c.as_raw_fd(),
        s.as_raw_fd(),
        refused.as_raw_fd(),
    );
    for fd in [refused, s, c, l] {
        sys::close(fd).unwrap();
    }

    let ok = |name: &str, fd: i32, ret: i64| (name.to_string(), Some(fd), ret, None);
    let expected = vec![
        ok("socket", lfd, lfd.into()),
        ok("bind", lfd, 0),
        ok("listen", lfd, 0),
        ok("getsockname", lfd, 0),
        ok("socket", cfd, cfd.into()),
        ok("connect", cfd, 0),
        ok("getsockname", cfd, 0),
        ok("accept4", sfd, sfd.into()),
        ok("write", cfd, 4),
        ok("read", sfd, 4),
        ok("shutdown", cfd, 0),
        ok("read", sfd, 0),
        ok("socket", rfd, rfd.into()),
        (
            "connect".to_string(),
            Some(rfd),
            -1,
            Some("ECONNREFUSED".to_string()),
        ),
        ok("close", rfd, 0),
        ok("close", sfd, 0),
        ok("close", cfd, 0),
        ok("close", lfd, 0),
    ];
    let calls = log.take_calls();
    let got: Vec<_> = calls
        .iter()
        .map(|(_, sc)| (sc.name.to_string(), sc.fd, sc.ret, sc.errno.clone()))
        .collect();
    assert_eq!(got, expected);

    for (ev, _) in &calls {
        assert_eq!(ev.pid, pid);
    }
    let by_name = |name: &str| -> Vec<&Syscall> {
        calls
            .iter()
            .map(|(_, sc)| sc)
            .filter(|sc| sc.name == name)
            .collect()
    };
    // accept4: the listener in args, the new fd as the event's fd, the client as remote.
    let acc = by_name("accept4")[0];
    assert_eq!(acc.args["fd"], lfd);
    assert_eq!(acc.args["addr"], caddr.to_string());
    assert_eq!(acc.remote.as_deref(), Some(caddr.to_string().as_str()));
    assert_eq!(acc.local.as_deref(), Some(addr.to_string().as_str()));
    // The data arguments carry the bytes that moved.
    assert_eq!(by_name("write")[0].args["data"], "ping");
    assert_eq!(by_name("read")[0].args["data"], "ping");
    // The lab's TCP_INFO probe agrees with the kernel facts checked above.
    assert_eq!(by_name("listen")[0].tcp_state, Some(TcpState::Listen));
    assert_eq!(by_name("connect")[0].tcp_state, Some(TcpState::Established));
    let refused = by_name("connect")[1];
    assert_eq!(refused.args["addr"], nowhere.to_string());
    assert_eq!(refused.tcp_state, Some(TcpState::Close));
}

/// 300 one-byte writes back to back, then EOF: the write events, the read of 0, and the keys
/// of the notes.
fn busy_socket(opts: Options) -> (Vec<(Event, Syscall)>, Syscall, Vec<String>) {
    let log = Logged::with(opts);
    let (l, addr) = listener(1);
    let c = connected(addr);
    let (s, _) = sys::accept4(&l, Flags::SOCK_CLOEXEC).expect("accept4");
    for _ in 0..300 {
        assert_eq!(sys::write(&c, b"x"), Ok(1));
    }
    sys::shutdown(&c, How::Write).expect("shutdown");
    let mut buf = [0u8; 512];
    let mut got = 0;
    while let Ok(n @ 1..) = sys::read(&s, &mut buf) {
        got += n;
    }
    assert_eq!(got, 300);
    let notes = log
        .events
        .events()
        .iter()
        .filter_map(|e| match &e.body {
            socklab::event::Body::Note(n) => Some(n.key.clone()),
            _ => None,
        })
        .collect();
    let calls = log.take_calls();
    let eof = calls
        .iter()
        .rev()
        .find(|(_, sc)| sc.name == "read")
        .map(|(_, sc)| sc.clone())
        .expect("the last read");
    let writes = calls
        .into_iter()
        .filter(|(_, sc)| sc.name == "write")
        .collect();
    (writes, eof, notes)
}

#[test]
fn a_busy_socket_is_probed_by_sampling_and_its_end_always() {
    let (writes, eof, notes) = busy_socket(Options::default());
    assert_eq!(writes.len(), 300);
    let first = record::SAMPLE_AFTER as usize;
    for (_, sc) in &writes[..first] {
        assert_eq!(sc.probe.as_deref(), Some("getsockopt(TCP_INFO)"));
        assert_eq!(sc.tcp_state, Some(TcpState::Established));
    }
    // After that, a write goes unprobed (and claims no state) only within 1 ms of the last
    // probe on its socket, which said ESTABLISHED.
    let mut last_probe = writes[first - 1].0.t;
    let mut skipped = 0;
    for (e, sc) in &writes[first..] {
        match &sc.probe {
            Some(_) => {
                assert_eq!(sc.tcp_state, Some(TcpState::Established));
                last_probe = e.t;
            }
            None => {
                assert_eq!(sc.tcp_state, None, "{sc:?}");
                assert!(e.t - last_probe < record::SAMPLE_EVERY_NS, "{sc:?}");
                skipped += 1;
            }
        }
    }
    // 200 one-byte writes do not each take a millisecond.
    assert!(skipped > 0);
    // Said once, when the first probe was skipped.
    let said = notes.iter().filter(|k| *k == "probe.sampled").count();
    assert_eq!(said, 1, "{notes:?}");
    // The end of the stream is always probed: the read of 0 sees CLOSE_WAIT.
    assert_eq!((eof.ret, eof.tcp_state), (0, Some(TcpState::CloseWait)));
    assert!(eof.probe.is_some());

    // --probe-all: every call.
    let (writes, _, notes) = busy_socket(Options {
        probe_all: true,
        ..Options::default()
    });
    assert!(writes.iter().all(|(_, sc)| sc.probe.is_some()));
    assert!(!notes.iter().any(|k| k == "probe.sampled"));
}

#[test]
fn wrappers_work_with_logging_off() {
    let log = Logged::start();
    record::uninstall();
    assert!(!record::enabled());

    let (l, addr) = listener(1);
    let c = connected(addr);
    let (s, peer) = sys::accept4(&l, Flags::SOCK_CLOEXEC).unwrap();
    assert_eq!(peer, Some(sys::getsockname(&c).unwrap()));
    assert_eq!(sys::write(&c, "안녕".as_bytes()), Ok(6));
    let mut buf = [0u8; 16];
    assert_eq!(sys::read(&s, &mut buf), Ok(6));
    assert_eq!(&buf[..6], "안녕".as_bytes());
    assert_eq!(state(&s), TcpState::Established);
    let refused = tcp_socket();
    assert_eq!(
        sys::connect(&refused, localhost(closed_port())),
        Err(Errno::ECONNREFUSED)
    );
    for fd in [refused, s, c, l] {
        sys::close(fd).unwrap();
    }
    assert!(log.events.events().is_empty(), "nothing recorded while off");
}

/// Every wrapper, once: each event names a row of `sys::CALLS` that says it has a wrapper,
/// with arguments from that row, and every such row has a wrapper here. A new wrapper belongs
/// in this list.
#[test]
fn every_wrapper_logs_its_row_of_the_table() {
    use std::collections::BTreeSet;
    use std::net::UdpSocket;

    use nix::poll::{PollFd, PollFlags};
    use socklab::sys::{EpollCreateFlags, EpollCtl, EpollEvent, EpollFlags, ForkResult, Signal};

    let log = Logged::start();
    let (l, addr) = listener(1);
    let c = connected(addr);
    let (s, _) = sys::accept4(&l, Flags::SOCK_CLOEXEC).unwrap();
    sys::getpeername(&c).unwrap();
    sys::setsockopt(&c, sys::SockOpt::TcpNoDelay(true)).unwrap();
    sys::so_error(&c).unwrap();
    sys::tcp_info(&c).unwrap();
    sys::set_nonblocking(&s, true).unwrap();
    sys::write(&c, b"a").unwrap();
    sys::send(&c, b"b", sys::Msg::empty()).unwrap();
    let mut fds = [PollFd::new(s.as_fd(), PollFlags::POLLIN)];
    sys::poll(&mut fds, 1000).unwrap();
    let mut buf = [0u8; 8];
    eventually("both bytes", || {
        sys::recv(&s, &mut buf, sys::Msg::MSG_PEEK).unwrap_or(0) == 2
    });
    sys::read(&s, &mut buf[..1]).unwrap();
    sys::recvfrom(&s, &mut buf).unwrap();
    sys::shutdown(&c, How::Both).unwrap();

    let ep = sys::epoll_create1(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
    sys::epoll_ctl(&ep, EpollCtl::Add(EpollFlags::EPOLLIN), &s, 7).unwrap();
    let mut events = [EpollEvent::empty(); 4];
    sys::epoll_wait(&ep, &mut events, 0).unwrap();

    let peer = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let u = sys::socket(Domain::Inet, Type::Datagram, Flags::SOCK_CLOEXEC).unwrap();
    sys::sendto(&u, b"u", peer.local_addr().unwrap()).unwrap();

    match sys::fork().unwrap() {
        ForkResult::Child => sys::ffi::exit_now(0),
        ForkResult::Parent { child } => {
            // A child that has already exited is a zombie until waited for: kill still finds it.
            sys::kill(child, Signal::SIGKILL).unwrap();
            sys::waitpid(Some(child), false).unwrap();
        }
    }
    drop(ep);
    for fd in [u, s, c, l] {
        sys::close(fd).unwrap();
    }

    let calls = log.take_calls();
    let seen: BTreeSet<&str> = calls.iter().map(|(_, sc)| &*sc.name).collect();
    let wrapped: BTreeSet<&str> = sys::table::wrapped_names().collect();
    assert_eq!(seen, wrapped, "events vs. rows with a wrapper");
    for (_, sc) in &calls {
        let row = sys::table::find(&sc.name).unwrap();
        for (k, _) in sc.args.iter() {
            assert!(row.arg(k).is_some(), "{}: {k} is not in its row", sc.name);
        }
    }
}
