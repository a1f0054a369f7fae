//! `ephemeral-port`: a client socket has no port until connect(); the kernel then picks one
//! from ip_local_port_range (getsockname before and after). Two clients get two ports to the
//! one server port. A client that bind()s a port first keeps that port.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;

use nix::sys::socket::{self as nsock, AddressFamily, SockFlag, SockType, SockaddrStorage};

use super::lab::step;
use super::{Expect, Lab, Scenario, Tier, calls, packets};
use crate::error::Error;
use crate::event::tcp_state::TcpState::*;
use crate::event::timeline::port_of;
use crate::event::{Body, Event, Lane, Role, Syscall};
use crate::observe::sysctl;
use crate::sys::{self, Flags};

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "ephemeral-port",
    ipv6: false,
    run,
    expect,
};

/// True when a socket (without SO_REUSEADDR) can bind `port` on `ip` now. An unlogged probe:
/// the lab choosing a port is not part of the lesson.
fn bindable(ip: IpAddr, port: u16) -> bool {
    let family = match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    let Ok(fd) = nsock::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None) else {
        return false;
    };
    let addr = SockaddrStorage::from(SocketAddr::new(ip, port));
    let ok = nsock::bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr).is_ok();
    drop(fd);
    ok
}

/// A free port below the ephemeral range, so the kernel could never have picked it itself.
fn chosen_port(ip: IpAddr) -> Result<u16, Error> {
    let (lo, _) = sysctl::local_port_range();
    let start = lo.saturating_sub(1).max(1025);
    // Spread runs over a few hundred ports (a fixed one may sit in TIME_WAIT from a last run).
    let offset = (std::process::id() % 500) as u16;
    (0..500u16)
        .map(|i| start - ((offset + i) % 500).min(start - 1024))
        .find(|&p| bindable(ip, p))
        .ok_or_else(|| Error::Other("no free port below the ephemeral range".into()))
}

/// As the client: a socket, getsockname (no port yet), connect, getsockname (the port).
fn client(lab: &Lab) -> Result<(OwnedFd, u16), Error> {
    let fd = lab.client_socket()?;
    step(sys::getsockname(&fd), "getsockname")?;
    step(sys::connect(&fd, lab.server_addr()), "connect")?;
    let port = step(sys::getsockname(&fd), "getsockname")?.port();
    Ok((fd, port))
}

fn run(lab: &mut Lab) -> Result<(), Error> {
    let (lo, hi) = sysctl::local_port_range();
    let listener = lab.listener(4, false)?;

    lab.say(
        "scenario.ephemeral-port.before",
        &[("range", format!("{lo}-{hi}"))],
    );
    let (first, p1) = client(lab)?;
    lab.say("scenario.ephemeral-port.second", &[]);
    let (second, p2) = client(lab)?;
    lab.say(
        "scenario.ephemeral-port.two_ports",
        &[
            ("p1", p1.to_string()),
            ("p2", p2.to_string()),
            ("server", lab.port.to_string()),
        ],
    );

    let port = chosen_port(lab.ip)?;
    lab.say(
        "scenario.ephemeral-port.bind_first",
        &[("port", port.to_string()), ("range", format!("{lo}-{hi}"))],
    );
    let third = lab.client_socket()?;
    step(sys::bind(&third, SocketAddr::new(lab.ip, port)), "bind")?;
    step(sys::connect(&third, lab.server_addr()), "connect")?;
    let p3 = step(sys::getsockname(&third), "getsockname")?.port();
    lab.say("scenario.ephemeral-port.kept", &[("port", p3.to_string())]);

    lab.act_as(Role::Server);
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(step(sys::accept4(&listener, Flags::SOCK_CLOEXEC), "accept4")?.0);
    }
    lab.look()?;
    // The server closes first: TIME_WAIT stays on the server's (random) port, not on the
    // chosen client port, which a rerun may then pick again.
    lab.say("scenario.ephemeral-port.cleanup", &[]);
    for c in conns {
        step(sys::close(c), "close")?;
    }
    step(sys::close(listener), "close")?;
    lab.act_as(Role::Client);
    for c in [first, second, third] {
        step(sys::close(c), "close")?;
    }
    Ok(())
}

/// The client's getsockname calls, in order.
fn getsocknames(events: &[Event]) -> Vec<&Syscall> {
    calls(events, Lane::Client, "getsockname")
        .filter(|s| !s.failed())
        .collect()
}

fn addr_arg(s: &Syscall) -> String {
    s.args
        .get("addr")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

/// The source port of each client bind(), in order.
fn bound_ports(events: &[Event]) -> Vec<u16> {
    calls(events, Lane::Client, "bind")
        .filter(|s| !s.failed())
        .filter_map(|s| port_of(&addr_arg(s)))
        .collect()
}

fn expect() -> Vec<Expect> {
    vec![
        Expect::State {
            lane: Lane::Client,
            state: Established,
        },
        Expect::Custom {
            key: "scenario.ephemeral-port.check.no_port_before",
            tier: Tier::Always,
            check: |events| {
                let names: Vec<String> = getsocknames(events).iter().map(|s| addr_arg(s)).collect();
                if names.len() == 5 && names[0] == "0.0.0.0:0" && names[2] == "0.0.0.0:0" {
                    Ok(())
                } else {
                    Err(format!("getsockname gave {names:?}"))
                }
            },
        },
        Expect::Custom {
            key: "scenario.ephemeral-port.check.in_range",
            tier: Tier::Always,
            check: |events| {
                let (lo, hi) = sysctl::local_port_range();
                let names = getsocknames(events);
                let ports: Vec<u16> = [1, 3]
                    .iter()
                    .filter_map(|&i| names.get(i))
                    .filter_map(|s| port_of(&addr_arg(s)))
                    .collect();
                match ports[..] {
                    [a, b] if a != b && (lo..=hi).contains(&a) && (lo..=hi).contains(&b) => Ok(()),
                    _ => Err(format!("ports {ports:?}, range {lo}-{hi}")),
                }
            },
        },
        Expect::Custom {
            key: "scenario.ephemeral-port.check.bind_kept",
            tier: Tier::Always,
            check: |events| {
                let bound = bound_ports(events);
                let last = getsocknames(events)
                    .last()
                    .and_then(|s| port_of(&addr_arg(s)));
                match (&bound[..], last) {
                    ([p], Some(q)) if *p == q && q != 0 => Ok(()),
                    _ => Err(format!("bind {bound:?}, getsockname {last:?}")),
                }
            },
        },
        Expect::Custom {
            key: "scenario.ephemeral-port.check.three_listed",
            tier: Tier::Always,
            check: |events| {
                let mut ports: Vec<u16> = events
                    .iter()
                    .filter(|e| e.lane == Lane::Client)
                    .filter_map(|e| match &e.body {
                        Body::State(st) if st.source == "sock_diag" && st.to == Established => {
                            st.local.as_deref().and_then(port_of)
                        }
                        Body::State(_) | Body::Syscall(_) | Body::Packet(_) | Body::Note(_) => None,
                    })
                    .collect();
                ports.sort_unstable();
                ports.dedup();
                if ports.len() == 3 {
                    Ok(())
                } else {
                    Err(format!("client ports {ports:?}"))
                }
            },
        },
        Expect::Custom {
            key: "scenario.ephemeral-port.check.port_in_connect",
            tier: Tier::Kernel,
            check: |events| {
                let zero =
                    events
                        .iter()
                        .filter(|e| e.lane == Lane::Client)
                        .any(|e| match &e.body {
                            Body::State(st) => {
                                st.source == "tracepoint"
                                    && st.to == SynSent
                                    && st.local.as_deref().and_then(port_of) == Some(0)
                            }
                            Body::Syscall(_) | Body::Packet(_) | Body::Note(_) => false,
                        });
                if zero {
                    Ok(())
                } else {
                    Err("no SYN_SENT with local port 0".into())
                }
            },
        },
        Expect::Custom {
            key: "scenario.ephemeral-port.check.syn_from_port",
            tier: Tier::Packets,
            check: |events| {
                let mut syn: Vec<u16> = packets(events)
                    .filter(|p| p.flags.as_deref() == Some("SYN"))
                    .filter_map(|p| port_of(&p.src))
                    .collect();
                let names = getsocknames(events);
                let mut got: Vec<u16> = [1, 3, 4]
                    .iter()
                    .filter_map(|&i| names.get(i))
                    .filter_map(|s| port_of(&addr_arg(s)))
                    .collect();
                // A retransmitted SYN leaves from the same port: count ports, not packets.
                syn.sort_unstable();
                syn.dedup();
                got.sort_unstable();
                if syn == got {
                    Ok(())
                } else {
                    Err(format!("SYNs from {syn:?}, getsockname {got:?}"))
                }
            },
        },
    ]
}
