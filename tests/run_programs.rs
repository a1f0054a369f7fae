//! `socklab run -- PROGRAM` on programs of many shapes: Python's http.server and urllib, C
//! programs with poll, accept4, sendmsg and recvmsg, and with select, pselect6, sendmmsg,
//! recvmmsg and epoll_pwait2, a threaded server, UDP on IPv6 and Unix
//! sockets, and the awkward ones (a static binary, a 32-bit call, SIGKILL, 1000 children,
//! files that cannot run). Each test checks what the kernel did (return values, the states
//! TCP_INFO read, the tracepoint's transitions as root, exit statuses), and that nothing of
//! the run is left behind; never the text socklab printed.

mod util;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use socklab::event::Syscall;
use socklab::{Body, Event, Lane, Role, TcpState};
use util::{Finished, Proc, assert_no_panic, calls_of, is_root, pid_of, socklab_exe};

/// A directory of this test's own under the temp dir, removed at drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("socklab-run-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the test's temp dir");
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn text(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Compiles the fixture `source` with `cc` (and `flags`) into `dir`; None, after saying why,
/// without cc or when cc fails with these flags.
fn compile(dir: &TempDir, source: &str, flags: &[&str]) -> Option<PathBuf> {
    if !util::have_tool("cc", "gcc") {
        return None;
    }
    let src = dir.path(source);
    std::fs::copy(fixture(source), &src).expect("copy the C source");
    let exe = dir.path(source.trim_end_matches(".c"));
    let out = Command::new("cc")
        .args(flags)
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("run cc");
    if !out.status.success() {
        util::skip(&format!(
            "cc {} cannot build here: {}",
            flags.join(" "),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("")
        ));
        return None;
    }
    Some(exe)
}

/// `socklab [global...] run -- program...` to its end, and socklab's pid.
fn run(global: &[&str], program: &[&str]) -> (Finished, u32) {
    let mut cmd = Command::new(socklab_exe());
    cmd.args(global).arg("run").arg("--").args(program);
    let proc = Proc::spawn(cmd);
    let pid = proc.pid();
    (proc.finish(), pid)
}

/// `socklab --json run` of C fixture `source` compiled with `flags`, which must exit with
/// `code` (`why` says what that proves); None when no C compiler is there (skipped).
fn run_c(
    dir: &TempDir,
    source: &str,
    flags: &[&str],
    code: i32,
    why: &str,
) -> Option<(Finished, u32)> {
    let exe = compile(dir, source, flags)?;
    let (f, socklab) = run(&["--json"], &[&exe.display().to_string()]);
    assert_no_panic(&f.stderr);
    assert_eq!(f.status.code(), Some(code), "{why}\n{}", f.stderr);
    Some((f, socklab))
}

/// Nothing of the run is left: no process whose arguments mention `mark` (a path of the
/// test's own), no tracefs instance of socklab's pid.
fn assert_nothing_left(socklab: u32, mark: &str) {
    let left: Vec<_> = util::processes()
        .into_iter()
        .filter(|(_, args)| args.iter().any(|a| a.contains(mark)))
        .collect();
    assert!(left.is_empty(), "processes left behind: {left:?}");
    assert_eq!(util::instances_of(socklab), Vec::<String>::new());
}

/// The process notes (`proc.*`) of `pid` with key `key`: their args.
fn notes_of<'a>(events: &'a [Event], pid: u32, key: &str) -> Vec<&'a BTreeMap<String, String>> {
    events
        .iter()
        .filter(|e| e.pid == pid)
        .filter_map(|e| match &e.body {
            Body::Note(n) if n.key == key => Some(&n.args),
            _ => None,
        })
        .collect()
}

/// The descriptors each process got from socket, socketpair, accept or accept4.
fn sockets(events: &[Event]) -> HashSet<(u32, i32)> {
    let mut out = HashSet::new();
    for e in events {
        let Some(sc) = e.syscall().filter(|sc| !sc.failed()) else {
            continue;
        };
        match sc.name.as_ref() {
            "socket" | "accept" | "accept4" => {
                out.insert((e.pid, sc.ret as i32));
            }
            "socketpair" => {
                let sv = util::arg(sc, "sv");
                for fd in sv.trim_matches(['[', ']']).split(", ") {
                    out.insert((e.pid, fd.parse().expect("socketpair's descriptors")));
                }
            }
            _ => {}
        }
    }
    out
}

/// The calls that move data or end a descriptor.
const DATA_CALLS: &[&str] = &[
    "read", "write", "readv", "writev", "recvfrom", "sendto", "recvmsg", "sendmsg", "close",
    "shutdown", "sendfile",
];

/// Python's http.server and urllib, started by one shell: the server's and the client's
/// calls on their own lanes, the states the kernel reported, and only calls on sockets (the
/// server reads its directory listing and writes its log: none of that is on the timeline).
#[test]
fn pythons_http_server_and_urllib() {
    let Some(python) = util::python3() else {
        util::skip("python3 is not installed (package python3)");
        return;
    };
    let dir = TempDir::new("http");
    std::fs::write(dir.path("hello.txt"), "hello\n").unwrap();
    let port = util::free_port();
    let py = python.display().to_string();
    let (d, log) = (dir.text(), dir.path("server.log").display().to_string());
    // The server says when it listens (a probe connection would be one more accept).
    let script = format!(
        "cd \"{d}\" && \"{py}\" -u -m http.server --bind 127.0.0.1 {port} > \"{log}\" 2>&1 & s=$!; \
         for i in $(seq 200); do grep -q Serving \"{log}\" && break; sleep 0.05; done; \
         \"{py}\" -c 'import sys, urllib.request as u; \
         r = u.urlopen(\"http://127.0.0.1:{port}/\"); \
         sys.exit(0 if r.status == 200 and b\"hello.txt\" in r.read() else 1)' || exit 9; \
         kill $s; wait $s; exit 0"
    );
    let (f, socklab) = run(&["--json"], &["sh", "-c", &script]);
    assert_no_panic(&f.stderr);
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    let evs = f.events();
    let server = pid_of(&evs, "listen");
    let target = format!("127.0.0.1:{port}");
    let (connect_ev, connect) = evs
        .iter()
        .filter_map(|e| e.syscall().map(|sc| (e, sc)))
        .find(|(_, sc)| sc.name == "connect" && sc.remote.as_deref() == Some(target.as_str()))
        .expect("urllib's connect");
    let client = connect_ev.pid;
    assert_ne!(server, client, "two processes");

    // Both roles, each on its lane.
    for e in evs.iter().filter(|e| e.pid == server) {
        assert_eq!(
            (e.role, e.lane),
            (Some(Role::Server), Lane::Server),
            "{e:?}"
        );
    }
    for e in evs.iter().filter(|e| e.pid == client) {
        assert_eq!(
            (e.role, e.lane),
            (Some(Role::Client), Lane::Client),
            "{e:?}"
        );
    }
    let (_, listen) = calls_of(&evs, server, "listen")[0];
    assert_eq!(listen.tcp_state, Some(TcpState::Listen));
    assert_eq!(listen.local.as_deref(), Some(target.as_str()));
    // One connection: accept4 returned it ESTABLISHED, from the client's address.
    let accepts: Vec<_> = calls_of(&evs, server, "accept4")
        .into_iter()
        .filter(|(_, sc)| !sc.failed())
        .collect();
    assert_eq!(accepts.len(), 1, "one connection");
    let (accept_ev, accept) = accepts[0];
    assert_eq!(accept.tcp_state, Some(TcpState::Established), "{accept:?}");
    assert_eq!(connect.ret, 0);
    assert_eq!(
        connect.tcp_state,
        Some(TcpState::Established),
        "{connect:?}"
    );
    assert_eq!(
        accept.remote, connect.local,
        "the two ends of one connection"
    );
    // The request and the answer: what one sent, the other received.
    let sent: i64 = calls_of(&evs, client, "sendto")
        .iter()
        .map(|(_, sc)| sc.ret)
        .sum();
    let got: i64 = calls_of(&evs, server, "recvfrom")
        .iter()
        .filter(|(_, sc)| sc.fd == accept.fd)
        .map(|(_, sc)| sc.ret.max(0))
        .sum();
    assert!(
        sent > 0 && got == sent,
        "request: sent {sent}, received {got}"
    );

    // Data calls on sockets only.
    let socks = sockets(&evs);
    for e in &evs {
        let Some(sc) = e.syscall() else { continue };
        if let Some(fd) = sc.fd.filter(|_| DATA_CALLS.contains(&sc.name.as_ref())) {
            assert!(socks.contains(&(e.pid, fd)), "not a socket: {e:?}");
        }
        assert_ne!(sc.name, "openat", "{e:?}");
    }
    // The kill: SIGTERM ended the server.
    let killed = notes_of(&evs, server, "proc.killed");
    assert_eq!(killed.len(), 1);
    assert_eq!(killed[0]["signal"], "SIGTERM");

    assert_nothing_left(socklab, &dir.text());
    let server_left = util::processes().into_iter().any(|(_, args)| {
        args.iter().any(|a| a == "http.server") && args.contains(&port.to_string())
    });
    assert!(!server_left, "the server outlived the run");
    if !is_root() {
        util::skip("needs root (the tracepoint checks)");
        return;
    }
    // The tracepoint: the server's end was ESTABLISHED before accept4 returned it, and its
    // listener closed when the signal ended the process.
    let client_end = connect.local.clone().expect("the client's address");
    let established = evs.iter().find(|e| {
        e.pid == server
            && matches!(&e.body, Body::State(st)
                if st.to == TcpState::Established && st.remote.as_ref() == Some(&client_end))
    });
    assert!(established.expect("the server end's ESTABLISHED").t < accept_ev.t);
    let listen_closed = evs.iter().any(|e| {
        e.pid == server
            && matches!(&e.body, Body::State(st)
                if st.from == Some(TcpState::Listen) && st.to == TcpState::Close
                    && st.local.as_deref() == Some(target.as_str()))
    });
    assert!(listen_closed, "LISTEN -> CLOSE at the kill");
}

/// A C server and its forked client: poll names the socket it waited on, with the state
/// behind it; sendmsg and recvmsg carry their data.
#[test]
fn a_c_program_with_poll_accept4_sendmsg_recvmsg() {
    let dir = TempDir::new("pollmsg");
    let Some((f, socklab)) = run_c(&dir, "run_pollmsg.c", &["-O1"], 0, "the exchange worked")
    else {
        return;
    };
    let evs = f.events();
    let server = pid_of(&evs, "listen");
    let client = pid_of(&evs, "connect");
    assert_ne!(server, client, "the client is a forked child");
    assert_eq!(
        calls_of(&evs, server, "clone")
            .iter()
            .map(|(_, sc)| sc.ret as u32)
            .collect::<Vec<_>>(),
        [client]
    );
    assert!(
        evs.iter()
            .filter(|e| e.pid == client)
            .all(|e| e.lane == Lane::Client)
    );
    let (_, listen) = calls_of(&evs, server, "listen")[0];
    let listener = listen.fd.expect("listen's fd");

    let (_, accept) = calls_of(&evs, server, "accept4")[0];
    assert_eq!(util::arg(accept, "flags"), "SOCK_CLOEXEC");
    assert_eq!(accept.tcp_state, Some(TcpState::Established));
    // accept4(l, NULL, NULL): the addresses come from the sockets themselves.
    let (_, connect) = calls_of(&evs, client, "connect")[0];
    assert!(connect.local.is_some(), "{connect:?}");
    assert_eq!(accept.local, listen.local, "{accept:?}");
    assert_eq!(
        accept.remote, connect.local,
        "the two ends of one connection"
    );
    let conn = accept.ret as i32;

    // The two polls: on the listener (a connection waiting), then on the connection.
    let polls = calls_of(&evs, server, "poll");
    assert_eq!(polls.len(), 2, "{polls:?}");
    let (_, on_listener) = polls[0];
    assert_eq!((on_listener.ret, on_listener.fd), (1, Some(listener)));
    assert_eq!(
        util::arg(on_listener, "fds"),
        format!("[{{fd={listener}, events=POLLIN, revents=POLLIN}}]")
    );
    assert_eq!(on_listener.tcp_state, Some(TcpState::Listen));
    let (_, on_conn) = polls[1];
    assert_eq!((on_conn.ret, on_conn.fd), (1, Some(conn)));
    assert!(util::arg(on_conn, "fds").contains(&format!("fd={conn},")));
    assert_eq!(on_conn.tcp_state, Some(TcpState::Established));

    // The messages, decoded from the iovecs.
    let msg = |sc: &Syscall| util::arg(sc, "msg").to_string();
    let sends = calls_of(&evs, client, "sendmsg");
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].1.ret, 17);
    assert!(
        msg(sends[0].1).contains(r#"iov_base="ping over sendmsg""#),
        "{}",
        msg(sends[0].1)
    );
    let recvs = calls_of(&evs, server, "recvmsg");
    assert_eq!(
        recvs
            .iter()
            .map(|(_, sc)| (sc.fd, sc.ret))
            .collect::<Vec<_>>(),
        [(Some(conn), 17), (Some(conn), 0)],
        "the ping, then the client's FIN"
    );
    assert!(msg(recvs[0].1).contains("ping over sendmsg"));
    assert_eq!(recvs[1].1.tcp_state, Some(TcpState::CloseWait));
    let (_, pong) = calls_of(&evs, server, "sendmsg")[0];
    assert_eq!((pong.fd, pong.ret), (Some(conn), 17));
    assert!(msg(pong).contains("pong over sendmsg"));
    let (_, got) = calls_of(&evs, client, "recvmsg")[0];
    assert_eq!(got.ret, 17);
    assert!(msg(got).contains("pong over sendmsg"));
    // The parent reaped its child.
    let (_, wait) = calls_of(&evs, server, "wait4")[0];
    assert_eq!(wait.ret as u32, client);
    assert_nothing_left(socklab, &dir.text());
}

/// The `field=` values in a decoded text, in order (`msg_len=14` ... gives `["14", ...]`;
/// a string field's value without its quotes).
fn fields<'a>(text: &'a str, field: &str) -> Vec<&'a str> {
    let key = format!("{field}=");
    text.match_indices(&key)
        .map(|(i, _)| {
            let rest = &text[i + key.len()..];
            match rest.strip_prefix('"') {
                Some(quoted) => quoted.split('"').next().unwrap_or(""),
                None => rest.split([',', '}']).next().unwrap_or(""),
            }
        })
        .collect()
}

/// A C program with select and pselect on a listener and its connection, sendmmsg and
/// recvmmsg on a UDP pair, epoll_pwait2 on the receiving end: the sets as the program passed
/// them and as the kernel left them, the messages each call handled and their bytes.
#[test]
fn a_c_program_with_select_mmsg_and_epoll_pwait2() {
    let dir = TempDir::new("select");
    let Some((f, socklab)) = run_c(
        &dir,
        "run_select_mmsg.c",
        &["-O1"],
        0,
        "every call returned what the program expected",
    ) else {
        return;
    };
    let evs = f.events();
    let server = pid_of(&evs, "listen");
    let (_, listen) = calls_of(&evs, server, "listen")[0];
    let listener = listen.fd.expect("listen's fd");
    let (_, accept) = calls_of(&evs, server, "accept4")[0];
    let conn = accept.ret as i32;

    // select on the listener: a connection is waiting, the set names the listener.
    let selects = calls_of(&evs, server, "select");
    assert_eq!(selects.len(), 1, "{selects:?}");
    let (_, select) = selects[0];
    assert_eq!((select.ret, select.fd), (1, Some(listener)));
    assert_eq!(select.args.get("nfds"), Some(&(listener + 1).into()));
    assert_eq!(
        util::arg(select, "readfds"),
        format!("[{listener}] -> [{listener}]")
    );
    assert_eq!(util::arg(select, "writefds"), "NULL");
    // As passed, not the time the kernel left in it.
    assert_eq!(util::arg(select, "timeout"), "{tv_sec=10, tv_usec=0}");
    assert_eq!(select.tcp_state, Some(TcpState::Listen));

    // pselect6 on both: only the connection has data.
    let (_, pselect) = calls_of(&evs, server, "pselect6")[0];
    assert_eq!((pselect.ret, pselect.fd), (1, Some(listener)));
    assert_eq!(
        util::arg(pselect, "readfds"),
        format!("[{listener} {conn}] -> [{conn}]")
    );
    assert_eq!(util::arg(pselect, "timeout"), "{tv_sec=10, tv_nsec=0}");
    assert_eq!(util::arg(pselect, "sigmask"), "{sigmask=[], sigsetsize=8}");

    // sendmmsg: two datagrams from the connected UDP socket, each's length as sent.
    let udp: Vec<i32> = calls_of(&evs, server, "socket")
        .iter()
        .filter(|(_, sc)| util::arg(sc, "type") == "SOCK_DGRAM")
        .map(|(_, sc)| sc.ret as i32)
        .collect();
    assert_eq!(udp.len(), 2, "the receiving and the sending socket");
    let (rx, tx) = (udp[0], udp[1]);
    let (_, send) = calls_of(&evs, server, "sendmmsg")[0];
    assert_eq!((send.fd, send.ret), (Some(tx), 2));
    let sent = util::arg(send, "msgvec");
    assert_eq!(fields(sent, "iov_base"), ["first datagram", "second one"]);
    assert_eq!(fields(sent, "msg_len"), ["14", "10"], "{sent}");
    // recvmmsg: both, each with the sender's address and its bytes.
    let (_, recv) = calls_of(&evs, server, "recvmmsg")[0];
    assert_eq!((recv.fd, recv.ret), (Some(rx), 2));
    let got = util::arg(recv, "msgvec");
    assert_eq!(fields(got, "msg_len"), fields(sent, "msg_len"), "{got}");
    assert_eq!(fields(got, "iov_base"), fields(sent, "iov_base"));
    let (_, tx_connect) = calls_of(&evs, server, "connect")
        .into_iter()
        .find(|(_, sc)| sc.fd == Some(tx))
        .expect("the UDP connect");
    let from = tx_connect.local.as_deref().expect("the sender's address");
    assert_eq!(fields(got, "msg_name"), [from, from]);
    assert_eq!(util::arg(recv, "timeout"), "{tv_sec=5, tv_nsec=0}");

    // epoll_pwait2 on an epoll instance that watches rx: one event, rx's data.
    let (_, ctl) = calls_of(&evs, server, "epoll_ctl")[0];
    assert_eq!((ctl.ret, util::arg(ctl, "op")), (0, "EPOLL_CTL_ADD"));
    assert_eq!(ctl.args.get("fd"), Some(&rx.into()));
    let epfd = ctl.fd;
    let waits = calls_of(&evs, server, "epoll_pwait2");
    assert_eq!(waits.len(), 1, "{waits:?}");
    let (_, wait) = waits[0];
    assert_eq!((wait.fd, wait.ret), (epfd, 1));
    assert_eq!(
        util::arg(wait, "events"),
        "[{events=EPOLLIN, data={u64=42}}]"
    );
    assert_eq!(util::arg(wait, "timeout"), "{tv_sec=5, tv_nsec=0}");
    assert_nothing_left(socklab, &dir.text());
}

/// A threaded server: each thread's calls carry the process's pid and its own tid.
#[test]
fn a_threaded_servers_calls_carry_their_threads() {
    let Some(python) = util::python3() else {
        util::skip("python3 is not installed (package python3)");
        return;
    };
    let script = fixture("run_threads.py").display().to_string();
    let (f, socklab) = run(&["--json"], &[&python.display().to_string(), &script]);
    assert_no_panic(&f.stderr);
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    let evs = f.events();
    let pid = pid_of(&evs, "listen");
    // Every call is the one process's.
    assert!(
        evs.iter()
            .filter(|e| e.syscall().is_some())
            .all(|e| e.pid == pid)
    );
    let threads: BTreeSet<u32> = calls_of(&evs, pid, "clone3")
        .iter()
        .chain(calls_of(&evs, pid, "clone").iter())
        .map(|(_, sc)| sc.ret as u32)
        .collect();
    assert_eq!(threads.len(), 3, "three threads started");
    let accepts: Vec<_> = calls_of(&evs, pid, "accept4")
        .into_iter()
        .filter(|(_, sc)| !sc.failed())
        .collect();
    let tids: BTreeSet<u32> = accepts.iter().map(|(e, _)| e.tid).collect();
    assert_eq!(tids, threads, "each thread accepted one connection");
    // The connections are the main thread's.
    for (e, _) in calls_of(&evs, pid, "connect") {
        assert_eq!(e.tid, pid);
    }
    // Each accepted descriptor's data calls are its thread's.
    for (ev, accept) in &accepts {
        let fd = accept.ret as i32;
        let echo: Vec<_> = evs
            .iter()
            .filter(|e| {
                e.syscall().is_some_and(|sc| {
                    sc.fd == Some(fd) && matches!(sc.name.as_ref(), "recvfrom" | "sendto")
                }) && e.t > ev.t
            })
            .take(2)
            .collect();
        assert_eq!(echo.len(), 2);
        assert!(echo.iter().all(|e| e.tid == ev.tid), "{echo:?}");
        assert_eq!(echo[0].syscall().unwrap().ret, 8);
    }
    assert_nothing_left(socklab, &script);
}

/// UDP on ::1, Unix datagrams at a path, a Unix stream at an abstract name, a socketpair:
/// each address decoded as the kernel had it.
#[test]
fn udp6_and_unix_addresses_are_decoded() {
    let Some(python) = util::python3() else {
        util::skip("python3 is not installed (package python3)");
        return;
    };
    let dir = TempDir::new("addrs");
    let path = dir.path("dgram.sock").display().to_string();
    let name = format!("socklab-run-test-{}", std::process::id());
    let script = fixture("run_addrs.py").display().to_string();
    let (f, socklab) = run(
        &["--json"],
        &[&python.display().to_string(), &script, &path, &name],
    );
    assert_no_panic(&f.stderr);
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    let evs = f.events();
    let pid = pid_of(&evs, "socketpair");
    let named = |call: &str| -> Vec<&Syscall> {
        calls_of(&evs, pid, call)
            .into_iter()
            .map(|(_, sc)| sc)
            .collect()
    };

    // UDP on ::1: the port bound, the datagrams' addresses both ways.
    let server = named("getsockname")
        .into_iter()
        .find_map(|sc| {
            util::arg(sc, "addr")
                .strip_prefix("[::1]:")
                .map(String::from)
        })
        .expect("the IPv6 server's port");
    let to_server = format!("[::1]:{server}");
    let sendtos = named("sendto");
    let hello = sendtos
        .iter()
        .find(|sc| util::arg(sc, "data") == "udp6 hello")
        .expect("the UDP datagram");
    assert_eq!(
        (util::arg(hello, "addr"), hello.ret),
        (to_server.as_str(), 10)
    );
    let recvfroms = named("recvfrom");
    let got = recvfroms
        .iter()
        .find(|sc| util::arg(sc, "data") == "udp6 hello")
        .expect("its receipt");
    let from = util::arg(got, "addr");
    assert!(from.starts_with("[::1]:") && from != to_server, "{from}");
    let back = recvfroms
        .iter()
        .find(|sc| util::arg(sc, "data") == "udp6 back")
        .expect("the answer");
    assert_eq!(util::arg(back, "addr"), to_server);

    // Unix datagrams at a path.
    let binds = named("bind");
    assert!(
        binds
            .iter()
            .any(|sc| util::arg(sc, "addr") == path && sc.ret == 0),
        "{binds:?}"
    );
    let unix = sendtos
        .iter()
        .find(|sc| util::arg(sc, "data") == "unix hello")
        .expect("the Unix datagram");
    assert_eq!((util::arg(unix, "addr"), unix.ret), (path.as_str(), 10));

    // The abstract name, as `@name`.
    let abstract_name = format!("@{name}");
    assert!(
        binds
            .iter()
            .any(|sc| util::arg(sc, "addr") == abstract_name)
    );
    let connect = named("connect")
        .into_iter()
        .find(|sc| util::arg(sc, "addr") == abstract_name)
        .expect("the connect to the abstract name");
    assert_eq!(connect.ret, 0);
    let (_, accept) = calls_of(&evs, pid, "accept4")
        .into_iter()
        .find(|(_, sc)| !sc.failed())
        .expect("the abstract listener's accept");
    assert!(accept.ret >= 0);

    // socketpair: the two descriptors, and the data from one to the other.
    let pair = named("socketpair")[0];
    let sv = util::arg(pair, "sv");
    let fds: Vec<i32> = sv
        .trim_matches(['[', ']'])
        .split(", ")
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(fds.len(), 2, "{sv}");
    let sent = sendtos
        .iter()
        .find(|sc| util::arg(sc, "data") == "pair hello")
        .expect("the socketpair's send");
    let read = recvfroms
        .iter()
        .find(|sc| util::arg(sc, "data") == "pair hello")
        .expect("its receipt");
    assert_eq!((sent.fd, read.fd), (Some(fds[0]), Some(fds[1])));
    assert_eq!((sent.ret, read.ret), (10, 10));
    assert_nothing_left(socklab, &dir.text());
}

/// A static binary, exec'd by a shell: no loader to preload into, but ptrace sees its calls.
#[test]
fn a_static_binary_is_traced() {
    let dir = TempDir::new("static");
    let Some(exe) = compile(&dir, "run_static.c", &["-static"]) else {
        return;
    };
    let exe = exe.display().to_string();
    let (f, socklab) = run(&["--json"], &["sh", "-c", "exec \"$0\"", &exe]);
    assert_no_panic(&f.stderr);
    assert_eq!(
        f.status.code(),
        Some(3),
        "its own exit status\n{}",
        f.stderr
    );
    let evs = f.events();
    let pid = pid_of(&evs, "socket");
    let exec = notes_of(&evs, pid, "proc.exec");
    assert_eq!(exec.len(), 1);
    assert_eq!(exec[0]["program"], exe);
    let (_, socket) = calls_of(&evs, pid, "socket")[0];
    assert_eq!((socket.ret, util::arg(socket, "type")), (3, "SOCK_DGRAM"));
    assert_eq!(calls_of(&evs, pid, "close")[0].1.ret, 0);
    assert_eq!(notes_of(&evs, pid, "proc.exited")[0]["code"], "3");
    assert_nothing_left(socklab, &dir.text());
}

/// A 32-bit call (`int 0x80`): said once, not decoded; the program's own result unchanged.
#[test]
fn a_32_bit_call_is_reported_as_foreign() {
    let dir = TempDir::new("foreign");
    let Some((f, socklab)) = run_c(
        &dir,
        "run_foreign.c",
        &[],
        0,
        "i386's getpid returned the pid",
    ) else {
        return;
    };
    let evs = f.events();
    let pid = pid_of(&evs, "socket");
    let foreign = notes_of(&evs, pid, "proc.foreign");
    assert_eq!(foreign.len(), 1, "{evs:#?}");
    assert_eq!(foreign[0]["nr"], "20");
    assert_eq!(foreign[0]["pid"], pid.to_string());
    // The 64-bit calls around it are still decoded.
    assert_eq!(calls_of(&evs, pid, "socket")[0].1.ret, 3);
    assert_eq!(calls_of(&evs, pid, "close")[0].1.fd, Some(3));
    assert_nothing_left(socklab, &dir.text());
}

/// A program killed by SIGKILL with a listener open: 137, and (as root) the kernel closed the
/// listener as the process died.
#[test]
fn a_program_killed_by_sigkill() {
    let Some(python) = util::python3() else {
        util::skip("python3 is not installed (package python3)");
        return;
    };
    let dir = TempDir::new("sigkill");
    let script = dir.path("killed.py");
    std::fs::write(
        &script,
        "import os, socket\n\
         s = socket.socket()\ns.bind(('127.0.0.1', 0))\ns.listen()\n\
         os.kill(os.getpid(), 9)\n",
    )
    .unwrap();
    let (f, socklab) = run(
        &["--json"],
        &[&python.display().to_string(), &script.display().to_string()],
    );
    assert_no_panic(&f.stderr);
    assert_eq!(f.status.code(), Some(137), "128 + SIGKILL\n{}", f.stderr);
    let evs = f.events();
    let pid = pid_of(&evs, "listen");
    // kill(getpid(), SIGKILL) never returns: no call event, the process's end instead.
    assert!(calls_of(&evs, pid, "kill").is_empty());
    let killed = notes_of(&evs, pid, "proc.killed");
    assert_eq!(killed.len(), 1);
    assert_eq!(killed[0]["signal"], "SIGKILL");
    assert_nothing_left(socklab, &dir.text());
    if !is_root() {
        util::skip("needs root (the tracepoint checks)");
        return;
    }
    let local = calls_of(&evs, pid, "listen")[0].1.local.clone();
    let closed = evs.iter().any(|e| {
        matches!(&e.body, Body::State(st)
            if st.from == Some(TcpState::Listen) && st.to == TcpState::Close
                && st.local == local)
    });
    assert!(closed, "LISTEN -> CLOSE when the process died");
}

/// 1000 children: every one followed (its socket call, its exit) and reaped; socklab ends
/// with the program.
#[test]
fn a_thousand_children_are_followed_and_reaped() {
    let dir = TempDir::new("fork1000");
    let Some((f, socklab)) = run_c(
        &dir,
        "run_fork1000.c",
        &["-O1"],
        0,
        "all 1000 reaped with status 0",
    ) else {
        return;
    };
    let evs = f.events();
    let children: BTreeSet<u32> = evs
        .iter()
        .filter(|e| {
            e.syscall()
                .is_some_and(|sc| sc.name == "socket" && sc.ret == 3)
        })
        .map(|e| e.pid)
        .collect();
    assert_eq!(children.len(), 1000, "one socket call per child");
    let exited: BTreeSet<u32> = evs
        .iter()
        .filter(
            |e| matches!(&e.body, Body::Note(n) if n.key == "proc.exited" && n.args["code"] == "0"),
        )
        .map(|e| e.pid)
        .collect();
    assert!(children.is_subset(&exited), "every child's exit was seen");
    assert_nothing_left(socklab, &dir.text());
}

/// Files that are no programs: one line on stderr, 126 as a shell says it, nothing left.
#[test]
fn files_that_cannot_run() {
    let dir = TempDir::new("cannot");
    let junk = dir.path("junk");
    std::fs::write(&junk, b"\x7fELF and then nothing").unwrap();
    let plain = dir.path("plain");
    std::fs::write(&plain, b"#!/bin/sh\nexit 0\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    for (file, errno) in [(&junk, libc::ENOEXEC), (&plain, libc::EACCES)] {
        let file = file.display().to_string();
        let (f, socklab) = run(&["--json"], &[&file]);
        assert_no_panic(&f.stderr);
        assert_eq!(f.status.code(), Some(126), "{file}: {}", f.stderr);
        let lines: Vec<&str> = f.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {}", f.stderr);
        let reason = std::io::Error::from_raw_os_error(errno).to_string();
        let reason = reason.split(" (os error").next().unwrap();
        assert!(
            lines[0].contains(&file) && lines[0].contains(reason),
            "{}",
            lines[0]
        );
        assert!(
            f.events().is_empty(),
            "no events from a program that never ran"
        );
        assert_nothing_left(socklab, &dir.text());
    }
}

/// The tracer lets a file's reads run without an exit stop (the descriptor is known not to be
/// a socket): a socket that later gets the same descriptor number is still seen.
#[test]
fn a_socket_on_a_files_old_descriptor_is_seen() {
    let Some(python) = util::python3() else {
        util::skip("python3 is not installed (package python3)");
        return;
    };
    let script = fixture("run_fd_reuse.py").display().to_string();
    let (f, socklab) = run(&["--json"], &[&python.display().to_string(), &script]);
    assert_no_panic(&f.stderr);
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    let fd: i32 = f
        .stdout
        .iter()
        .find_map(|l| l.trim().parse().ok())
        .expect("the script prints the descriptor number");
    let evs = f.events();
    let pid = pid_of(&evs, "socketpair");
    let reads: Vec<_> = calls_of(&evs, pid, "read")
        .into_iter()
        .filter(|(_, sc)| sc.fd == Some(fd))
        .map(|(_, sc)| sc.ret)
        .collect();
    assert_eq!(reads, [2], "only the socket's read of \"hi\" on fd {fd}");
    assert_nothing_left(socklab, &script);
}

/// The wait4 calls socklab's tracer makes while `program` runs with `stdin` (strace watches
/// the tracer; each stop of the program is one of them). None when strace is missing.
fn tracer_waits(program: &[&str], stdin: std::process::Stdio) -> Option<usize> {
    let Some(strace) = util::tool("strace") else {
        util::skip("strace is not installed (package strace)");
        return None;
    };
    let dir = TempDir::new("waits");
    let log = dir.path("wait4.log");
    let out = Command::new(strace)
        .args(["-qq", "-e", "trace=wait4", "-o"])
        .arg(&log)
        .arg(socklab_exe())
        .args(["--quiet", "run", "--no-kernel", "--no-packets", "--"])
        .args(program)
        .stdin(stdin)
        .output()
        .expect("strace runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    Some(text.lines().filter(|l| l.starts_with("wait4(")).count())
}

/// A program's file I/O does not stop (its filter lets reads and writes run on descriptors
/// that are not sockets'), while the same reads on a socket inherited as stdin all stop.
#[test]
fn file_io_makes_no_stops_socket_io_does() {
    let dd = ["dd", "if=/dev/zero", "of=/dev/null", "bs=512", "count=2000"];
    let Some(files) = tracer_waits(&dd, std::process::Stdio::null()) else {
        return;
    };
    // Some stops remain: dd's start (openat, fcntl, dup2) and its end.
    assert!(
        files < 1000,
        "{files} stops for 4,000 reads and writes of files"
    );
    let (mine, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let feeder = std::thread::spawn(move || {
        let mut mine = mine;
        std::io::Write::write_all(&mut mine, &[b'x'; 512 * 2000]).unwrap();
    });
    let from_socket = [
        "dd",
        "of=/dev/null",
        "bs=512",
        "count=2000",
        "iflag=fullblock",
    ];
    let socket_waits = tracer_waits(
        &from_socket,
        std::process::Stdio::from(std::os::fd::OwnedFd::from(theirs)),
    )
    .expect("strace was there a moment ago");
    feeder.join().unwrap();
    assert!(
        socket_waits >= 2000,
        "{socket_waits} stops for 2,000 reads of a socket"
    );
}

/// A socket received with recvmmsg (SCM_RIGHTS) on a number no socket had: the program's
/// read from it stops and is on the timeline, with what the kernel returned (the tracer adds
/// a filter for the received number as it does for recvmsg's).
#[test]
fn a_socket_received_with_recvmmsg_is_traced() {
    let dir = TempDir::new("recvmmsg");
    let Some((f, _)) = run_c(
        &dir,
        "run_recvmmsg_fds.c",
        &["-O1"],
        0,
        "the received socket read what was sent",
    ) else {
        return;
    };
    let evs = f.events();
    let pid = pid_of(&evs, "recvmmsg");
    let (_, recv) = calls_of(&evs, pid, "recvmmsg")[0];
    assert_eq!(recv.ret, 1, "{recv:?}");
    let reads: Vec<_> = calls_of(&evs, pid, "read")
        .into_iter()
        .map(|(_, sc)| (sc.fd, sc.ret))
        .collect();
    assert_eq!(reads.len(), 1, "{reads:?}");
    let (fd, ret) = reads[0];
    assert!(fd.is_some_and(|fd| fd > 64), "{reads:?}");
    assert_eq!(ret, 4);
}

/// A sendmmsg's destinations reach the capture's filter before the call goes on: both
/// datagrams of the first call to a port are on the timeline.
#[test]
fn a_sendmmsg_destination_is_captured_from_the_first_datagram() {
    if !is_root() {
        util::skip("needs root (the capture)");
        return;
    }
    let dir = TempDir::new("sendmmsg_to");
    let Some(exe) = compile(&dir, "run_sendmmsg_to.c", &["-O1"]) else {
        return;
    };
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = rx.local_addr().unwrap().to_string();
    let port = rx.local_addr().unwrap().port().to_string();
    let (f, socklab) = run(&["--json"], &[&exe.display().to_string(), &port]);
    assert_no_panic(&f.stderr);
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    let mut buf = [0u8; 16];
    assert_eq!(
        rx.recv(&mut buf).unwrap(),
        5,
        "the kernel delivered the first"
    );
    let evs = f.events();
    let lens: Vec<u32> = evs
        .iter()
        .filter_map(|e| match &e.body {
            Body::Packet(p) if p.dst == to => Some(p.len),
            _ => None,
        })
        .collect();
    assert_eq!(
        lens,
        [5, 6],
        "both datagrams on the wire lane\n{}",
        f.stderr
    );
    assert_nothing_left(socklab, &dir.text());
}
