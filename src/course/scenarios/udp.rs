//! `udp`: SOCK_DGRAM has no handshake, no connection and no TCP states; each sendto() is one
//! datagram and each recvfrom() returns exactly one, boundaries kept. A connected UDP socket
//! sending to a port where nothing listens learns of the ICMP port unreachable on its next
//! call: ECONNREFUSED.

use std::os::fd::{AsFd, OwnedFd};

use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::lab::step;
use super::{Expect, Lab, Scenario, Tier, calls, packets};
use crate::error::Error;
use crate::event::{Body, Event, Lane, Role, Syscall};
use crate::sys::{self, Flags, Msg, Type};

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "udp",
    ipv6: false,
    run,
    expect,
};

/// The three datagrams' sizes, all different.
const SIZES: [usize; 3] = [5, 300, 1200];

fn datagram(i: usize) -> Vec<u8> {
    if i == 0 {
        return b"hello".to_vec();
    }
    let mut d = format!("datagram {} of {} bytes ", i + 1, SIZES[i]).into_bytes();
    d.resize(SIZES[i], b'.');
    d
}

/// The lab's own bounded wait (not part of the lesson, so not logged): true once `fd` has a
/// datagram or a pending error.
fn wait_readable(fd: &OwnedFd, ms: u16) -> bool {
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    nix::poll::poll(&mut fds, PollTimeout::from(ms)).is_ok_and(|n| n > 0)
}

fn udp_socket(lab: &Lab) -> Result<OwnedFd, Error> {
    step(
        sys::socket(lab.domain(), Type::Datagram, Flags::SOCK_CLOEXEC),
        "socket",
    )
}

fn run(lab: &mut Lab) -> Result<(), Error> {
    lab.act_as(Role::Server);
    let server = udp_socket(lab)?;
    step(sys::bind(&server, lab.server_addr()), "bind")?;
    lab.say("scenario.udp.no_listen", &[]);

    lab.act_as(Role::Client);
    let client = udp_socket(lab)?;
    for i in 0..SIZES.len() {
        step(
            sys::sendto(&client, &datagram(i), lab.server_addr()),
            "sendto",
        )?;
    }

    lab.act_as(Role::Server);
    let mut buf = [0u8; 2048];
    lab.say("scenario.udp.boundaries", &[("len", buf.len().to_string())]);
    for _ in 0..SIZES.len() {
        if !wait_readable(&server, 1000) {
            return Err(Error::Other("a datagram did not arrive within 1 s".into()));
        }
        step(sys::recvfrom(&server, &mut buf), "recvfrom")?;
    }
    step(sys::close(server), "close")?;

    lab.say(
        "scenario.udp.closed_port",
        &[("addr", lab.server_addr().to_string())],
    );
    lab.act_as(Role::Client);
    step(sys::connect(&client, lab.server_addr()), "connect")?;
    step(sys::send(&client, b"anyone?", Msg::empty()), "send")?;
    if !wait_readable(&client, 1000) {
        return Err(Error::Other(
            "no ICMP error reached the connected socket within 1 s".into(),
        ));
    }
    // The failure is the lesson: the event records it.
    let _ = sys::recv(&client, &mut buf, Msg::empty());
    step(sys::close(client), "close")?;
    Ok(())
}

fn arg<'a>(s: &'a Syscall, key: &str) -> &'a str {
    s.args.get(key).and_then(|v| v.as_str()).unwrap_or_default()
}

fn sorted(mut v: Vec<i64>) -> Vec<i64> {
    v.sort_unstable();
    v
}

fn expect() -> Vec<Expect> {
    vec![
        Expect::Custom {
            key: "scenario.udp.check.no_state",
            tier: Tier::Always,
            check: |events| {
                let with_state = events
                    .iter()
                    .filter_map(Event::syscall)
                    .filter(|s| s.tcp_state.is_some())
                    .count();
                let states = events
                    .iter()
                    .filter(|e| matches!(e.body, Body::State(_)))
                    .count();
                if with_state == 0 && states == 0 {
                    Ok(())
                } else {
                    Err(format!(
                        "{with_state} calls with a TCP state, {states} state events"
                    ))
                }
            },
        },
        Expect::Custom {
            key: "scenario.udp.check.no_listen",
            tier: Tier::Always,
            check: |events| {
                let n = events
                    .iter()
                    .filter_map(Event::syscall)
                    .filter(|s| s.name == "listen" || s.name.starts_with("accept"))
                    .count();
                if n == 0 {
                    Ok(())
                } else {
                    Err(format!("{n} listen/accept calls"))
                }
            },
        },
        Expect::Custom {
            key: "scenario.udp.check.boundaries",
            tier: Tier::Always,
            check: |events| {
                let sent: Vec<i64> = calls(events, Lane::Client, "sendto")
                    .filter(|s| arg(s, "addr") != "NULL")
                    .map(|s| s.ret)
                    .collect();
                let got: Vec<i64> = calls(events, Lane::Server, "recvfrom")
                    .map(|s| s.ret)
                    .collect();
                let want: Vec<i64> = SIZES.iter().map(|&n| n as i64).collect();
                // UDP does not promise order (loopback keeps it): compare as sets of sizes.
                if sent == want && sorted(got.clone()) == want {
                    Ok(())
                } else {
                    Err(format!("sendto returned {sent:?}, recvfrom {got:?}"))
                }
            },
        },
        Expect::Custom {
            key: "scenario.udp.check.send_ok",
            tier: Tier::Always,
            check: |events| {
                let sends: Vec<&Syscall> = calls(events, Lane::Client, "sendto")
                    .filter(|s| arg(s, "addr") == "NULL")
                    .collect();
                match sends[..] {
                    [s] if !s.failed() && s.ret > 0 => Ok(()),
                    _ => Err(format!(
                        "send gave {:?}",
                        sends.iter().map(|s| (s.ret, &s.errno)).collect::<Vec<_>>()
                    )),
                }
            },
        },
        Expect::Errno {
            lane: Lane::Client,
            call: "recvfrom",
            errno: "ECONNREFUSED",
        },
        Expect::Custom {
            key: "scenario.udp.check.wire",
            tier: Tier::Packets,
            check: |events| {
                let protos: Vec<&str> = packets(events)
                    .filter(|p| p.proto != "ICMP")
                    .map(|p| p.proto.as_str())
                    .collect();
                if protos == ["UDP"; 4] {
                    Ok(())
                } else {
                    Err(format!("packets: {protos:?}"))
                }
            },
        },
        Expect::Packet {
            flags: "dest-unreachable/port",
        },
    ]
}
