//! `socklab run -- PROGRAM`: programs the lab did not write, on its timeline. Each test runs
//! the real binary and checks what the kernel did (the states TCP_INFO read through the
//! program's own descriptors, the tracepoint's transitions and the packets as root, exit
//! statuses), never the text socklab printed.

mod util;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

use socklab::{Body, Event, Lane, Role, TcpState};
use util::{Finished, Proc, TIMEOUT, assert_no_panic, calls_of, is_root, pid_of, socklab_exe};

/// `socklab [global...] run [flags...] -- program...`, run to its end.
fn run(global: &[&str], program: &[&str]) -> Finished {
    let mut cmd = Command::new(socklab_exe());
    cmd.args(global).arg("run").arg("--").args(program);
    Proc::spawn(cmd).finish()
}

#[test]
fn the_programs_exit_status_is_socklabs() {
    let f = run(&["--quiet"], &["sh", "-c", "exit 7"]);
    assert_eq!(f.status.code(), Some(7), "{}", f.stderr);
    let f = run(&["--quiet"], &["sh", "-c", "kill -9 $$"]);
    assert_eq!(f.status.code(), Some(137), "128 + SIGKILL\n{}", f.stderr);
    let f = run(&[], &["socklab-no-such-program"]);
    assert_no_panic(&f.stderr);
    assert_eq!(f.status.code(), Some(127), "{}", f.stderr);
    let line: Vec<&str> = f.stderr.lines().collect();
    assert_eq!(line.len(), 1, "one line: {}", f.stderr);
    assert!(line[0].contains("command not found"), "{}", f.stderr);
}

/// The seed's Python server and client, started by one shell: both processes on one
/// timeline, each on its role's lane, with the states the kernel reported.
#[test]
fn the_seeds_python_exchange_is_traced() {
    let Some(python) = util::python3() else {
        util::skip("python3 is not installed (package python3)");
        return;
    };
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed_server_client.py");
    let port = util::free_port().to_string();
    let (py, seed) = (python.display().to_string(), seed.display().to_string());
    // The server says when it listens (a probe connection would end the seed's server: it
    // stops at the first empty message).
    let out = std::env::temp_dir().join(format!("socklab-run-seed-{}", std::process::id()));
    let out = out.display().to_string();
    let script = format!(
        "\"{py}\" -u \"{seed}\" server 127.0.0.1 -p {port} > \"{out}\" & s=$!; \
         for i in $(seq 200); do grep -q listening \"{out}\" && break; sleep 0.05; done; \
         echo hi | \"{py}\" \"{seed}\" client 127.0.0.1 -p {port}; kill $s; wait $s; \
         rm -f \"{out}\"; exit 0"
    );
    let f = run(&["--json"], &["sh", "-c", &script]);
    assert_no_panic(&f.stderr);
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    let evs = f.events();
    let server = pid_of(&evs, "listen");
    let client = evs
        .iter()
        .filter(|e| e.pid != server)
        .find(|e| {
            e.syscall().is_some_and(|sc| {
                sc.name == "connect" && sc.errno.is_none() && e.lane == Lane::Client
            }) && e.syscall().and_then(|sc| sc.remote.as_deref())
                == Some(&format!("127.0.0.1:{port}"))
        })
        .map(|e| e.pid)
        .expect("the seed client's connect");
    assert_ne!(server, client, "two processes");

    let (listen_ev, listen) = calls_of(&evs, server, "listen")[0];
    assert_eq!(listen.tcp_state, Some(TcpState::Listen), "{listen:?}");
    assert_eq!(listen_ev.role, Some(Role::Server));
    assert_eq!(listen_ev.lane, Lane::Server);
    let accepts: Vec<_> = calls_of(&evs, server, "accept4")
        .into_iter()
        .filter(|(_, sc)| sc.ret >= 0)
        .collect();
    assert_eq!(accepts.len(), 1, "one connection");
    let (accept_ev, accept) = accepts[0];
    assert_eq!(accept.tcp_state, Some(TcpState::Established), "{accept:?}");
    // The inet connect (the C library may first try nscd's Unix socket for a name lookup).
    let (connect_ev, connect) = calls_of(&evs, client, "connect")
        .into_iter()
        .find(|(_, sc)| sc.remote.is_some())
        .expect("the client's connect to the server");
    assert_eq!(
        connect.tcp_state,
        Some(TcpState::Established),
        "{connect:?}"
    );
    assert_eq!(connect_ev.lane, Lane::Client);
    // The two ends of one connection: the client's local address is the server's peer.
    let client_end = evs
        .iter()
        .filter(|e| e.pid == client)
        .filter_map(|e| e.syscall())
        .find_map(|sc| sc.local.clone())
        .expect("the client's local address");
    assert_eq!(accept.remote.as_deref(), Some(client_end.as_str()));

    if !is_root() {
        util::skip("needs root (the tracepoint and packet checks)");
        return;
    }
    // The tracepoint: the server's child reached ESTABLISHED before accept4 returned it.
    let established = evs
        .iter()
        .find(|e| {
            e.pid == server
                && matches!(&e.body, Body::State(st)
                    if st.to == TcpState::Established
                        && st.remote.as_deref() == Some(client_end.as_str()))
        })
        .expect("the server side's ESTABLISHED from the tracepoint");
    assert!(
        established.t < accept_ev.t,
        "ESTABLISHED before accept4 returned"
    );
    // Whichever side closed first (the server closes after its reply; the client as Python
    // exits, which can come first on a busy machine) ends in TIME_WAIT.
    let closer = evs
        .iter()
        .find(|e| {
            matches!(&e.body, Body::State(st)
                if st.to == TcpState::FinWait1
                    && [st.local.as_deref(), st.remote.as_deref()].contains(&Some(client_end.as_str())))
        })
        .map(|e| e.pid)
        .expect("a FIN_WAIT1 on one side");
    let time_wait = evs.iter().any(|e| {
        e.pid == closer
            && matches!(&e.body, Body::State(st)
                if st.to == TcpState::TimeWait
                    && [st.local.as_deref(), st.remote.as_deref()].contains(&Some(client_end.as_str())))
    });
    assert!(time_wait, "TIME_WAIT on the active closer");
    // The packets of that connection, the handshake first.
    let flags: Vec<&str> = evs
        .iter()
        .filter_map(|e| match &e.body {
            Body::Packet(p) if p.src == client_end || p.dst == client_end => p.flags.as_deref(),
            _ => None,
        })
        .collect();
    assert_eq!(&flags[..3], ["SYN", "SYN|ACK", "ACK"], "{flags:?}");
}

/// A forking server the lab did not start: its child's calls are its own process's, on the
/// server's lane, and every process is reaped.
#[test]
fn a_forking_servers_children_are_followed() {
    let port = util::free_port().to_string();
    let mut cmd = Command::new(socklab_exe());
    cmd.args(["--json", "run", "--"]).arg(socklab_exe()).args([
        "--quiet", "server", "--model", "fork", "--mode", "echo", "--count", "2", "-p", &port,
    ]);
    let proc = Proc::spawn(cmd);
    for msg in ["one", "two"] {
        let mut s = util::connect_when_listening(port.parse().unwrap());
        s.write_all(msg.as_bytes()).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut back = String::new();
        s.read_to_string(&mut back).unwrap();
        assert_eq!(back, msg);
    }
    let f = proc.finish();
    assert_no_panic(&f.stderr);
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    let evs = f.events();
    let server = pid_of(&evs, "listen");
    let children: BTreeSet<u32> = evs
        .iter()
        .filter(|e| e.pid != server && e.syscall().is_some_and(|sc| sc.name == "read"))
        .map(|e| e.pid)
        .collect();
    assert_eq!(children.len(), 2, "one child per connection: {children:?}");
    for &child in &children {
        let reads = calls_of(&evs, child, "read");
        assert!(reads.iter().all(|(e, _)| e.lane == Lane::Server));
        assert!(
            reads.iter().any(|(_, sc)| sc.ret == 3),
            "the child read the message"
        );
    }
    // Both children were reaped by the server: wait4 returned each one.
    let reaped: BTreeSet<u32> = calls_of(&evs, server, "wait4")
        .iter()
        .filter(|(_, sc)| sc.ret > 0)
        .map(|(_, sc)| sc.ret as u32)
        .collect();
    assert_eq!(reaped, children);
}

/// `--pid`: attached to a server that was already running, socklab sees its accept and its
/// reads; Ctrl-C detaches and the server goes on, no longer traced.
#[test]
fn attached_to_a_running_server_then_detached() {
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").unwrap_or_default();
    if !is_root() && scope.trim().parse::<u8>().is_ok_and(|s| s >= 1) {
        util::skip("Yama's ptrace_scope lets an ordinary user trace only its own descendants");
        return;
    }
    let port = util::free_port();
    let mut server = Command::new(socklab_exe());
    server.args(["--quiet", "server", "-p", &port.to_string()]);
    let mut server = Proc::spawn(server);
    server.wait_for(|l| l.starts_with("Server is running").then_some(()));
    let spid = server.pid();
    let mut cmd = Command::new(socklab_exe());
    cmd.args(["--json", "run", "--pid", &spid.to_string()]);
    let mut tracer = Proc::spawn(cmd);
    let tracer_pid = tracer.pid();
    // socklab says when every thread has stopped under it once: from then each call is seen.
    tracer.wait_stderr("attached to process");
    assert_eq!(traced_by(spid), tracer_pid);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"ping").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("received well"), "{reply}");
    util::sigint(tracer_pid, false);
    let f = tracer.finish();
    assert_no_panic(&f.stderr);
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    // Detached, and still serving.
    assert_eq!(traced_by(spid), 0);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"again").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("received well"), "{reply}");
    let evs = f.events();
    let accept = calls_of(&evs, spid, "accept4")
        .into_iter()
        .find(|(_, sc)| sc.ret >= 0)
        .map(|(e, sc)| (e.lane, sc.tcp_state))
        .expect("the accept made while attached");
    assert_eq!(accept, (Lane::Server, Some(TcpState::Established)));
    let read = calls_of(&evs, spid, "read")
        .into_iter()
        .find(|(_, sc)| sc.ret == 4)
        .expect("the server's read of ping");
    assert_eq!(read.1.fd, Some(accept_fd(&evs, spid)));
    drop(server);
}

/// The tracer of `pid` (`TracerPid:` in its status), 0 for none.
fn traced_by(pid: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("TracerPid:"))
                .and_then(|v| v.trim().parse::<u32>().ok())
        })
        .unwrap_or(0)
}

fn accept_fd(evs: &[Event], pid: u32) -> i32 {
    calls_of(evs, pid, "accept4")
        .into_iter()
        .find(|(_, sc)| sc.ret >= 0)
        .map(|(_, sc)| sc.ret as i32)
        .unwrap()
}

/// `--pid` of a process that is gone, or already traced: one line, exit 1, nothing started.
#[test]
fn attach_refusals_are_one_clear_line() {
    // A pid that no process has: one that just ended and was reaped.
    let mut gone = Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    let f = run_pid(gone_pid);
    assert_eq!(f.status.code(), Some(1), "{}", f.stderr);
    assert!(f.stderr.contains("no such process"), "{}", f.stderr);
    assert_eq!(f.stderr.lines().count(), 1, "{}", f.stderr);

    // A process this test already traces: a process has one tracer at a time (EPERM).
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = nix::unistd::Pid::from_raw(sleeper.id() as i32);
    nix::sys::ptrace::seize(pid, nix::sys::ptrace::Options::empty()).unwrap();
    let f = run_pid(sleeper.id());
    let _ = nix::sys::ptrace::detach(pid, None);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_eq!(f.status.code(), Some(1), "{}", f.stderr);
    assert!(f.stderr.contains("EPERM"), "{}", f.stderr);
    assert!(f.stderr.contains("already traces it"), "{}", f.stderr);
}

fn run_pid(pid: u32) -> Finished {
    let mut cmd = Command::new(socklab_exe());
    cmd.args(["run", "--pid", &pid.to_string()]);
    Proc::spawn(cmd).finish()
}

/// `--pcap` under run: the capture keeps the ports the program names, the file its own
/// packets only (tcpdump reads back as many as the timeline shows, none of the test's own
/// traffic on another port).
#[test]
fn the_pcap_file_holds_the_programs_packets_only() {
    if !is_root() {
        util::skip("needs root (the capture)");
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Other traffic on loopback meanwhile, on another port.
    let noise = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let noise_addr = noise.local_addr().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let chatter = std::thread::spawn(move || {
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let _c = TcpStream::connect(noise_addr);
            let _ = noise.accept();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    });
    let pcap = std::env::temp_dir().join(format!("socklab-run-{}.pcap", std::process::id()));
    let script = format!("exec 3<>/dev/tcp/127.0.0.1/{port}; echo hi >&3; exec 3>&-; sleep 0.2");
    let mut cmd = Command::new(socklab_exe());
    cmd.args(["--json", "run", "--pcap"])
        .arg(&pcap)
        .args(["--", "bash", "-c", &script]);
    let proc = Proc::spawn(cmd);
    let (conn, _) = listener.accept().unwrap();
    let f = proc.finish();
    drop(conn);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    chatter.join().unwrap();
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    let packets = f
        .events()
        .iter()
        .filter(|e| matches!(e.body, Body::Packet(_)))
        .count();
    assert!(packets >= 3, "the handshake at least: {packets}");
    let read_back = util::tcpdump_count(&pcap);
    let _ = std::fs::remove_file(&pcap);
    if let Some(n) = read_back {
        assert_eq!(n, packets, "the file holds what the timeline shows");
    }
}

/// `--step`: the program waits before each socket call until Enter. Held before connect, no
/// connection reaches the listener's queue; after Enter it does.
#[test]
fn step_holds_the_program_before_each_socket_call() {
    use std::process::Stdio;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!("exec 3<>/dev/tcp/127.0.0.1/{port}; exec 3>&-");
    let mut child = Command::new(socklab_exe())
        .args(["--json", "run", "--step", "--", "bash", "-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::BufReader::new(stdout).read_to_string(&mut s);
        s
    });
    let pauses = util::line_channel(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    util::line_starting(&pauses, &mut seen, "bash[");
    assert!(seen.last().unwrap().contains("socket("), "{seen:?}");
    stdin.write_all(b"\n").unwrap();
    // The prompt has no line end: the next pause's line follows it. Other pauses first (the
    // C library may look for nscd's Unix socket) are answered.
    let target = format!("127.0.0.1:{port}");
    loop {
        let line = util::line_starting(&pauses, &mut seen, "");
        if line.contains("connect(") && line.contains(&target) {
            break;
        }
        if line.contains("Paused before") {
            stdin.write_all(b"\n").unwrap();
        }
    }
    // Held before connect: nothing waits in the accept queue, even after a while.
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        listener.accept().map(|_| ()).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::WouldBlock),
        "no connection while held"
    );
    stdin.write_all(b"q\n").unwrap();
    let deadline = std::time::Instant::now() + TIMEOUT;
    let accepted = loop {
        match listener.accept() {
            Ok(c) => break c,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("no connection after the answer: {e}"),
        }
    };
    drop(accepted);
    drop(stdin);
    let status = util::wait_exit(&mut child, TIMEOUT).expect("socklab ended");
    assert_eq!(status.code(), Some(0));
    let evs = util::events(
        &out.join()
            .unwrap()
            .lines()
            .map(String::from)
            .collect::<Vec<_>>(),
    );
    assert!(
        evs.iter().any(|e| e
            .syscall()
            .is_some_and(|sc| sc.name == "connect" && sc.ret == 0)),
        "the connect made after the pause"
    );
}

/// readv, writev, sendfile and splice on sockets are decoded (their data, from the program's
/// memory) and probed like the other data calls.
#[test]
fn vector_and_zero_copy_calls_are_decoded() {
    let Some(python) = util::python3() else {
        util::skip("python3 is not installed (package python3)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("socklab-run-vec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("payload");
    std::fs::write(&file, b"from a file").unwrap();
    let script = format!(
        "import os, socket\n\
         a, b = socket.socketpair()\n\
         s = socket.create_server(('127.0.0.1', 0)); c = socket.create_connection(s.getsockname()); d, _ = s.accept()\n\
         os.writev(c.fileno(), [b'he', b'llo'])\n\
         got = os.readv(d.fileno(), [bytearray(2), bytearray(8)])\n\
         assert got == 5, got\n\
         f = open({file:?}, 'rb'); os.sendfile(c.fileno(), f.fileno(), 0, 11)\n\
         assert d.recv(64) == b'from a file'\n\
         r, w = os.pipe(); os.write(w, b'piped'); os.splice(r, c.fileno(), 5)\n\
         assert d.recv(64) == b'piped'\n"
    );
    let f = run(&["--json"], &[&python.display().to_string(), "-c", &script]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    let evs = f.events();
    let pid = pid_of(&evs, "socketpair");
    let one = |name: &str| {
        calls_of(&evs, pid, name)
            .first()
            .map(|(_, sc)| (*sc).clone())
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let writev = one("writev");
    assert_eq!(writev.ret, 5);
    assert_eq!(
        util::arg(&writev, "iov"),
        r#"[{iov_base="he", iov_len=2}, {iov_base="llo", iov_len=3}]"#
    );
    assert_eq!(writev.tcp_state, Some(TcpState::Established));
    let readv = one("readv");
    assert_eq!(readv.ret, 5);
    assert_eq!(
        util::arg(&readv, "iov"),
        r#"[{iov_base="he", iov_len=2}, {iov_base="llo", iov_len=8}]"#
    );
    let sendfile = one("sendfile");
    assert_eq!((sendfile.ret, sendfile.fd), (11, writev.fd));
    let splice = one("splice");
    assert_eq!(splice.ret, 5);
    assert_eq!(
        splice.args.get("fd_out"),
        writev.fd.map(serde_json::Value::from).as_ref()
    );
}

/// `--live`: each event is on stdout while the program still runs (the server's listen
/// before any client came), once, and the kernel's side of the connection follows.
#[test]
fn live_events_come_while_the_program_runs() {
    let port = util::free_port();
    let mut cmd = Command::new(socklab_exe());
    cmd.args(["--json", "run", "--live", "--"])
        .arg(socklab_exe())
        .args(["--quiet", "server", "--count", "1", "-p", &port.to_string()]);
    let mut proc = Proc::spawn(cmd);
    let is_call = |line: &str, name: &str| {
        serde_json::from_str::<Event>(line)
            .ok()
            .and_then(|e| e.syscall().map(|sc| sc.name == name && !sc.failed()))
            .unwrap_or(false)
    };
    // The listen shows before the lab's client connects: the server waits in accept4.
    let listen = proc.wait_for(|l| is_call(l, "listen").then(|| l.to_string()));
    let listen: Event = serde_json::from_str(&listen).unwrap();
    assert_eq!(listen.syscall().unwrap().tcp_state, Some(TcpState::Listen));
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"live").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("received well"), "{reply}");
    let f = proc.finish();
    assert_no_panic(&f.stderr);
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    let evs = f.events();
    let server = listen.pid;
    assert_eq!(calls_of(&evs, server, "listen").len(), 1, "shown once");
    let accepts: Vec<_> = calls_of(&evs, server, "accept4")
        .into_iter()
        .filter(|(_, sc)| sc.ret >= 0)
        .collect();
    assert_eq!(accepts.len(), 1);
    assert_eq!(accepts[0].1.tcp_state, Some(TcpState::Established));
    // The kernel's states of that connection are on the live timeline too, as the server's
    // (from the tracepoint: sock_diag snapshots, without root, may miss so short a state).
    if is_root() {
        let client_end = s.local_addr().unwrap().to_string();
        let established = evs.iter().any(|e| {
            e.pid == server
                && matches!(&e.body, Body::State(st)
                    if st.to == TcpState::Established && st.remote.as_deref() == Some(client_end.as_str()))
        });
        assert!(established, "the server side's ESTABLISHED, placed live");
    } else {
        util::skip("the kernel's ESTABLISHED of a live run is checked as root (tracepoint)");
    }
    // In time order.
    assert!(evs.windows(2).all(|w| w[0].t <= w[1].t));
}

/// A busy connection's data calls are probed as the wrappers probe theirs: every call at
/// first, then sampled (one note says so); `--probe-all` probes every one.
#[test]
fn a_busy_connections_probes_are_sampled_unless_probe_all() {
    const ROUNDS: usize = 1000;
    for probe_all in [false, true] {
        let port = util::free_port();
        let mut cmd = Command::new(socklab_exe());
        cmd.arg("--json");
        if probe_all {
            cmd.arg("--probe-all");
        }
        cmd.args(["run", "--no-kernel", "--no-packets", "--"])
            .arg(socklab_exe())
            .args(["--quiet", "server", "--model", "epoll", "--mode", "echo"])
            .args(["--count", "1", "-p", &port.to_string()]);
        let proc = Proc::spawn(cmd);
        let mut s = util::connect_when_listening(port);
        for _ in 0..ROUNDS {
            s.write_all(b"x").unwrap();
            let mut b = [0u8; 1];
            s.read_exact(&mut b).unwrap();
        }
        drop(s);
        let f = proc.finish();
        assert_no_panic(&f.stderr);
        assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
        let evs = f.events();
        let server = pid_of(&evs, "listen");
        let conn = accept_fd(&evs, server);
        let mut data: Vec<_> = calls_of(&evs, server, "read")
            .into_iter()
            .chain(calls_of(&evs, server, "write"))
            .filter(|(_, sc)| sc.fd == Some(conn) && sc.ret > 0)
            .collect();
        data.sort_by_key(|(e, _)| e.t);
        let data: Vec<&socklab::event::Syscall> = data.into_iter().map(|(_, sc)| sc).collect();
        assert_eq!(data.len(), 2 * ROUNDS, "a read and a write per round");
        // The first data calls are all probed (they come before the sampling starts).
        assert!(data[..100].iter().all(|sc| sc.tcp_state.is_some()));
        let probed = data.iter().filter(|sc| sc.tcp_state.is_some()).count();
        let sampled_notes = evs
            .iter()
            .filter(|e| matches!(&e.body, Body::Note(n) if n.key == "probe.sampled"))
            .count();
        if probe_all {
            assert_eq!((probed, sampled_notes), (2 * ROUNDS, 0));
        } else {
            // At most one probe a millisecond: of 2,000 calls some come sooner than that.
            assert!(probed < 2 * ROUNDS, "{probed} of {} probed", 2 * ROUNDS);
            assert_eq!(sampled_notes, 1);
        }
    }
}

/// `--step` pauses before a wait on sockets too (poll, select), where the descriptors are
/// in the program's memory rather than in an argument.
#[test]
fn step_pauses_before_a_wait_on_a_socket() {
    use std::process::Stdio;
    let Some(python) = util::python3() else {
        util::skip("python3 is not installed (package python3)");
        return;
    };
    let script = "import socket, select\n\
                  s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)\n\
                  p = select.poll(); p.register(s, select.POLLIN); p.poll(0)\n\
                  select.select([s], [], [], 0)\n\
                  s.close()\n";
    let mut child = Command::new(socklab_exe())
        .args(["--json", "run", "--step", "--"])
        .arg(&python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // At each pause, what the kernel says the program is doing (`/proc/PID/syscall`: the
    // number of the call it is stopped in), then Enter.
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let lines = util::line_channel(child.stderr.take().unwrap());
    let mut stderr = String::new();
    let mut in_kernel = Vec::new();
    while let Ok(line) = lines.recv_timeout(TIMEOUT) {
        stderr.push_str(&line);
        stderr.push('\n');
        let Some((who, call)) = line.split_once("  Paused before ") else {
            continue;
        };
        let pid = who.rsplit('[').next().and_then(|p| p.strip_suffix(']'));
        let nr = pid
            .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok())
            .and_then(|s| s.split(' ').next()?.parse::<i64>().ok());
        let name = call.split('(').next().unwrap_or_default();
        in_kernel.push((name.to_string(), nr));
        stdin.write_all(b"\n").unwrap();
    }
    drop(stdin);
    let status = util::wait_exit(&mut child, TIMEOUT).expect("socklab ended");
    let _ = out.join();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let nr_of = |name: &str| match name {
        "poll" => Some(libc::SYS_poll),
        "select" => Some(libc::SYS_select),
        "pselect6" => Some(libc::SYS_pselect6),
        _ => None,
    };
    let waits: Vec<_> = in_kernel
        .iter()
        .filter_map(|(name, nr)| Some((nr_of(name)?, *nr)))
        .collect();
    if waits.iter().all(|(_, nr)| nr.is_none()) {
        util::skip("/proc/PID/syscall is not readable here (needs ptrace access)");
    } else {
        for (want, nr) in &waits {
            assert_eq!(*nr, Some(*want), "held in the wait: {in_kernel:?}");
        }
    }
    let paused: Vec<&str> = in_kernel.iter().map(|(n, _)| n.as_str()).collect();
    // The interpreter may look for nscd's socket first: from the listen on, the script's own.
    let from = paused.iter().position(|p| *p == "listen");
    let tail = from.map(|i| &paused[i..]).unwrap_or_default();
    assert!(
        tail == ["listen", "poll", "pselect6", "close"]
            || tail == ["listen", "poll", "select", "close"],
        "{paused:?}"
    );
}
