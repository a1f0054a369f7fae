//! Each scenario, run as `socklab --json scenario NAME`, asserting what the kernel did from
//! the events (TCP_INFO and sock_diag everywhere; tracepoint and packets as root).
//! One module per scenario.

use std::process::Command;

use socklab::event::tcp_state::TcpState;
use socklab::event::{Body, Event, Lane};

#[path = "../util/mod.rs"]
mod util;

mod backlog;
mod ephemeral_port;
mod half_close;
mod handshake;
mod ipv6;
mod nonblocking_connect;
mod partial_read;
mod refused;
mod reset;
mod simultaneous_close;
mod time_wait;
mod udp;

/// One run of a scenario: exit code and events (check notes included).
pub struct Run {
    /// The process's exit code.
    pub code: i32,
    /// Every event it printed.
    pub events: Vec<Event>,
    /// Its stderr.
    pub stderr: String,
}

impl Run {
    /// The checks the lab made, as (status, what).
    pub fn checks(&self) -> Vec<(String, String)> {
        self.events
            .iter()
            .filter_map(Event::note)
            .filter(|n| n.key == "scenario.check")
            .map(|n| (n.args["status"].clone(), n.args["what"].clone()))
            .collect()
    }

    /// True when the tracepoint ran (some state event came from it).
    pub fn kernel(&self) -> bool {
        self.states().any(|(_, _, src)| src == "tracepoint")
    }

    /// True when packets were captured.
    pub fn packets(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e.body, Body::Packet(_)))
    }

    /// (lane, state, source) of every state seen: state events and TCP_INFO after calls.
    pub fn states(&self) -> impl Iterator<Item = (Lane, TcpState, &str)> {
        self.events.iter().filter_map(|e| match &e.body {
            Body::State(st) => Some((e.lane, st.to, st.source.as_str())),
            Body::Syscall(sc) => sc.tcp_state.map(|s| (e.lane, s, "tcp_info")),
            Body::Packet(_) | Body::Note(_) => None,
        })
    }

    /// True when the kernel showed `state` on `lane` (any source).
    pub fn saw(&self, lane: Lane, state: TcpState) -> bool {
        self.states().any(|(l, s, _)| l == lane && s == state)
    }

    /// The syscall events named `name` on `lane`.
    pub fn calls(&self, lane: Lane, name: &str) -> Vec<&socklab::event::Syscall> {
        self.events
            .iter()
            .filter(|e| e.lane == lane)
            .filter_map(Event::syscall)
            .filter(|s| s.name == name)
            .collect()
    }

    /// Flags of the captured TCP packets, in order.
    pub fn flags(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match &e.body {
                // ICMP packets carry their type in `flags`; the capture keeps every ICMP
                // packet on lo, other tests' too.
                Body::Packet(p) if p.proto == "TCP" => p.flags.clone(),
                _ => None,
            })
            .collect()
    }
}

/// Runs `socklab --json scenario NAME ARGS...` and parses its stdout.
pub fn run(name: &str, args: &[&str]) -> Run {
    let exe = env!("CARGO_BIN_EXE_socklab");
    let out = Command::new(exe)
        .args(["--json", "scenario", name])
        .args(args)
        .output()
        .expect("run socklab");
    let stdout = String::from_utf8(out.stdout).expect("utf-8 stdout");
    let events = stdout
        .lines()
        .map(|l| Event::from_json(l).unwrap_or_else(|e| panic!("not an event ({e}): {l}")))
        .collect();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    Run {
        code: out.status.code().unwrap_or(-1),
        events,
        stderr,
    }
}

/// True when running as root (tracepoint and capture tiers run).
pub fn root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn list_names_every_scenario() {
    let out = Command::new(env!("CARGO_BIN_EXE_socklab"))
        .args(["scenario", "--list"])
        .output()
        .expect("run socklab");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for s in socklab::course::scenarios::ALL {
        assert!(
            text.lines().any(|l| l.starts_with(s.name)),
            "{} missing",
            s.name
        );
    }
}

#[test]
fn unknown_scenario_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_socklab"))
        .args(["scenario", "no-such-thing"])
        .output()
        .expect("run socklab");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("handshake"));
}
