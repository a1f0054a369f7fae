//! `socklab demo --wire`: packets held in the kernel (NFQUEUE in the demo's private network
//! namespace), checked against the test's own sock_diag snapshot taken inside that namespace
//! while a packet is held; a dropped SYN retransmitted by the kernel; and nothing left after
//! Ctrl-C at any step (no process, no namespace, no rule outside).
//!
//! The wire needs root (or a user namespace the kernel allows: the last test runs it as
//! `nobody`); without root these tests print why they skip. Each wait is bounded.

mod util;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};
use socklab::observe::sock_diag::{self, SockEntry};
use socklab::{Body, Event, Lane, TcpState};
use util::{TIMEOUT, assert_no_panic, is_root, socklab_exe};

/// Skips unless this machine can hold packets: root, and iptables-nft to queue them.
macro_rules! skip_unless_wire {
    () => {
        skip_unless_root!("needs root (the wire: iptables and NFQUEUE in the demo's namespace)");
        if util::tool("iptables-nft").is_none() && util::tool("iptables").is_none() {
            util::skip("iptables-nft is not installed (package iptables)");
            return;
        }
    };
}

/// A `socklab --json demo -p 0 --wire ...` run whose stderr (the live wire lines) is read line
/// by line, with stdin for the answers. Dropping it kills and reaps the demo.
struct Demo {
    child: Child,
    stdin: Option<ChildStdin>,
    err_lines: Receiver<String>,
    stderr: Vec<String>,
    stdout: Option<JoinHandle<String>>,
}

impl Demo {
    fn start(cmd: Command) -> Demo {
        Demo::start_with(cmd, false)
    }

    fn start_with(mut cmd: Command, own_group: bool) -> Demo {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if own_group {
            // As a terminal's Ctrl-C reaches the demo and its children.
            cmd.process_group(0);
        }
        let mut child = cmd.spawn().expect("start socklab");
        let stdin = child.stdin.take();
        let mut out = child.stdout.take().expect("piped");
        let err = child.stderr.take().expect("piped");
        let err_lines = util::line_channel(err);
        let stdout = thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        Demo {
            child,
            stdin,
            err_lines,
            stderr: Vec::new(),
            stdout: Some(stdout),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next stderr line that starts with `prefix` (panics after `TIMEOUT` or at the end).
    fn wait_line(&mut self, prefix: &str) -> String {
        util::line_starting(&self.err_lines, &mut self.stderr, prefix)
    }

    /// The next held packet: `wire: held #N: FLAGS ... SRC > DST`.
    fn held(&mut self) -> Held {
        let line = self.wait_line("wire: held #");
        Held::parse(&line)
    }

    fn answer(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin
            .write_all(format!("{text}\n").as_bytes())
            .expect("write the answer");
        stdin.flush().expect("flush");
    }

    /// Closes stdin, waits for the exit (bounded), returns the status, stdout and stderr.
    fn finish(mut self) -> (ExitStatus, String, String) {
        self.stdin = None;
        let Some(status) = util::wait_exit(&mut self.child, TIMEOUT) else {
            panic!(
                "the demo did not exit within {TIMEOUT:?}; stderr:\n{}",
                self.stderr.join("\n")
            );
        };
        let stdout = self
            .stdout
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        // The reader ends with the pipe; take what it has.
        let until = Instant::now() + Duration::from_secs(2);
        while let Ok(line) = self
            .err_lines
            .recv_timeout(until.saturating_duration_since(Instant::now()))
        {
            self.stderr.push(line);
        }
        (status, stdout, self.stderr.join("\n"))
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        util::reap(&mut self.child);
    }
}

/// One `wire: held #N: ...` line.
#[derive(Debug)]
struct Held {
    line: String,
    flags: String,
    src: String,
    dst: String,
    again: bool,
}

impl Held {
    fn parse(line: &str) -> Held {
        let rest = line.split_once(": ").expect("held line").1;
        let rest = rest.split_once(": ").expect("held line").1;
        let again = rest.contains("(again");
        let words: Vec<&str> = rest.split_whitespace().collect();
        let gt = words.iter().position(|w| *w == ">").expect("src > dst");
        Held {
            line: line.to_string(),
            flags: words[0].to_string(),
            src: words[gt - 1].to_string(),
            dst: words[gt + 1].to_string(),
            again,
        }
    }

    fn port_of(addr: &str) -> u16 {
        addr.rsplit(':').next().unwrap().parse().expect("a port")
    }
}

fn wire_demo(pace: &str) -> Command {
    let mut cmd = Command::new(socklab_exe());
    cmd.args(["--json", "demo", "-p", "0", "--wire", pace]);
    cmd
}

/// The TCP sockets on `port` as sock_diag shows them inside the network namespace of `pid`
/// (a thread of this test enters it; the others stay where they are).
fn snapshot_in(pid: u32, port: u16) -> Vec<SockEntry> {
    thread::spawn(move || {
        let ns = fs::File::open(format!("/proc/{pid}/ns/net")).expect("open the demo's netns");
        setns(&ns, CloneFlags::CLONE_NEWNET).expect("setns into the demo's netns");
        sock_diag::tcp_sockets(&[port]).expect("sock_diag in the demo's netns")
    })
    .join()
    .expect("snapshot thread")
}

fn show(entries: &[SockEntry]) -> String {
    entries
        .iter()
        .map(|e| format!("{} {} {}", e.state.name(), e.local, e.remote))
        .collect::<Vec<_>>()
        .join("\n")
}

fn events(stdout: &str) -> Vec<Event> {
    util::events(&stdout.lines().map(String::from).collect::<Vec<_>>())
}

fn notes<'a>(evs: &'a [Event], key: &str) -> Vec<&'a socklab::event::Note> {
    evs.iter()
        .filter_map(Event::note)
        .filter(|n| n.key == key)
        .collect()
}

fn assert_finished_ok(status: ExitStatus, stdout: &str, stderr: &str) -> Vec<Event> {
    assert_no_panic(stderr);
    assert!(status.success(), "{status}\nstderr:\n{stderr}");
    let evs = events(stdout);
    // What the client's read(2) returned, not the lab's note about it.
    assert!(
        evs.iter().any(|e| e.lane == Lane::Client
            && e.syscall().is_some_and(|sc| sc.name == "read"
                && sc.ret > 0
                && sc
                    .args
                    .get("data")
                    .and_then(|d| d.as_str())
                    .is_some_and(|d| d.starts_with("received well")))),
        "the client read no reply\nstderr:\n{stderr}"
    );
    evs
}

/// SYN released, SYN|ACK released, final ACK held: the server side is a request socket in
/// SYN_RECV (no child yet), while the client, which got the SYN|ACK, is ESTABLISHED.
#[test]
fn final_ack_held_server_syn_recv_client_established() {
    skip_unless_wire!();
    let mut demo = Demo::start(wire_demo("hold"));
    let syn = demo.held();
    assert_eq!(syn.flags, "SYN", "{}", syn.line);
    let port = Held::port_of(&syn.dst);
    let client = syn.src.clone();
    demo.answer("");
    let synack = demo.held();
    assert_eq!(synack.flags, "SYN|ACK", "{}", synack.line);
    demo.answer("");
    let ack = demo.held();
    assert_eq!(
        (ack.flags.as_str(), ack.src.as_str()),
        ("ACK", client.as_str()),
        "{}",
        ack.line
    );
    let snap = snapshot_in(demo.pid(), port);
    let tl = show(&snap);
    assert!(
        snap.iter().any(|e| e.state == TcpState::SynRecv
            && e.local.port() == port
            && e.remote.to_string() == client),
        "no server request socket in SYN_RECV:\n{tl}"
    );
    assert!(
        !snap
            .iter()
            .any(|e| e.state == TcpState::Established && e.local.port() == port),
        "the server side is ESTABLISHED before the final ACK arrived:\n{tl}"
    );
    assert!(
        snap.iter()
            .any(|e| e.state == TcpState::Established && e.local.to_string() == client),
        "the client is not ESTABLISHED:\n{tl}"
    );
    demo.answer("q");
    let (status, stdout, stderr) = demo.finish();
    let evs = assert_finished_ok(status, &stdout, &stderr);
    // The demo's own notes say the same as the test's snapshot.
    let held = notes(&evs, "wire.held");
    assert!(held.len() >= 3, "{held:?}");
    let snaps = notes(&evs, "wire.snapshot");
    assert!(
        snaps.iter().any(|n| n.text.contains("SYN_RECV")),
        "{snaps:?}"
    );
    assert!(
        evs.iter()
            .any(|e| matches!(&e.body, Body::Packet(p) if p.flags.as_deref() == Some("SYN|ACK"))),
        "no SYN|ACK on the timeline"
    );
}

/// SYN released, SYN|ACK held: the client is still in SYN_SENT.
#[test]
fn syn_ack_held_client_syn_sent() {
    skip_unless_wire!();
    let mut demo = Demo::start(wire_demo("hold"));
    let syn = demo.held();
    assert_eq!(syn.flags, "SYN", "{}", syn.line);
    let port = Held::port_of(&syn.dst);
    demo.answer("");
    let synack = demo.held();
    assert_eq!(synack.flags, "SYN|ACK", "{}", synack.line);
    let snap = snapshot_in(demo.pid(), port);
    let tl = show(&snap);
    assert!(
        snap.iter()
            .any(|e| e.state == TcpState::SynSent && e.local.to_string() == syn.src),
        "the client is not in SYN_SENT while the SYN|ACK is held:\n{tl}"
    );
    assert!(
        snap.iter()
            .any(|e| e.state == TcpState::SynRecv && e.local.port() == port),
        "the server has no request socket while its SYN|ACK is held:\n{tl}"
    );
    demo.answer("q");
    let (status, stdout, stderr) = demo.finish();
    assert_finished_ok(status, &stdout, &stderr);
}

/// The first SYN dropped: about a second later the client's kernel sends the same SYN again
/// (same sequence number), and the exchange completes.
#[test]
fn dropped_syn_is_retransmitted() {
    skip_unless_wire!();
    let mut demo = Demo::start(wire_demo("hold"));
    let syn = demo.held();
    assert_eq!(syn.flags, "SYN", "{}", syn.line);
    let seen = Instant::now();
    demo.answer("d");
    let again = demo.held();
    let waited = seen.elapsed();
    assert_eq!(
        (again.flags.as_str(), again.src.as_str(), again.dst.as_str()),
        ("SYN", syn.src.as_str(), syn.dst.as_str()),
        "{}",
        again.line
    );
    assert!(
        again.again,
        "not marked as a retransmission: {}",
        again.line
    );
    // The initial retransmission timeout is 1 s (RFC 6298, TCP_TIMEOUT_INIT).
    assert!(
        waited >= Duration::from_millis(700) && waited <= Duration::from_secs(3),
        "the retransmission came after {waited:?}"
    );
    demo.answer("q");
    let (status, stdout, stderr) = demo.finish();
    let evs = assert_finished_ok(status, &stdout, &stderr);
    let dropped = notes(&evs, "wire.dropped");
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    let held = notes(&evs, "wire.held");
    let first = held.first().expect("a held packet after the drop");
    assert_eq!(first.args["flags"], "SYN");
    assert_eq!(
        first.args["seq_raw"], dropped[0].args["seq_raw"],
        "the retransmitted SYN has another sequence number"
    );
    assert!(!notes(&evs, "wire.retransmission").is_empty());
}

/// The network namespace of `pid` (`net:[4026...]`).
fn netns_of(pid: u32) -> String {
    fs::read_link(format!("/proc/{pid}/ns/net"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Processes in network namespace `ns`, and socklab processes whose arguments name `port`.
fn left_behind(ns: &str, port: u16) -> Vec<String> {
    let port = port.to_string();
    util::processes()
        .into_iter()
        .filter(|(pid, args)| {
            let in_ns = netns_of(*pid) == ns;
            let on_port = port != "0"
                && args.first().is_some_and(|a| a.contains("socklab"))
                && args.contains(&port);
            in_ns || on_port
        })
        .map(|(pid, args)| format!("{pid}: {}", args.join(" ")))
        .collect()
}

/// The rules of the root namespace's OUTPUT chain, as iptables-nft lists them.
fn root_output_rules() -> String {
    Command::new("iptables-nft")
        .args(["-S", "OUTPUT"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Ctrl-C before the first packet, and while the 1st, 3rd and 6th packets are held (to the
/// whole process group as a terminal does, or to the demo alone): the demo exits as
/// interrupted, no process and no namespace is left, and the root namespace has no rule.
#[test]
fn ctrl_c_at_any_step_leaves_nothing() {
    skip_unless_wire!();
    let rules_before = root_output_rules();
    for (step, group) in [(0, true), (1, true), (3, false), (6, true)] {
        let mut demo = Demo::start_with(wire_demo("hold"), true);
        let pid = demo.pid();
        demo.wait_line("Slow-motion wire");
        let ns = netns_of(pid);
        assert!(!ns.is_empty(), "no netns for {pid}");
        let mut port = 0;
        for i in 1..=step {
            let held = demo.held();
            if port == 0 {
                port = Held::port_of(&held.dst);
            }
            if i < step {
                demo.answer("");
            }
        }
        util::sigint(pid, group);
        let (status, _, stderr) = demo.finish();
        assert_no_panic(&stderr);
        assert!(
            status.code() == Some(1) && stderr.contains("interrupted"),
            "step {step}: {status} (signal {:?})\n{stderr}",
            status.signal()
        );
        // The children are reaped by the demo; give the kernel a moment to tear down.
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = left_behind(&ns, port);
            if left.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "step {step}: left behind: {left:#?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
    assert_eq!(
        root_output_rules(),
        rules_before,
        "the root namespace's rules changed"
    );
}

/// As `nobody`: the wire either works in a user namespace of its own, or says why not and
/// exits 1; never a panic.
#[test]
fn unprivileged_wire_works_in_a_user_namespace_or_refuses_clearly() {
    let mut cmd = wire_demo("delay=0");
    let dir = std::env::temp_dir().join(format!("socklab-wire-{}", std::process::id()));
    if is_root() {
        let Some(exe) = exe_for_nobody(&dir) else {
            let _ = fs::remove_dir_all(&dir);
            return;
        };
        cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(exe)
            .args(["--json", "demo", "-p", "0", "--wire", "delay=0"]);
    }
    let demo = Demo::start(cmd);
    let (status, stdout, stderr) = demo.finish();
    let _ = fs::remove_dir_all(&dir);
    assert_no_panic(&stderr);
    if status.success() {
        let evs = events(&stdout);
        assert!(
            !notes(&evs, "wire.held").is_empty(),
            "no held packet\n{stderr}"
        );
        println!("unprivileged: the wire ran in a user namespace of its own");
    } else {
        assert_eq!(status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("socklab: --wire"),
            "no clear refusal:\n{stderr}"
        );
        println!("unprivileged: refused: {}", stderr.trim());
    }
}

/// Forks; the child enters a new user namespace (mapped by the parent), forbids namespaces
/// below it (user.max_user_namespaces = 0), becomes nobody and runs argv[1:].
const NO_USERNS: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
r1, w1 = os.pipe(); r2, w2 = os.pipe()
pid = os.fork()
if pid == 0:
    if libc.unshare(0x10000000) != 0: os._exit(97)
    os.write(w1, b'x'); os.read(r2, 1)
    open('/proc/sys/user/max_user_namespaces', 'w').write('0')
    os.setgroups([]); os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)
    os.execv(sys.argv[1], sys.argv[1:])
os.read(r1, 1)
open(f'/proc/{pid}/uid_map', 'w').write('0 0 65536')
open(f'/proc/{pid}/setgroups', 'w').write('allow')
open(f'/proc/{pid}/gid_map', 'w').write('0 0 65536')
os.write(w2, b'x')
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"#;

/// As `nobody` where the kernel refuses new user namespaces: one line that says what the wire
/// needs and why it could not have it, exit 1.
#[test]
fn without_user_namespaces_the_wire_refuses_clearly() {
    skip_unless_root!("needs root to set up a user namespace that forbids namespaces");
    let Some(python) = util::python3() else {
        util::skip("python3 is not installed (package python3)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("socklab-wire-refuse-{}", std::process::id()));
    let Some(exe) = exe_for_nobody(&dir) else {
        let _ = fs::remove_dir_all(&dir);
        return;
    };
    let mut cmd = Command::new(python);
    cmd.args(["-c", NO_USERNS])
        .arg(&exe)
        .args(["demo", "-p", "0", "--wire", "hold"]);
    let demo = Demo::start(cmd);
    let (status, stdout, stderr) = demo.finish();
    let _ = fs::remove_dir_all(&dir);
    assert_no_panic(&stderr);
    assert_eq!(status.code(), Some(1), "{status}\n{stderr}");
    assert!(
        stderr.starts_with("socklab: --wire needs root, or a user namespace")
            && stderr.contains("unshare")
            && stderr.lines().count() == 1,
        "{stderr}"
    );
    assert!(stdout.is_empty(), "{stdout}");
}

/// A copy of the binary in `dir` that user nobody may run (the build dir may be closed to it).
fn exe_for_nobody(dir: &std::path::Path) -> Option<PathBuf> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).ok()?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).ok()?;
    let exe = dir.join("socklab");
    fs::copy(socklab_exe(), &exe).ok()?;
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).ok()?;
    let ok = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&exe)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        util::skip(&format!("user nobody cannot run {}", exe.display()));
        return None;
    }
    Some(exe)
}
