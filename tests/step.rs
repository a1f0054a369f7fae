//! Step mode (`--step`, `--step-delay MS`): driven through stdin it makes the same calls with
//! the same results as a normal run, plus one pause note before each; a paused server really
//! has not called accept4 (the kernel finished the handshake meanwhile: the test's own
//! sock_diag snapshot shows the connection in the accept queue); Ctrl-C at any pause ends the
//! run cleanly (an exit code, not a signal), with no child and no tracefs instance left.
//!
//! Every wait is bounded by `TIMEOUT`. The tracefs check needs root (the tracepoint); without
//! it the rest still runs.

mod util;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use socklab::observe::sock_diag;
use socklab::{Body, Event, TcpState};
use util::{TIMEOUT, assert_no_panic, events, instances_of, is_root, line_channel, socklab_exe};

/// A socklab run whose stdout and stderr are read line by line as they come, with stdin for
/// the answers. Dropping it kills and reaps the process.
struct Run {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Receiver<String>,
    err: Receiver<String>,
    stdout: Vec<String>,
    stderr: Vec<String>,
}

impl Run {
    /// `socklab --lang en ARGS`; in a process group of its own when `group` (as a terminal's
    /// Ctrl-C reaches the demo and its children).
    fn start(args: &[&str], group: bool) -> Run {
        let mut cmd = Command::new(socklab_exe());
        cmd.args(["--lang", "en"]).args(args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if group {
            cmd.process_group(0);
        }
        let mut child = cmd.spawn().expect("start socklab");
        let stdin = child.stdin.take();
        let out = line_channel(child.stdout.take().expect("piped"));
        let err = line_channel(child.stderr.take().expect("piped"));
        Run {
            child,
            stdin,
            out,
            err,
            stdout: Vec::new(),
            stderr: Vec::new(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next stdout line within `wait` (`None`: none came, or the output ended).
    fn out_within(&mut self, wait: Duration) -> Option<String> {
        let line = self.out.recv_timeout(wait).ok()?;
        self.stdout.push(line.clone());
        Some(line)
    }

    /// The next stdout event (panics after `TIMEOUT` or at the end of the output).
    fn next_event(&mut self) -> Event {
        match self.out_within(TIMEOUT) {
            Some(line) => Event::from_json(&line).unwrap_or_else(|e| panic!("{e}: {line}")),
            None => panic!(
                "no event within {TIMEOUT:?}; stderr so far:\n{}",
                self.stderr.join("\n")
            ),
        }
    }

    /// The next stderr line that starts with `prefix` (panics after `TIMEOUT` or at the end).
    fn err_line(&mut self, prefix: &str) -> String {
        util::line_starting(&self.err, &mut self.stderr, prefix)
    }

    fn answer(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin
            .write_all(format!("{text}\n").as_bytes())
            .expect("write the answer");
        stdin.flush().expect("flush");
    }

    /// Closes stdin, waits for the exit (bounded); the status, every stdout line, stderr.
    fn finish(mut self) -> (ExitStatus, Vec<String>, String) {
        self.stdin = None;
        let Some(status) = util::wait_exit(&mut self.child, TIMEOUT) else {
            panic!(
                "socklab did not exit within {TIMEOUT:?}; stderr:\n{}",
                self.stderr.join("\n")
            );
        };
        // The readers end with the pipes (a demo's children are gone with it).
        let drain = |rx: &Receiver<String>, into: &mut Vec<String>| loop {
            match rx.recv_timeout(TIMEOUT) {
                Ok(l) => into.push(l),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("a pipe stayed open after the exit"),
            }
        };
        drain(&self.out, &mut self.stdout);
        drain(&self.err, &mut self.stderr);
        (
            status,
            std::mem::take(&mut self.stdout),
            self.stderr.join("\n"),
        )
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        util::reap(&mut self.child);
    }
}

/// Runs socklab to the end with `input` on stdin; exit status, events, stderr.
fn run_with_input(args: &[&str], input: &str) -> (ExitStatus, Vec<Event>, String) {
    let mut run = Run::start(args, false);
    run.stdin
        .as_mut()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let (status, out, err) = run.finish();
    assert_no_panic(&err);
    (status, events(&out), err)
}

/// A call as the comparison sees it: name, return value, errno.
type Call = (String, i64, Option<String>);

/// Per lane, the calls in order.
fn calls_by_lane(evs: &[Event]) -> BTreeMap<String, Vec<Call>> {
    let mut out: BTreeMap<String, Vec<Call>> = BTreeMap::new();
    for e in evs {
        if let Some(sc) = e.syscall() {
            out.entry(e.lane.name().to_string()).or_default().push((
                sc.name.to_string(),
                sc.ret,
                sc.errno.clone(),
            ));
        }
    }
    out
}

/// Checks that on every lane each call is preceded by exactly one pause note naming it.
fn assert_one_pause_before_each_call(evs: &[Event]) {
    let mut waiting: BTreeMap<&str, Option<String>> = BTreeMap::new();
    let mut pauses = 0;
    for e in evs {
        let lane = e.lane.name();
        match &e.body {
            Body::Note(n) if n.key == "step.paused" => {
                pauses += 1;
                let name = n
                    .args
                    .get("name")
                    .cloned()
                    .expect("the pause names its call");
                let before = waiting.insert(lane, Some(name.clone()));
                assert!(
                    before.flatten().is_none(),
                    "{lane}: two pauses in a row (the second before {name})"
                );
            }
            Body::Syscall(sc) => {
                let paused = waiting.insert(lane, None).flatten();
                assert_eq!(
                    paused.as_deref(),
                    Some(sc.name.as_ref()),
                    "{lane}: {} without its pause",
                    sc.name
                );
            }
            Body::Note(_) | Body::State(_) | Body::Packet(_) => {}
        }
    }
    assert!(pauses > 0, "no pause at all");
}

fn pause_count(evs: &[Event]) -> usize {
    evs.iter()
        .filter(|e| e.note().is_some_and(|n| n.key == "step.paused"))
        .count()
}

#[test]
fn a_stepped_demo_driven_through_stdin_makes_the_same_calls_plus_the_pauses() {
    let base = ["--json", "demo", "-p", "0", "--no-kernel", "--no-packets"];
    let (status, normal, err) = run_with_input(&base, "");
    assert!(status.success(), "normal demo: {status}\n{err}");
    assert_eq!(pause_count(&normal), 0);

    let stepped_args = [&base[..], &["--step"]].concat();
    // More Enters than the demo has calls: the rest stays unread.
    let (status, stepped, err) = run_with_input(&stepped_args, &"\n".repeat(60));
    assert!(status.success(), "stepped demo: {status}\n{err}");
    let (a, b) = (calls_by_lane(&normal), calls_by_lane(&stepped));
    assert!(
        a.contains_key("server") && a.contains_key("client"),
        "{a:?}"
    );
    assert_eq!(a, b, "the stepped demo made other calls");
    assert_one_pause_before_each_call(&stepped);
    let calls: usize = b.values().map(Vec::len).sum();
    assert_eq!(pause_count(&stepped), calls);
    // The prompts went to stderr (stdout is JSON only), with the snapshot.
    assert!(err.contains("next: accept4(fd 3)"), "{err}");
    assert!(err.contains("why: accept4 takes"), "{err}");
    assert!(err.contains("sock_diag now, port"), "{err}");
    assert!(
        err.contains("LISTEN            0      1"),
        "the listener before accept4: {err}"
    );

    // q runs to the end: the same calls, fewer pauses.
    let (status, quit, err) = run_with_input(&stepped_args, "\n\nq\n");
    assert!(status.success(), "q: {status}\n{err}");
    assert_eq!(calls_by_lane(&quit), a);
    assert!(pause_count(&quit) < calls, "q did not stop the pauses");
    assert!(err.contains("the rest runs without pausing"), "{err}");
}

#[test]
fn a_stepped_scenario_makes_the_same_calls_plus_the_pauses() {
    let base = [
        "--json",
        "scenario",
        "handshake",
        "--no-kernel",
        "--no-packets",
    ];
    let (status, normal, err) = run_with_input(&base, "");
    assert!(status.success(), "normal scenario: {status}\n{err}");
    let stepped_args = [&base[..], &["--step-delay", "0"]].concat();
    let (status, stepped, err) = run_with_input(&stepped_args, "");
    assert!(status.success(), "stepped scenario: {status}\n{err}");
    assert_eq!(calls_by_lane(&normal), calls_by_lane(&stepped));
    assert_one_pause_before_each_call(&stepped);
    assert!(err.contains("(going on in 0 ms)"), "{err}");
}

/// The pause before accept4 holds the server, not the kernel: a client connects meanwhile,
/// and the test's own sock_diag snapshot finds the connection ESTABLISHED at both ends and
/// waiting in the listener's accept queue (1 of backlog 1), while no accept4 comes until Enter.
#[test]
fn a_paused_server_has_not_accepted_yet_while_the_kernel_has() {
    let mut server = Run::start(
        &["--json", "server", "-p", "0", "--count", "1", "--step"],
        false,
    );
    let mut port = 0;
    let mut client: Option<TcpStream> = None;
    let mut accepted = false;
    loop {
        let ev = server.next_event();
        if let Some(sc) = ev.syscall() {
            if sc.name == "getsockname" {
                let addr = sc.args["addr"].as_str().expect("addr");
                port = addr.rsplit(':').next().unwrap().parse().expect("port");
            }
            if sc.name == "accept4" {
                assert!(client.is_some(), "accept4 before the pause was answered");
                accepted = true;
            }
            if sc.name == "close" && sc.fd == Some(3) {
                break;
            }
            continue;
        }
        let Some(n) = ev.note().filter(|n| n.key == "step.paused") else {
            continue;
        };
        if n.args["name"] == "accept4" {
            assert_ne!(port, 0);
            let c = TcpStream::connect(("127.0.0.1", port)).expect("connect while paused");
            let me = c.local_addr().unwrap();
            // The final ACK lands at once on loopback; look until the kernel shows it.
            let deadline = Instant::now() + TIMEOUT;
            let entries = loop {
                let entries = sock_diag::tcp_sockets(&[port]).expect("sock_diag");
                let listener = entries
                    .iter()
                    .find(|e| e.state == TcpState::Listen && e.local.port() == port);
                if listener.is_some_and(|l| l.recv_q == 1) {
                    break entries;
                }
                assert!(
                    Instant::now() < deadline,
                    "no queued connection: {entries:?}"
                );
                thread::sleep(Duration::from_millis(5));
            };
            let listener = entries
                .iter()
                .find(|e| e.state == TcpState::Listen)
                .unwrap();
            assert_eq!((listener.recv_q, listener.send_q), (1, 1), "{entries:?}");
            let ours = entries.iter().find(|e| e.local == me).expect("our socket");
            assert_eq!(ours.state, TcpState::Established);
            let queued = entries
                .iter()
                .find(|e| e.remote == me)
                .expect("the server's end");
            assert_eq!(queued.state, TcpState::Established);
            assert_eq!(queued.inode, 0, "no descriptor yet: nobody accepted it");
            // Still paused: no event comes while nobody answers.
            assert_eq!(server.out_within(Duration::from_millis(300)), None);
            // `s` looks again without making the call: the lab sees what the test saw.
            server.answer("s");
            server.err_line("    LISTEN            1      1  127.0.0.1:");
            assert_eq!(server.out_within(Duration::from_millis(100)), None);
            // The message waits in the kernel too, for the server's read.
            (&c).write_all(b"hi").expect("send while paused");
            client = Some(c);
        }
        server.answer("");
    }
    assert!(accepted, "no accept4");
    let mut reply = String::new();
    let mut c = client.expect("a client");
    c.set_read_timeout(Some(TIMEOUT)).unwrap();
    std::io::Read::read_to_string(&mut c, &mut reply).expect("the reply");
    assert!(reply.starts_with("received well 127.0.0.1:"), "{reply}");
    let (status, _, err) = server.finish();
    assert!(status.success(), "{status}\n{err}");
}

/// `(pid N)` in a pause's first line.
fn pid_in(line: &str) -> u32 {
    let rest = line.split("(pid ").nth(1).expect("(pid N)");
    rest.split(')').next().unwrap().parse().expect("a pid")
}

/// True while `pid` is a process that has not been reaped (nor reused by a non-socklab one).
fn alive(pid: u32) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("socklab"))
}

/// The demo's children still running: socklab processes started with `--step-remote` for
/// `port`.
fn remote_children(port: &str) -> Vec<String> {
    util::processes()
        .into_iter()
        .map(|(_, args)| args)
        .filter(|args| {
            args.iter().any(|a| a.contains("socklab"))
                && args.iter().any(|a| a == "--step-remote")
                && args.iter().any(|a| a == port)
        })
        .map(|args| args.join(" "))
        .collect()
}

/// Answers `k - 1` pauses, then sends SIGINT at the k-th (to the process group or the
/// process); returns the exit status, stderr, the pids the pauses named and socklab's pid.
/// Checks that no child of the demo (`--step-remote` on the port shown) is left, and, for a
/// run with observers (`observed`, as root), that its tracefs instance was there to remove.
fn interrupt_at(
    args: &[&str],
    k: usize,
    group: bool,
    observed: bool,
) -> (ExitStatus, String, Vec<u32>, u32) {
    let mut run = Run::start(args, group);
    let pid = run.pid();
    let mut pids = Vec::new();
    for i in 1..=k {
        let line = run.err_line(&format!("step {i} · "));
        pids.push(pid_in(&line));
        if i < k {
            run.answer("");
        }
    }
    let port = run
        .stderr
        .iter()
        .find_map(|l| l.trim().strip_prefix("sock_diag now, port "))
        .and_then(|rest| rest.split([' ', ',']).next())
        .map(str::to_string);
    if observed && is_root() {
        assert!(
            !instances_of(pid).is_empty(),
            "no tracefs instance to clean up"
        );
    }
    // While the prompt waits, with its snapshot printed.
    util::sigint(pid, group);
    let (status, _, err) = run.finish();
    assert_no_panic(&err);
    assert!(
        status.code().is_some(),
        "{args:?} at step {k}: ended by signal {:?}\n{err}",
        status.signal()
    );
    if let Some(port) = port {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = remote_children(&port);
            if left.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "children left: {left:#?}");
            thread::sleep(Duration::from_millis(20));
        }
    }
    pids.sort_unstable();
    pids.dedup();
    (status, err, pids, pid)
}

fn assert_nothing_left(what: &str, pid: u32, pids: &[u32]) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "{what}: left running: {left:?}");
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        instances_of(pid),
        Vec::<String>::new(),
        "{what}: tracefs instance left"
    );
}

#[test]
fn ctrl_c_at_any_pause_ends_cleanly_and_leaves_nothing() {
    if !is_root() {
        println!("note: not root, so no tracepoint: only processes are checked");
    }
    // The demo with its observers (tracepoint as root): before the server's first call,
    // while the server waits before accept4, and at the client's pauses.
    for (k, group) in [(1, true), (6, false), (9, true)] {
        let args = ["--json", "demo", "-p", "0", "--no-packets", "--step"];
        let (status, err, pids, pid) = interrupt_at(&args, k, group, true);
        assert!(
            status.code() == Some(1) && err.contains("interrupted"),
            "demo, step {k}: {status}\n{err}"
        );
        assert!(pids.len() == if k > 6 { 2 } else { 1 }, "{pids:?}");
        assert!(!pids.contains(&pid), "the pauses are the children's");
        assert_nothing_left(&format!("demo, step {k}"), pid, &pids);
    }
    // A scenario steps in its own process, observers around it.
    for k in [1, 7] {
        let args = ["--json", "scenario", "handshake", "--no-packets", "--step"];
        let (status, err, _, pid) = interrupt_at(&args, k, false, true);
        assert!(
            status.code() == Some(1) && err.contains("interrupted"),
            "scenario, step {k}: {status}\n{err}"
        );
        assert_nothing_left(&format!("scenario, step {k}"), pid, &[]);
    }
    // The server: before its first call the call fails with EINTR (exit 1); at the pause
    // before accept4 (its 5th call with -p 0) it is the seed's Ctrl-C: close, exit 0.
    let args = ["--json", "server", "-p", "0", "--step"];
    let (status, err, _, _) = interrupt_at(&args, 1, false, false);
    assert!(
        status.code() == Some(1) && err.contains("EINTR"),
        "server, step 1: {status}\n{err}"
    );
    let (status, err, _, _) = interrupt_at(&args, 5, false, false);
    assert!(status.success(), "server, step 5: {status}\n{err}");
    assert!(err.contains("next: accept4(fd 3)"), "{err}");
}

#[test]
fn step_and_wire_refuse_each_other_and_quiet_step_is_refused() {
    let out = Command::new(socklab_exe())
        .args(["demo", "--step", "--wire", "hold"])
        .stdin(Stdio::null())
        .output()
        .expect("socklab runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--step") && err.contains("--wire"), "{err}");

    let out = Command::new(socklab_exe())
        .args(["--quiet", "client", "127.0.0.1", "-p", "9", "--step"])
        .stdin(Stdio::null())
        .output()
        .expect("socklab runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--quiet"), "{err}");
}
