//! The wrappers hide nothing: under `strace -f`, the calls the lab's events say each process
//! made on its sockets are, in order, exactly the calls strace saw (name, descriptor, result),
//! and the only other calls on those sockets are the TCP_INFO reads the events announce.
//!
//! Runs where strace is installed (CI); elsewhere prints why it skips. `make trace` shows the
//! same pairing side by side.

mod util;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use socklab::event::{Body, Event};
use socklab::trace::{self, CallKey, StraceCall, Target, Traced};

/// The examples: each logs every call it makes on a socket (its own TCP_INFO reads and its
/// close() calls included). `make trace EXAMPLE=...` shows one side by side.
const EXAMPLES: &[&str] = &[
    "01_socket",
    "02_bind",
    "03_listen",
    "04_connect",
    "05_accept",
    "06_read_write",
    "07_shutdown_close",
    "08_udp",
];

fn strace_installed() -> bool {
    util::tool("strace").is_some()
}

macro_rules! require_strace {
    () => {
        if !strace_installed() {
            util::skip("strace is not installed (package strace)");
            return;
        }
    };
}

/// A log file of its own for each run (the tests run in parallel).
fn log_path(name: &str) -> PathBuf {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    let file = format!("{name}-{}-{n}.strace", std::process::id());
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(file)
}

fn traced(target: &Target, name: &str) -> Traced {
    trace::run(target, &log_path(name)).unwrap_or_else(|e| panic!("{name} under strace: {e}"))
}

fn demo(probe: bool) -> Traced {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_socklab"));
    let name = if probe { "demo" } else { "demo-no-probe" };
    traced(&Target::Demo { exe, probe }, name)
}

fn keys(list: &[CallKey]) -> String {
    list.iter()
        .map(|k| format!("    {k}\n"))
        .collect::<String>()
}

/// The threads whose lab list and strace list of socket calls differ, with both lists.
fn differences(events: &[Event], calls: &[StraceCall]) -> Vec<(u32, Vec<CallKey>, Vec<CallKey>)> {
    let lab = trace::lab_calls(events);
    let seen = trace::strace_calls(calls);
    let tids: BTreeSet<u32> = lab.keys().chain(seen.keys()).copied().collect();
    let mut out = Vec::new();
    for tid in tids {
        let l = lab.get(&tid).cloned().unwrap_or_default();
        let s = seen.get(&tid).cloned().unwrap_or_default();
        if l.len() != s.len() || !l.iter().zip(&s).all(|(a, b)| a.agrees(b)) {
            out.push((tid, l, s));
        }
    }
    out
}

/// Per thread, the lab's list and strace's list of socket calls agree one for one.
fn assert_same_calls(what: &str, events: &[Event], calls: &[StraceCall]) {
    if let Some((tid, l, s)) = differences(events, calls).first() {
        panic!(
            "{what}, thread {tid}: the lab's calls and strace's differ\n  lab:\n{}  strace:\n{}",
            keys(l),
            keys(s)
        );
    }
}

fn tcp_info_lines(calls: &[StraceCall]) -> usize {
    calls.iter().filter(|c| c.is_tcp_info()).count()
}

fn probes(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| e.syscall().is_some_and(|s| s.probe.is_some()))
        .count()
}

/// The program's own TCP_INFO reads: logged `getsockopt(SOL_TCP, TCP_INFO)` events.
fn own_tcp_info_reads(events: &[Event]) -> usize {
    events
        .iter()
        .filter_map(Event::syscall)
        .filter(|s| {
            s.name == "getsockopt" && s.args.get("optname").is_some_and(|o| o == "TCP_INFO")
        })
        .count()
}

/// Looks shown as `state` events from `tcp_info`: a TCP_INFO read with no syscall event.
fn unlogged_looks(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(&e.body, Body::State(s) if s.source == "tcp_info"))
        .count()
}

/// The syscall names of one role's events.
fn names_of(events: &[Event], role: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.role.is_some_and(|r| r.name() == role))
        .filter_map(|e| e.syscall().map(|s| s.name.to_string()))
        .collect()
}

#[test]
fn demo_calls_are_the_calls_strace_saw() {
    require_strace!();
    let run = demo(true);
    assert_eq!(trace::event_problems(&run.events), Vec::<String>::new());

    // Not vacuous: both processes logged their side of the exchange.
    let server = names_of(&run.events, "server");
    let client = names_of(&run.events, "client");
    for name in [
        "socket", "bind", "listen", "accept4", "read", "write", "close",
    ] {
        assert!(server.contains(&name.to_string()), "server: {server:?}");
    }
    for name in ["socket", "connect", "write", "read", "close"] {
        assert!(client.contains(&name.to_string()), "client: {client:?}");
    }
    let pids: BTreeSet<u32> = run.events.iter().map(|e| e.tid).collect();
    assert_eq!(pids.len(), 2, "one server and one client process");

    assert_same_calls("demo", &run.events, &run.calls);
    // Every TCP_INFO read strace saw is one the events announce, one per `probe`.
    assert_eq!(tcp_info_lines(&run.calls), probes(&run.events));
    assert!(probes(&run.events) > 0);

    let pairing = trace::pair(run.events.clone(), run.calls.clone());
    assert!(pairing.clean(), "{:#?}", pairing.problems);
}

#[test]
fn the_comparison_catches_an_extra_call_or_a_wrong_result() {
    require_strace!();
    let run = demo(true);
    let same = |events: &[Event], calls: &[StraceCall]| differences(events, calls).is_empty();
    assert!(same(&run.events, &run.calls));

    // A wrapper that reported another result (the read's byte count).
    let mut events = run.events.clone();
    let read = events
        .iter_mut()
        .find_map(|e| match &mut e.body {
            Body::Syscall(s) if s.name == "read" => Some(s),
            _ => None,
        })
        .expect("a read event");
    read.ret += 1;
    assert!(!same(&events, &run.calls));
    assert!(!trace::pair(events, run.calls.clone()).clean());

    // A wrapper that reported another descriptor.
    let mut events = run.events.clone();
    if let Some(Body::Syscall(s)) = events
        .iter_mut()
        .map(|e| &mut e.body)
        .find(|b| matches!(b, Body::Syscall(s) if s.name == "listen"))
    {
        s.fd = s.fd.map(|fd| fd + 1);
    }
    assert!(!same(&events, &run.calls));

    // A wrapper that made one more call on the socket than it logged.
    let mut calls = run.calls.clone();
    let at = calls
        .iter()
        .position(|c| c.name == "listen")
        .expect("a listen call");
    let mut extra = calls[at].clone();
    extra.name = "fcntl".into();
    extra.text = extra.text.replacen("listen", "fcntl", 1);
    calls.insert(at + 1, extra);
    assert!(!same(&run.events, &calls));
    assert!(!trace::pair(run.events.clone(), calls).clean());
}

#[test]
fn without_probes_the_lab_reads_no_tcp_info() {
    require_strace!();
    let run = demo(false);
    assert_eq!(probes(&run.events), 0);
    assert_eq!(tcp_info_lines(&run.calls), 0);
    assert_same_calls("demo --no-probe", &run.events, &run.calls);
}

#[test]
fn examples_calls_are_the_calls_strace_saw() {
    require_strace!();
    let dir = Path::new(env!("CARGO_BIN_EXE_socklab"))
        .parent()
        .expect("target dir")
        .join("examples");
    let mut checked = 0;
    let mut own_looks = 0;
    for name in EXAMPLES {
        let path = dir.join(name);
        if !path.is_file() {
            util::skip(&format!(
                "example {name} not built (cargo build --examples)"
            ));
            continue;
        }
        let run = traced(&Target::Example(path), name);
        assert!(
            run.events.iter().any(|e| e.syscall().is_some()),
            "{name} logged no calls"
        );
        assert_eq!(trace::event_problems(&run.events), Vec::<String>::new());
        assert_same_calls(name, &run.events, &run.calls);
        // The examples' own TCP_INFO reads are logged calls, not state events; so every
        // TCP_INFO read strace saw is either a `probe` or one of those calls.
        assert_eq!(unlogged_looks(&run.events), 0, "{name}");
        let own = own_tcp_info_reads(&run.events);
        assert_eq!(
            tcp_info_lines(&run.calls),
            probes(&run.events) + own,
            "{name}: TCP_INFO reads strace saw vs probes + the example's own getsockopt calls"
        );
        assert_eq!(
            tcp_info_lines(&run.calls),
            trace::lab_tcp_info_reads(&run.events),
            "{name}"
        );
        // Every socket is closed with a logged close() (a dropped OwnedFd would be an extra
        // close, and in debug builds an fcntl, that the comparison above rejects).
        let opened = run
            .events
            .iter()
            .filter_map(Event::syscall)
            .filter(|s| matches!(s.name.as_ref(), "socket" | "accept4") && s.ret >= 0)
            .count();
        let closed = run
            .events
            .iter()
            .filter_map(Event::syscall)
            .filter(|s| s.name == "close" && s.ret == 0)
            .count();
        assert_eq!(opened, closed, "{name}: sockets opened vs closed");
        let pairing = trace::pair(run.events, run.calls);
        assert!(pairing.clean(), "{name}: {:#?}", pairing.problems);
        own_looks += own;
        checked += 1;
    }
    // Not vacuous: the examples that look at TCP state do so with logged calls.
    if checked == EXAMPLES.len() {
        assert!(own_looks > 0, "no example read TCP_INFO itself");
    }
    println!("checked {checked} examples under strace");
}
