//! Two computers: `socklab demo --hosts` runs the server at 198.18.0.2 and the client at
//! 198.18.0.1, each in a network namespace of its own, and the events, the packets on the
//! server's cable and `ss` inside each namespace agree on those addresses; with `--nat` the
//! server sees the router's address and another port. `socklab hosts` leaves a lab up until
//! `socklab hosts down`; Ctrl-C at any moment leaves no namespace behind; without root both
//! refuse with one line.
//!
//! Needs root and iproute2 (nftables for `--nat`); without them the tests print why they skip.
//! The tests share the fixed names of `socklab hosts`, so they take turns (one lock).

mod util;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::geteuid;
use socklab::event::{Packet, StateChange};
use socklab::{Body, Event, Role};
use util::{Finished, Proc, TIMEOUT, arg, assert_no_panic, calls, socklab_exe};

const SERVER_IP: &str = "198.18.0.2";
const CLIENT_IP: &str = "198.18.0.1";
const CLIENT_IP_NAT: &str = "198.18.1.2";
const ROUTER_WAN: &str = "198.18.0.1";
const NETNS_DIR: &str = "/run/netns";

static TURN: Mutex<()> = Mutex::new(());

/// One test at a time (they share `socklab hosts`'s names and the 2 cores).
fn turn() -> MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// None when this machine can run the lab; else why not (printed as the skip reason).
fn cannot_run(nat: bool) -> Option<&'static str> {
    if !geteuid().is_root() {
        Some("needs root (network namespaces, veth)")
    } else if util::tool("ip").is_none() {
        Some("ip is not installed (package iproute2)")
    } else if nat && util::tool("nft").is_none() {
        Some("nft is not installed (package nftables)")
    } else {
        None
    }
}

macro_rules! skip_unless_lab {
    ($nat:expr) => {
        if let Some(why) = cannot_run($nat) {
            util::skip(why);
            return;
        }
    };
}

/// As `skip_unless_lab!`, and skips too when a `socklab hosts` lab is already up (the test
/// makes and removes its own).
macro_rules! skip_unless_lab_alone {
    ($nat:expr) => {
        skip_unless_lab!($nat);
        if !lab_namespaces().is_empty() {
            util::skip("a socklab hosts lab is up on this machine; not touching it");
            return;
        }
    };
}

fn socklab(args: &[&str]) -> Command {
    let mut cmd = Command::new(socklab_exe());
    cmd.args(args);
    cmd
}

fn run(cmd: Command) -> Finished {
    Proc::spawn(cmd).finish()
}

fn assert_success(f: &Finished, what: &str) {
    assert_no_panic(&f.stderr);
    assert!(
        f.status.success(),
        "{what} failed: {}\nstderr:\n{}\nstdout:\n{}",
        f.status,
        f.stderr,
        f.stdout.join("\n")
    );
}

/// The lab's namespaces now (names under /run/netns starting with `prefix`).
fn namespaces(prefix: &str) -> Vec<String> {
    let Ok(dir) = fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

/// The namespaces of the demo run by process `pid`.
fn run_namespaces(pid: u32) -> Vec<String> {
    namespaces(&format!("socklab-{pid}-"))
}

/// The persistent lab's namespaces.
fn lab_namespaces() -> Vec<String> {
    ["socklab-client", "socklab-router", "socklab-server"]
        .into_iter()
        .filter(|n| Path::new(NETNS_DIR).join(n).exists())
        .map(String::from)
        .collect()
}

/// Takes the lab down when dropped, so a failed assertion leaves nothing behind.
struct LabDown;

impl Drop for LabDown {
    fn drop(&mut self) {
        let _ = socklab(&["hosts", "down"]).output();
    }
}

/// `ip netns exec NS cmd...`, bounded.
fn in_ns(ns: &str, args: &[&str]) -> Finished {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).args(args);
    run(cmd)
}

/// `ss -tanH` inside `ns`, one line per socket, whitespace collapsed.
fn ss(ns: Option<&str>) -> Vec<String> {
    let f = match ns {
        Some(ns) => in_ns(ns, &["ss", "-tanH"]),
        None => run({
            let mut c = Command::new("ss");
            c.arg("-tanH");
            c
        }),
    };
    assert!(f.status.success(), "ss failed: {}", f.stderr);
    f.stdout
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

fn packet(e: &Event) -> Option<&Packet> {
    match &e.body {
        Body::Packet(p) => Some(p),
        Body::Syscall(_) | Body::State(_) | Body::Note(_) => None,
    }
}

fn state(e: &Event) -> Option<&StateChange> {
    match &e.body {
        Body::State(s) => Some(s),
        Body::Syscall(_) | Body::Packet(_) | Body::Note(_) => None,
    }
}

/// The address argument of the one successful call `name` by `role`.
fn addr_of(evs: &[Event], role: Role, name: &str) -> String {
    let found: Vec<String> = evs
        .iter()
        .filter(|e| e.role == Some(role))
        .filter_map(Event::syscall)
        .filter(|s| s.name == name && !s.failed())
        .map(|s| arg(s, "addr").to_string())
        .collect();
    assert_eq!(found.len(), 1, "{role:?} {name}: {found:?}\n{}", dump(evs));
    found[0].clone()
}

fn dump(evs: &[Event]) -> String {
    evs.iter()
        .map(|e| serde_json::to_string(e).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

fn ip_of(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(ip, _)| ip)
}

/// Runs `socklab --json demo --hosts [--nat]` to the end and checks what both layouts share:
/// the server at 198.18.0.2, the namespaces gone after. Returns the events.
fn demo_hosts(nat: bool) -> Vec<Event> {
    let mut args = vec!["--json", "demo", "--hosts", "-p", "0"];
    if nat {
        args.push("--nat");
    }
    let demo = Proc::spawn(socklab(&args));
    let pid = demo.pid();
    let f = demo.finish();
    assert_success(&f, "demo --hosts");
    assert_eq!(run_namespaces(pid), Vec::<String>::new(), "namespaces left");
    let evs = f.events();
    let tl = dump(&evs);
    let bound = calls(&evs, "bind");
    assert_eq!(bound.len(), 1, "{tl}");
    let server = arg(bound[0], "addr").to_string();
    assert_eq!(
        ip_of(&server),
        SERVER_IP,
        "the server binds its computer's IP"
    );
    assert_eq!(addr_of(&evs, Role::Server, "getsockname"), server, "{tl}");
    // A connection is (client ip:port, server ip:port): here two different IPs.
    let client = addr_of(&evs, Role::Client, "getsockname");
    assert_ne!(ip_of(&client), ip_of(&server), "{tl}");
    evs
}

/// The packets of the exchange, as (src, dst, flags).
fn wire(evs: &[Event]) -> Vec<(String, String, String)> {
    evs.iter()
        .filter_map(packet)
        .map(|p| {
            (
                p.src.clone(),
                p.dst.clone(),
                p.flags.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn demo_hosts_shows_the_two_addresses_in_calls_states_and_packets() {
    let _turn = turn();
    skip_unless_lab!(false);
    let evs = demo_hosts(false);
    let tl = dump(&evs);
    let server = addr_of(&evs, Role::Server, "getsockname");
    let client = addr_of(&evs, Role::Client, "getsockname");
    assert_eq!(ip_of(&client), CLIENT_IP, "{tl}");
    // Same link, no router: the server sees the client's own address and port.
    assert_eq!(addr_of(&evs, Role::Server, "accept4"), client, "{tl}");
    assert!(
        !evs.iter()
            .any(|e| matches!(&e.body, Body::Note(n) if n.key == "timeline.source_rewritten")),
        "a rewrite note without a router\n{tl}"
    );
    // The tracepoint sees both namespaces: each side's socket with its own addresses.
    let states: Vec<&StateChange> = evs.iter().filter_map(state).collect();
    assert!(
        states
            .iter()
            .any(|s| s.local.as_deref() == Some(client.as_str())
                && s.remote.as_deref() == Some(server.as_str())),
        "no state of the client's socket {client}\n{tl}"
    );
    assert!(
        states
            .iter()
            .any(|s| s.local.as_deref() == Some(server.as_str())
                && s.remote.as_deref() == Some(client.as_str())),
        "no state of the server's connection\n{tl}"
    );
    // The server's cable carries both directions, with the two computers' addresses.
    let pk = wire(&evs);
    assert!(
        pk.contains(&(client.clone(), server.clone(), "SYN".into())),
        "no SYN {client} > {server}: {pk:?}"
    );
    assert!(
        pk.contains(&(server.clone(), client.clone(), "SYN|ACK".into())),
        "no SYN|ACK back: {pk:?}"
    );
    assert!(
        pk.iter()
            .all(|(s, d, _)| (s == &client && d == &server) || (s == &server && d == &client)),
        "a packet of another flow: {pk:?}"
    );
}

#[test]
fn demo_hosts_nat_shows_the_rewritten_source() {
    let _turn = turn();
    skip_unless_lab!(true);
    let evs = demo_hosts(true);
    let tl = dump(&evs);
    let server = addr_of(&evs, Role::Server, "getsockname");
    let own = addr_of(&evs, Role::Client, "getsockname");
    let seen = addr_of(&evs, Role::Server, "accept4");
    assert_eq!(ip_of(&own), CLIENT_IP_NAT, "the client's own address\n{tl}");
    assert_eq!(
        ip_of(&seen),
        ROUTER_WAN,
        "the server sees the router's address\n{tl}"
    );
    // masquerade fully-random picks the port at random in 1024-65535: the same number as
    // the client's by chance about once in 64 000 runs.
    assert_ne!(own, seen, "the port was not rewritten\n{tl}");
    let note = evs
        .iter()
        .find_map(|e| match &e.body {
            Body::Note(n) if n.key == "timeline.source_rewritten" => Some(n),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no note on the rewrite\n{tl}"));
    assert_eq!(note.args["client"], own);
    assert_eq!(note.args["seen"], seen);
    assert!(
        note.text.contains(&own) && note.text.contains(&seen),
        "{}",
        note.text
    );
    // The capture is on the server's cable: after the rewrite, the client's own address
    // never appears there.
    let pk = wire(&evs);
    assert!(
        pk.contains(&(seen.clone(), server.clone(), "SYN".into())),
        "no rewritten SYN {seen} > {server}: {pk:?}"
    );
    assert!(
        pk.iter()
            .all(|(s, d, _)| !s.contains(CLIENT_IP_NAT) && !d.contains(CLIENT_IP_NAT)),
        "the client's own address on the server's side: {pk:?}"
    );
    // Each side's kernel knows the connection by its own view of it.
    let states: Vec<&StateChange> = evs.iter().filter_map(state).collect();
    assert!(
        states
            .iter()
            .any(|s| s.local.as_deref() == Some(own.as_str())),
        "no state of the client's socket {own}\n{tl}"
    );
    assert!(
        states
            .iter()
            .any(|s| s.local.as_deref() == Some(server.as_str())
                && s.remote.as_deref() == Some(seen.as_str())),
        "no state of the server's connection from {seen}\n{tl}"
    );
}

/// `socklab hosts`, a server and a client run by hand in the two namespaces, `ss` in each
/// namespace, then `socklab hosts down`.
#[test]
fn hosts_up_ss_in_each_namespace_agrees_and_down_removes_everything() {
    let _turn = turn();
    skip_unless_lab_alone!(false);
    let _down = LabDown;
    let nft_before = nft_tables();
    let up = run(socklab(&["hosts"]));
    assert_success(&up, "socklab hosts");
    let text = up.stdout.join("\n");
    assert!(
        text.contains("socklab hosts down"),
        "says how to remove it:\n{text}"
    );
    assert!(
        text.contains("ip netns exec socklab-server"),
        "says how to use it:\n{text}"
    );
    assert!(
        text.contains("$ ip link add"),
        "prints the commands:\n{text}"
    );
    assert_eq!(lab_namespaces(), ["socklab-client", "socklab-server"]);

    let port = "1060";
    let mut server = {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", "socklab-server"])
            .arg(socklab_exe())
            .args(["--json", "server", SERVER_IP, "-p", port, "--count", "1"]);
        Proc::spawn(c)
    };
    let listening = server.wait_listening().to_string();
    assert_eq!(listening, format!("{SERVER_IP}:{port}"));
    // While the server waits: its namespace has the listener, the client's and this one not.
    let here = ss(Some("socklab-server"));
    assert!(
        here.iter()
            .any(|l| l.starts_with("LISTEN") && l.contains(&listening)),
        "ss in the server's namespace: {here:?}"
    );
    for other in [ss(Some("socklab-client")), ss(None)] {
        assert!(
            !other.iter().any(|l| l.contains(&listening)),
            "the listener seen outside the server's namespace: {other:?}"
        );
    }
    let client = {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", "socklab-client"])
            .arg(socklab_exe())
            .args(["--json", "client", SERVER_IP, "-p", port, "-m", "hi"]);
        run(c)
    };
    assert_success(&client, "the client");
    let server = server.finish();
    assert_success(&server, "the server");
    let own = addr_of(&client.events(), Role::Client, "getsockname");
    let peer = addr_of(&server.events(), Role::Server, "accept4");
    assert_eq!(ip_of(&own), CLIENT_IP);
    assert_eq!(
        own, peer,
        "no router: the server sees the client's own address"
    );
    // The active closer holds the connection in TIME-WAIT, in its own namespace only, with
    // the addresses the events gave (the server usually closes first; on a busy machine
    // sometimes the client does).
    let (in_server, in_client, in_root) = (
        ss(Some("socklab-server")),
        ss(Some("socklab-client")),
        ss(None),
    );
    let tw_server = format!("TIME-WAIT 0 0 {listening} {own}");
    let tw_client = format!("TIME-WAIT 0 0 {own} {listening}");
    assert!(
        in_server.contains(&tw_server) || in_client.contains(&tw_client),
        "no TIME-WAIT of {own} <-> {listening}: server {in_server:?} client {in_client:?}"
    );
    assert!(
        !in_root.iter().any(|l| l.contains(SERVER_IP)),
        "lab sockets in the root namespace: {in_root:?}"
    );

    // Twice up is refused, the lab untouched.
    let again = run(socklab(&["hosts"]));
    assert_no_panic(&again.stderr);
    assert_eq!(again.status.code(), Some(1), "{}", again.stderr);
    assert!(again.stderr.contains("hosts down"), "{}", again.stderr);
    assert_eq!(lab_namespaces().len(), 2);

    let down = run(socklab(&["hosts", "down"]));
    assert_success(&down, "socklab hosts down");
    assert_eq!(lab_namespaces(), Vec::<String>::new());
    assert_no_lab_links();
    assert_eq!(
        nft_tables(),
        nft_before,
        "nft tables in the root namespace changed"
    );
    let none = run(socklab(&["hosts", "down"]));
    assert_success(&none, "a second socklab hosts down");
}

#[test]
fn hosts_nat_has_a_router_with_its_own_nat_table_and_goes_down() {
    let _turn = turn();
    skip_unless_lab_alone!(true);
    let _down = LabDown;
    let nft_before = nft_tables();
    let up = run(socklab(&["hosts", "--nat"]));
    assert_success(&up, "socklab hosts --nat");
    assert_eq!(
        lab_namespaces(),
        ["socklab-client", "socklab-router", "socklab-server"]
    );
    let rules = in_ns("socklab-router", &["nft", "list", "ruleset"]);
    let rules = rules.stdout.join("\n");
    assert!(rules.contains("masquerade"), "router ruleset:\n{rules}");
    assert_eq!(
        nft_tables(),
        nft_before,
        "the NAT table must live in the router only"
    );
    let route = in_ns("socklab-client", &["ip", "route"]).stdout.join("\n");
    assert!(
        route.contains("default via 198.18.1.1"),
        "client routes:\n{route}"
    );
    let down = run(socklab(&["hosts", "down"]));
    assert_success(&down, "socklab hosts down");
    assert_eq!(lab_namespaces(), Vec::<String>::new());
    assert_no_lab_links();
}

/// `nft list tables` in this (the root) namespace; empty when nft is missing.
fn nft_tables() -> Vec<String> {
    Command::new("nft")
        .args(["list", "tables"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// No interface of the lab in the root namespace (they are made inside the namespaces and
/// go with them; this checks nothing leaked here).
fn assert_no_lab_links() {
    let out = Command::new("ip")
        .args(["-o", "link"])
        .output()
        .expect("ip link");
    let links = String::from_utf8_lossy(&out.stdout);
    assert!(
        !links.contains("socklab") && !links.contains("link-netns socklab"),
        "{links}"
    );
}

/// Ctrl-C at many moments of `socklab hosts` and `socklab demo --hosts [--nat]`: whatever the
/// moment, no namespace is left (a `socklab hosts` that had finished leaves the whole lab,
/// as documented, which `hosts down` then removes).
#[test]
fn ctrl_c_at_any_moment_leaves_no_namespace() {
    let _turn = turn();
    skip_unless_lab_alone!(true);
    let _down = LabDown;
    let (mut interrupted, mut finished, mut early) = (0, 0, 0);
    for i in 0..18u64 {
        let (args, persistent): (&[&str], bool) = match i % 3 {
            0 => (&["hosts", "--nat"], true),
            1 => (&["--json", "demo", "--hosts", "-p", "0"], false),
            _ => (&["--json", "demo", "--hosts", "--nat", "-p", "0"], false),
        };
        let mut cmd = socklab(args);
        // Its own process group, as a terminal's Ctrl-C reaches it and its children (the
        // `ip` commands, the server and the client).
        cmd.process_group(0);
        let p = Proc::spawn(cmd);
        let pid = p.pid();
        if i % 2 == 1 {
            // Half the runs: wait for the first namespace, so the signal lands mid-setup
            // or mid-exchange.
            let deadline = Instant::now() + TIMEOUT;
            let mine = || {
                if persistent {
                    lab_namespaces()
                } else {
                    run_namespaces(pid)
                }
            };
            while mine().is_empty() && Instant::now() < deadline {
                thread::sleep(Duration::from_micros(300));
            }
        }
        // From mid-setup to mid-exchange to the observers' last look: a demo takes about
        // 200 ms here, `socklab hosts` 50.
        let span = if persistent { 50 } else { 200 };
        thread::sleep(Duration::from_millis(i * 37 % span));
        util::sigint(pid, true);
        let f = p.finish();
        assert_no_panic(&f.stderr);
        match (f.status.code(), f.status.signal()) {
            (Some(0), _) => finished += 1,
            (Some(1), _) if f.stderr.contains("interrupted") => interrupted += 1,
            // Before the handler was installed, SIGINT's default action ends the process:
            // that is before it made anything.
            (None, Some(sig)) if sig == Signal::SIGINT as i32 => early += 1,
            _ => panic!("run {i} ({args:?}): {}\nstderr:\n{}", f.status, f.stderr),
        }
        assert_eq!(
            run_namespaces(pid),
            Vec::<String>::new(),
            "run {i} ({args:?}): namespaces left\n{}",
            f.stderr
        );
        if persistent && f.status.success() {
            assert_eq!(
                lab_namespaces().len(),
                3,
                "run {i}: a finished lab is whole"
            );
            let down = run(socklab(&["hosts", "down"]));
            assert_success(&down, "socklab hosts down");
        }
        assert_eq!(
            lab_namespaces(),
            Vec::<String>::new(),
            "run {i} ({args:?}): lab namespaces left\n{}",
            f.stderr
        );
        assert_eq!(namespaces("socklab"), Vec::<String>::new(), "run {i}");
        assert_eq!(
            lab_programs(),
            Vec::<String>::new(),
            "run {i}: programs left"
        );
    }
    assert_no_lab_links();
    println!(
        "18 runs: {interrupted} interrupted, {finished} finished, {early} stopped before starting"
    );
    assert!(interrupted > 0, "no run was interrupted mid-way");
}

/// Running socklab servers and clients of the lab (their arguments name the server's IP).
fn lab_programs() -> Vec<String> {
    util::processes()
        .into_iter()
        .map(|(_, args)| args)
        .filter(|args| {
            args.iter().any(|a| a.contains("socklab")) && args.iter().any(|a| a == SERVER_IP)
        })
        .map(|args| args.join(" "))
        .collect()
}

/// A run killed outright (SIGKILL: no cleanup possible) leaves its namespaces; the next run
/// removes them, as does `socklab hosts down`.
#[test]
fn namespaces_of_a_killed_run_are_removed_by_the_next() {
    let _turn = turn();
    skip_unless_lab!(false);
    // A pid that is no socklab's any more: a finished `true`.
    let mut t = Command::new("true").spawn().expect("run true");
    let dead = t.id();
    t.wait().expect("reap true");
    let stale = format!("socklab-{dead}-client");
    let add = Command::new("ip")
        .args(["netns", "add", &stale])
        .status()
        .expect("ip netns add");
    assert!(add.success());
    let f = run(socklab(&[
        "demo",
        "--hosts",
        "-p",
        "0",
        "--no-kernel",
        "--no-packets",
    ]));
    let left = Path::new(NETNS_DIR).join(&stale).exists();
    if left {
        let _ = Command::new("ip").args(["netns", "del", &stale]).status();
    }
    assert_success(&f, "demo --hosts");
    assert!(!left, "the dead run's {stale} is still there");

    // And `socklab hosts down`.
    let add = Command::new("ip")
        .args(["netns", "add", &stale])
        .status()
        .expect("ip netns add");
    assert!(add.success());
    let down = run(socklab(&["hosts", "down"]));
    let left = Path::new(NETNS_DIR).join(&stale).exists();
    if left {
        let _ = Command::new("ip").args(["netns", "del", &stale]).status();
    }
    assert_success(&down, "hosts down");
    assert!(!left, "hosts down left {stale}");
    assert!(down.stdout.join("\n").contains(&stale), "{:?}", down.stdout);
}

/// A temp dir removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn without_root_hosts_and_demo_hosts_refuse_with_one_line() {
    let _turn = turn();
    let dir = TempDir(std::env::temp_dir().join(format!("socklab-hosts-{}", std::process::id())));
    fs::create_dir_all(&dir.0).expect("temp dir");
    fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o755)).expect("chmod");
    // As root: run as nobody (from a copy nobody can read if the build dir is closed).
    let exe: PathBuf = if geteuid().is_root() {
        let copy = dir.0.join("socklab");
        fs::copy(socklab_exe(), &copy).expect("copy the binary");
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).expect("chmod");
        copy
    } else {
        socklab_exe().to_path_buf()
    };
    let command = |args: &[&str]| {
        let mut cmd = if geteuid().is_root() {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args);
        cmd
    };
    if geteuid().is_root() && !command(&["--version"]).status().is_ok_and(|s| s.success()) {
        util::skip("cannot run socklab as nobody with setpriv");
        return;
    }
    for args in [
        &["hosts"][..],
        &["hosts", "--nat"],
        &["hosts", "down"],
        &["demo", "--hosts"],
        &["demo", "--hosts", "--nat"],
    ] {
        let f = run(command(args));
        assert_no_panic(&f.stderr);
        assert_eq!(f.status.code(), Some(1), "{args:?}: {}", f.stderr);
        let lines: Vec<&str> = f.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line: {}", f.stderr);
        assert!(
            lines[0].starts_with("socklab: socklab ")
                && lines[0].contains("needs root: it creates network namespaces and veth links"),
            "{args:?}: {}",
            f.stderr
        );
    }
    // --nat without --hosts is a usage error.
    let f = run(command(&["demo", "--nat"]));
    assert_eq!(f.status.code(), Some(2), "{}", f.stderr);
}
