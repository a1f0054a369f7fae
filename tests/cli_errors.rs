//! The command line when things go wrong: each failure is one line naming the errno, exit 1
//! (2 for a usage error), never a panic; a peer that resets or vanishes never kills socklab
//! with SIGPIPE; Ctrl-C closes the listener and exits 0.
//!
//! The error line and the exit code are the interface, so they are checked as text; the rest
//! is checked against the kernel's answers as the `--json` events record them.

mod util;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use assert_cmd::assert::Assert;
use nix::sys::signal::{Signal, kill};
use nix::sys::socket::{self, sockopt};
use nix::unistd::Pid;
use predicates::prelude::*;
use socklab::Event;
use socklab::event::Syscall;

use util::{Finished, Proc, TIMEOUT, arg, assert_no_panic, calls, free_port, socklab_exe};

fn socklab(args: &[&str]) -> Assert {
    assert_cmd::Command::new(socklab_exe())
        .args(args)
        .timeout(TIMEOUT)
        .assert()
}

fn stderr_of(a: &Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

/// The one `socklab: ...` error line; fails on a panic or on a second error line.
fn error_line(stderr: &str) -> String {
    assert_no_panic(stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("socklab: "))
        .collect();
    assert_eq!(errors.len(), 1, "want one error line, stderr: {stderr}");
    errors[0].to_string()
}

/// Asserts the process exited by itself (no signal) with `code`.
fn assert_exit(f: &Finished, code: i32) {
    assert_eq!(
        f.status.signal(),
        None,
        "killed by a signal; stderr: {}",
        f.stderr
    );
    assert_eq!(f.status.code(), Some(code), "stderr: {}", f.stderr);
}

/// Turns on SO_LINGER with a 0 timeout: dropping `s` then sends RST instead of FIN.
fn linger_zero(s: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    socket::setsockopt(s, sockopt::Linger, &l).expect("SO_LINGER");
}

fn syscalls(evs: &[Event]) -> Vec<&Syscall> {
    evs.iter().filter_map(Event::syscall).collect()
}

#[test]
fn invalid_host_is_a_usage_error() {
    for args in [
        &["client", "no.such.host.invalid", "-m", "hi"][..],
        &["server", "no.such.host.invalid", "--count", "1"][..],
    ] {
        let a = socklab(args).code(2).stdout(predicate::str::is_empty());
        let err = stderr_of(&a);
        assert_no_panic(&err);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(
            err.starts_with("socklab: invalid host 'no.such.host.invalid'"),
            "{err}"
        );
    }
}

#[test]
fn invalid_port_is_a_usage_error() {
    for args in [
        &["server", "-p", "70000"][..],
        &["client", "127.0.0.1", "-p", "70000", "-m", "hi"][..],
    ] {
        let a = socklab(args)
            .code(2)
            .stderr(predicate::str::contains("70000"));
        assert_no_panic(&stderr_of(&a));
    }
}

#[test]
fn port_in_use_is_eaddrinuse() {
    let held = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = held.local_addr().unwrap().port();
    let a = socklab(&[
        "--json",
        "server",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "--count",
        "1",
    ])
    .code(1);
    let err = stderr_of(&a);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    let line = error_line(&err);
    assert!(
        line.starts_with(&format!(
            "socklab: bind 127.0.0.1:{port} failed: EADDRINUSE"
        )),
        "{line}"
    );
    // The kernel's answer, as the lab recorded it.
    let evs = util::events(
        &String::from_utf8_lossy(&a.get_output().stdout)
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>(),
    );
    let bind = calls(&evs, "bind");
    assert_eq!(bind.len(), 1);
    assert_eq!(
        (bind[0].ret, bind[0].errno.as_deref()),
        (-1, Some("EADDRINUSE"))
    );
    assert!(
        calls(&evs, "listen").is_empty(),
        "no listen after a failed bind"
    );
}

#[test]
fn privileged_port_is_eacces_for_an_unprivileged_user() {
    let start: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024);
    if start <= 1 {
        util::skip(&format!(
            "ip_unprivileged_port_start is {start}: no port is privileged here"
        ));
        return;
    }
    let port = (start - 1).min(80).to_string();
    let args = ["server", "127.0.0.1", "-p", &port, "--count", "1"];
    let mut cmd = if nix::unistd::geteuid().is_root() {
        // Drop to nobody, and check first that nobody can run the binary at all.
        let mut probe = Command::new("setpriv");
        probe
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(socklab_exe())
            .arg("--version");
        match probe.output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                util::skip(&format!(
                    "user nobody cannot run {}: {}",
                    socklab_exe().display(),
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
                return;
            }
            Err(e) => {
                util::skip(&format!("setpriv is not available ({e})"));
                return;
            }
        }
        let mut cmd = assert_cmd::Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(socklab_exe());
        cmd
    } else {
        // Not root: this process has no CAP_NET_BIND_SERVICE unless given one.
        assert_cmd::Command::new(socklab_exe())
    };
    let a = cmd.args(args).timeout(TIMEOUT).assert();
    let err = stderr_of(&a);
    if !nix::unistd::geteuid().is_root() && a.get_output().status.success() {
        util::skip(&format!("this user may bind port {port} (a capability?)"));
        return;
    }
    a.code(1);
    let line = error_line(&err);
    assert!(
        line.starts_with(&format!("socklab: bind 127.0.0.1:{port} failed: EACCES")),
        "{line}"
    );
}

#[test]
fn connection_refused_is_econnrefused() {
    let port = free_port();
    let a = socklab(&[
        "--json",
        "client",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-m",
        "hi",
    ])
    .code(1);
    let line = error_line(&stderr_of(&a));
    assert!(
        line.starts_with(&format!(
            "socklab: connect 127.0.0.1:{port} failed: ECONNREFUSED"
        )),
        "{line}"
    );
    let out = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    let evs = util::events(&out.lines().map(str::to_string).collect::<Vec<_>>());
    let conn = calls(&evs, "connect");
    assert_eq!(conn.len(), 1);
    assert_eq!(
        (conn[0].ret, conn[0].errno.as_deref()),
        (-1, Some("ECONNREFUSED"))
    );
}

/// A test peer on a free port; the socklab client under test connects to it.
fn peer() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

fn accept(l: &TcpListener) -> TcpStream {
    let (s, _) = l.accept().expect("accept");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s
}

#[test]
fn client_read_after_peer_reset_is_econnreset() {
    let (l, addr) = peer();
    let mut cmd = Command::new(socklab_exe());
    cmd.args(["--json", "client", "127.0.0.1", "-p"])
        .arg(addr.port().to_string())
        .args(["-m", "ping"]);
    let client = Proc::spawn(cmd);
    let mut s = accept(&l);
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).expect("the client's message");
    assert_eq!(&buf, b"ping");
    // Nothing left unread; SO_LINGER 0 makes the close an RST while the client waits in read.
    linger_zero(&s);
    drop(s);

    let f = client.finish();
    assert_exit(&f, 1);
    let line = error_line(&f.stderr);
    assert!(
        line.starts_with(&format!("socklab: read {addr} failed: ECONNRESET")),
        "{line}"
    );
    let evs = f.events();
    let reads = calls(&evs, "read");
    assert_eq!(reads.len(), 1);
    assert_eq!(
        (reads[0].ret, reads[0].errno.as_deref()),
        (-1, Some("ECONNRESET"))
    );
}

#[test]
fn client_write_after_peer_reset_is_epipe_not_sigpipe() {
    let (l, addr) = peer();
    let mut cmd = Command::new(socklab_exe());
    cmd.args(["--json", "client", "127.0.0.1", "-p"])
        .arg(addr.port().to_string());
    // No -m: the client connects, then waits for its message on stdin.
    let mut client = Proc::spawn(cmd);
    client.wait_for(|l| {
        let ev = Event::from_json(l).ok()?;
        let sc = ev.syscall()?;
        (sc.name == "getsockname").then_some(())
    });
    let s = accept(&l);
    // FIN first (the client goes to CLOSE_WAIT), then RST: in CLOSE_WAIT the kernel records
    // EPIPE, so the client's next write fails with EPIPE and the kernel raises SIGPIPE.
    s.shutdown(std::net::Shutdown::Write).unwrap();
    linger_zero(&s);
    drop(s);
    thread::sleep(Duration::from_millis(100));
    client.send_stdin(b"too late\n");

    let f = client.finish();
    assert_exit(&f, 1);
    let line = error_line(&f.stderr);
    assert!(
        line.starts_with(&format!("socklab: write {addr} failed: EPIPE")),
        "{line}"
    );
    let evs = f.events();
    let writes = calls(&evs, "write");
    assert_eq!(writes.len(), 1);
    assert_eq!(
        (writes[0].ret, writes[0].errno.as_deref()),
        (-1, Some("EPIPE"))
    );
}

#[test]
fn server_serves_on_after_peers_reset() {
    let mut cmd = Command::new(socklab_exe());
    cmd.args([
        "--json",
        "server",
        "127.0.0.1",
        "-p",
        "0",
        "--count",
        "3",
        "--backlog",
        "8",
    ]);
    let mut server = Proc::spawn(cmd);
    let addr = server.wait_listening();

    // A is accepted first and holds the server in read() while B and C reset.
    let mut a = TcpStream::connect(addr).unwrap();
    a.set_read_timeout(Some(TIMEOUT)).unwrap();
    // B sends a message and resets; C resets without sending anything.
    let mut b = TcpStream::connect(addr).unwrap();
    b.write_all(b"bye").unwrap();
    linger_zero(&b);
    drop(b);
    let c = TcpStream::connect(addr).unwrap();
    let c_addr = c.local_addr().unwrap();
    linger_zero(&c);
    drop(c);
    thread::sleep(Duration::from_millis(100));
    a.write_all(b"hi").unwrap();
    let mut reply = Vec::new();
    a.read_to_end(&mut reply).unwrap();
    assert_eq!(
        reply,
        format!("received well {}", a.local_addr().unwrap()).as_bytes()
    );

    let f = server.finish();
    assert_exit(&f, 0);
    assert_no_panic(&f.stderr);
    assert!(
        !f.stderr.lines().any(|l| l.starts_with("socklab: ")),
        "no error line: {}",
        f.stderr
    );
    let evs = f.events();
    let scs = syscalls(&evs);
    let accepts: Vec<usize> = (0..scs.len())
        .filter(|&i| scs[i].name == "accept4" && !scs[i].failed())
        .collect();
    assert_eq!(accepts.len(), 3, "{scs:#?}");
    // The calls on each accepted connection, up to its close.
    let conn = |k: usize| -> Vec<&Syscall> {
        let fd = scs[accepts[k]].fd;
        scs[accepts[k] + 1..]
            .iter()
            .copied()
            .filter(|s| s.fd == fd)
            .take_while(|s| s.name != "close")
            .collect()
    };
    // B: the bytes that arrived before the RST are still read; the reply's write then
    // meets the reset.
    let b_calls = conn(1);
    let b_got: Vec<_> = b_calls
        .iter()
        .map(|s| (s.name.as_ref(), s.ret, s.errno.as_deref()))
        .collect();
    assert_eq!(
        b_got,
        [("read", 3, None), ("write", -1, Some("ECONNRESET"))],
        "B: {b_calls:#?}"
    );
    assert_eq!(arg(b_calls[0], "data"), "bye");
    // C: nothing was sent before the RST: the read fails with ECONNRESET.
    assert_eq!(arg(scs[accepts[2]], "addr"), c_addr.to_string());
    let c_calls = conn(2);
    assert_eq!(c_calls.len(), 1, "C: {c_calls:#?}");
    assert_eq!(
        (
            c_calls[0].name.as_ref(),
            c_calls[0].ret,
            c_calls[0].errno.as_deref()
        ),
        ("read", -1, Some("ECONNRESET"))
    );
}

#[test]
fn ctrl_c_closes_the_listener_and_exits_0() {
    let mut cmd = Command::new(socklab_exe());
    cmd.args(["--json", "server", "127.0.0.1", "-p", "0"]);
    let mut server = Proc::spawn(cmd);
    let addr = server.wait_listening();
    let pid = server.pid();
    // The signal must find it blocked in accept4 (events are written when calls return, so
    // ask the kernel where it sleeps).
    let wchan = format!("/proc/{pid}/wchan");
    let start = Instant::now();
    while !std::fs::read_to_string(&wchan).is_ok_and(|w| w.contains("accept")) {
        assert!(start.elapsed() < TIMEOUT, "server never blocked in accept4");
        thread::sleep(Duration::from_millis(2));
    }
    kill(Pid::from_raw(pid as i32), Signal::SIGINT).unwrap();

    let f = server.finish();
    assert_exit(&f, 0);
    assert_no_panic(&f.stderr);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "process {pid} is still there"
    );
    let evs = f.events();
    let scs = syscalls(&evs);
    let lfd = calls(&evs, "listen")[0].fd;
    let intr = scs
        .iter()
        .position(|s| s.name == "accept4" && s.errno.as_deref() == Some("EINTR"))
        .unwrap_or_else(|| panic!("no accept4 with EINTR: {scs:#?}"));
    assert_eq!(scs[intr].ret, -1);
    let close = scs[intr + 1..]
        .iter()
        .find(|s| s.name == "close" && s.fd == lfd)
        .unwrap_or_else(|| panic!("no close of the listener after EINTR: {scs:#?}"));
    assert_eq!((close.ret, close.errno.as_deref()), (0, None));
    // The kernel freed the port: binding it again works.
    TcpListener::bind(addr).expect("the port is free again");
}
