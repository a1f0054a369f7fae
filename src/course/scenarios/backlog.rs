//! `backlog`: a listener with listen(1) that does not accept while four clients connect. Two
//! finished connections fill the accept queue (Linux lets backlog + 1 wait), the kernel drops
//! the next SYNs without an answer, those clients sit in SYN_SENT, and they get in with their
//! retransmitted SYN once accept() has drained the queue.
//!
//! Measured on Linux 6.18 (loopback): a non-blocking connect() returns EINPROGRESS even when
//! the handshake finished inside the call; a SYN dropped for a full queue is sent again after
//! the initial RTO (1 s), then after 2 s more. The server accepts at once, so the first
//! retransmission finds room and the run ends after about 1 s.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use nix::errno::Errno;
use nix::poll::PollFd;

use super::lab::step;
use super::{Expect, Lab, Scenario, Tier, calls, packets};
use crate::error::Error;
use crate::event::tcp_state::TcpState::*;
use crate::event::{Event, Lane, Role};
use crate::sys::{self, Flags, PollFlags};

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "backlog",
    ipv6: false,
    run,
    expect,
};

/// The backlog given to listen().
const BACKLOG: i32 = 1;
/// Connections that fit in the accept queue: Linux refuses a new one only when the queue
/// already holds more than the backlog.
const FIT: usize = BACKLOG as usize + 1;
/// Clients in all; the ones beyond FIT wait.
const CLIENTS: usize = 4;
/// Bound for one wait on the listener: the first retransmission comes after 1 s, the second
/// 2 s later, should a busy machine miss the first.
const WAIT_MS: i32 = 4000;

/// The lab's connect: EINPROGRESS is the expected answer of a non-blocking connect.
fn connect_late(lab: &Lab) -> Result<OwnedFd, Error> {
    let (fd, res) = lab.connect_nonblocking()?;
    match res {
        Ok(()) | Err(Errno::EINPROGRESS) => Ok(fd),
        Err(e) => Err(Error::sys("connect", lab.server_addr(), e)),
    }
}

/// Reads the listener's queue (TCP_INFO) until `len` connections wait in it. The handshake
/// of an earlier client normally finishes inside its connect(), so one read suffices; the
/// bound covers a kernel that deferred the final ACK's processing.
fn wait_queue(lab: &Lab, listener: &OwnedFd, len: u32) -> Result<(u32, u32), Error> {
    for _ in 0..500 {
        let info = step(sys::tcp_info(listener), "getsockopt")?;
        if info.unacked >= len {
            return Ok((info.unacked, info.sacked));
        }
        lab.pause(2);
    }
    Err(Error::Other(format!(
        "the accept queue never held {len} connections"
    )))
}

fn run(lab: &mut Lab) -> Result<(), Error> {
    let listener = lab.listener(BACKLOG, false)?;
    lab.say(
        "scenario.backlog.no_accept",
        &[("clients", CLIENTS.to_string())],
    );
    let mut clients = Vec::new();
    for _ in 0..FIT {
        clients.push(connect_late(lab)?);
    }
    lab.act_as(Role::Server);
    let (len, backlog) = wait_queue(lab, &listener, FIT as u32)?;
    lab.say(
        "scenario.backlog.full",
        &[("len", len.to_string()), ("backlog", backlog.to_string())],
    );
    let late_connect = Instant::now();
    for _ in FIT..CLIENTS {
        clients.push(connect_late(lab)?);
    }
    let seen = lab.look()?;
    let (recv_q, send_q) = seen
        .iter()
        .find(|e| e.state == Listen)
        .map_or((0, 0), |e| (e.recv_q, e.send_q));
    let waiting = seen.iter().filter(|e| e.state == SynSent).count();
    lab.say(
        "scenario.backlog.dropped",
        &[
            ("recv_q", recv_q.to_string()),
            ("send_q", send_q.to_string()),
            ("waiting", waiting.to_string()),
        ],
    );

    lab.act_as(Role::Server);
    let mut conns = Vec::new();
    while conns.len() < CLIENTS {
        if conns.len() == FIT {
            lab.say("scenario.backlog.room", &[]);
        }
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        if step(sys::poll(&mut fds, WAIT_MS), "poll")? == 0 {
            return Err(Error::Other(format!(
                "no connection in the accept queue after {WAIT_MS} ms"
            )));
        }
        conns.push(step(sys::accept4(&listener, Flags::SOCK_CLOEXEC), "accept4")?.0);
    }
    let waited = late_connect.elapsed().as_millis();
    step(sys::tcp_info(&listener), "getsockopt")?;
    lab.look()?;
    lab.say("scenario.backlog.drained", &[("ms", waited.to_string())]);

    lab.act_as(Role::Client);
    for fd in clients {
        step(sys::close(fd), "close")?;
    }
    lab.act_as(Role::Server);
    for fd in conns {
        step(sys::close(fd), "close")?;
    }
    step(sys::close(listener), "close")
}

/// The listener's accept queue as TCP_INFO reported it after each call on it.
fn queues(events: &[Event]) -> impl Iterator<Item = (u32, u32)> + '_ {
    events
        .iter()
        .filter(|e| e.lane == Lane::Server)
        .filter_map(Event::syscall)
        .filter_map(|s| s.queue.map(|q| (q.len, q.backlog)))
}

fn queue_filled(events: &[Event]) -> Result<(), String> {
    let full = (FIT as u32, BACKLOG as u32);
    if queues(events).any(|q| q == full) {
        Ok(())
    } else {
        let seen: Vec<String> = queues(events).map(|(l, b)| format!("{l}/{b}")).collect();
        Err(format!("queues seen: {}", seen.join(", ")))
    }
}

fn queue_drained(events: &[Event]) -> Result<(), String> {
    let accepted = calls(events, Lane::Server, "accept4")
        .filter(|s| !s.failed())
        .count();
    match queues(events).last() {
        Some((0, _)) if accepted == CLIENTS => Ok(()),
        last => Err(format!("{accepted} accepted, last queue {last:?}")),
    }
}

/// The late clients' connections reached the queue only on their retransmitted SYN: the
/// last accept came at least most of the initial RTO (1 s) after the last connect.
fn late_by_a_timer(events: &[Event]) -> Result<(), String> {
    let last = |lane: Lane, name: &str| {
        events
            .iter()
            .filter(|e| e.lane == lane && e.syscall().is_some_and(|s| s.name == name))
            .map(|e| e.t)
            .next_back()
    };
    let (Some(conn), Some(acc)) = (last(Lane::Client, "connect"), last(Lane::Server, "accept4"))
    else {
        return Err("no connect or accept4".into());
    };
    let ms = acc.saturating_sub(conn) / 1_000_000;
    if ms >= 800 {
        Ok(())
    } else {
        Err(format!(
            "the last accept came {ms} ms after the last connect"
        ))
    }
}

/// Some client sent its SYN twice with the same sequence number, and only the second was
/// answered.
fn syn_retransmitted(events: &[Event]) -> Result<(), String> {
    let packets: Vec<_> = packets(events).collect();
    let syns = |src: &str| {
        packets
            .iter()
            .filter(|p| p.src == src && p.flags.as_deref() == Some("SYN"))
            .count()
    };
    let retried = packets
        .iter()
        .filter(|p| p.flags.as_deref() == Some("SYN") && syns(&p.src) >= 2)
        .map(|p| p.src.clone())
        .next();
    let Some(src) = retried else {
        return Err("no client sent its SYN twice".into());
    };
    let (mut syn_seen, mut answered_early) = (0, false);
    let mut seqs = Vec::new();
    for p in &packets {
        match p.flags.as_deref() {
            Some("SYN") if p.src == src => {
                syn_seen += 1;
                seqs.push(p.seq);
            }
            Some("SYN|ACK") if p.dst == src && syn_seen < 2 => answered_early = true,
            _ => {}
        }
    }
    if answered_early {
        Err(format!("{src}'s first SYN was answered"))
    } else if seqs.windows(2).any(|w| w[0] != w[1]) {
        Err(format!("{src}'s SYNs differ in seq: {seqs:?}"))
    } else {
        Ok(())
    }
}

fn expect() -> Vec<Expect> {
    use Lane::{Client, Server};
    vec![
        Expect::State {
            lane: Server,
            state: Listen,
        },
        Expect::Errno {
            lane: Client,
            call: "connect",
            errno: "EINPROGRESS",
        },
        Expect::Custom {
            key: "scenario.backlog.check.queue_full",
            tier: Tier::Always,
            check: queue_filled,
        },
        Expect::State {
            lane: Client,
            state: SynSent,
        },
        Expect::Custom {
            key: "scenario.backlog.check.retransmitted",
            tier: Tier::Always,
            check: late_by_a_timer,
        },
        Expect::Custom {
            key: "scenario.backlog.check.all_accepted",
            tier: Tier::Always,
            check: queue_drained,
        },
        Expect::State {
            lane: Client,
            state: Established,
        },
        Expect::Transition {
            lane: Client,
            from: Some(SynSent),
            to: Established,
        },
        Expect::Custom {
            key: "scenario.backlog.check.syn_twice",
            tier: Tier::Packets,
            check: syn_retransmitted,
        },
    ]
}
