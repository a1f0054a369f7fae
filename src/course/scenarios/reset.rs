//! `reset`: two ways a close() sends RST instead of FIN. (1) The server closes with data it
//! never read: the client's read() gets ECONNRESET. (2) SO_LINGER {on, 0}: close() aborts
//! the connection; the client's next write() gets the pending ECONNRESET, every later one
//! EPIPE. The lab ignores SIGPIPE (as every Rust program does), so EPIPE is an error return,
//! not the death of the process.
//!
//! Measured on Linux 6.18: both closes send RST|ACK (tcp_send_active_reset); the reset peer
//! is in CLOSE with sk_err = ECONNRESET, which the first read() or write() returns and
//! clears; after that read() returns 0 and write() EPIPE (tcp_sendmsg, sk_stream_error).

use nix::poll::PollFd;
use std::os::fd::AsFd;

use super::lab::step;
use super::{Expect, Lab, Scenario, Tier, packets};
use crate::error::Error;
use crate::event::tcp_state::TcpState::*;
use crate::event::{Body, Event, Lane, Role};
use crate::sys::{self, Flags, PollFlags, SockOpt};

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "reset",
    ipv6: false,
    run,
    expect,
};

/// Upper bound for the kernel to deliver what a poll waits for (on loopback: microseconds).
const WAIT_MS: i32 = 1000;

/// poll(fd, POLLIN, WAIT_MS): waits, bounded, until `fd` has data, EOF or an error.
fn wait_readable(fd: &impl AsFd) -> Result<usize, Error> {
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    step(sys::poll(&mut fds, WAIT_MS), "poll")
}

fn run(lab: &mut Lab) -> Result<(), Error> {
    let listener = lab.listener(2, false)?;
    let mut buf = [0u8; 64];

    lab.say("scenario.reset.unread", &[]);
    let client = lab.connect()?;
    lab.act_as(Role::Server);
    let (conn, _) = step(sys::accept4(&listener, Flags::SOCK_CLOEXEC), "accept4")?;
    lab.act_as(Role::Client);
    step(sys::write(&client, b"never read"), "write")?;
    lab.act_as(Role::Server);
    wait_readable(&conn)?;
    lab.say("scenario.reset.close_unread", &[]);
    step(sys::close(conn), "close")?;
    lab.act_as(Role::Client);
    wait_readable(&client)?;
    // ECONNRESET is the lesson: the event records it.
    let _ = sys::read(&client, &mut buf);
    step(sys::close(client), "close")?;

    lab.say("scenario.reset.linger", &[]);
    let client = lab.connect()?;
    lab.act_as(Role::Server);
    let (conn, _) = step(sys::accept4(&listener, Flags::SOCK_CLOEXEC), "accept4")?;
    step(
        sys::setsockopt(&conn, SockOpt::Linger(Some(0))),
        "setsockopt",
    )?;
    step(sys::close(conn), "close")?;
    lab.say("scenario.reset.linger_closed", &[]);
    lab.act_as(Role::Client);
    wait_readable(&client)?;
    lab.say("scenario.reset.client_writes", &[]);
    // ECONNRESET, then EPIPE: the events record them; the lab must survive both.
    let _ = sys::write(&client, b"anyone there?");
    let _ = sys::write(&client, b"anyone there?");
    lab.say("scenario.reset.survived", &[]);
    step(sys::close(client), "close")?;

    lab.act_as(Role::Server);
    step(sys::close(listener), "close")?;
    lab.look()?;
    Ok(())
}

/// The client's write() calls gave ECONNRESET, then EPIPE, and the client closed its socket
/// after that: the process lived on.
fn writes_then_survives(events: &[Event]) -> Result<(), String> {
    let client: Vec<_> = events
        .iter()
        .filter(|e| e.lane == Lane::Client)
        .filter_map(Event::syscall)
        .collect();
    let writes: Vec<_> = client
        .iter()
        .filter(|s| s.name == "write")
        .map(|s| s.errno.clone().unwrap_or_else(|| format!("= {}", s.ret)))
        .collect();
    // The first write fed the unread data of part 1.
    if writes.get(1..) != Some(&["ECONNRESET".to_string(), "EPIPE".to_string()][..]) {
        return Err(format!("the client's writes gave {writes:?}"));
    }
    let last_write = client.iter().rposition(|s| s.name == "write");
    let closed = client.iter().rposition(|s| s.name == "close");
    if closed > last_write {
        Ok(())
    } else {
        Err("no close() after the EPIPE: the process did not go on".into())
    }
}

/// No FIN crossed the wire: both closes were aborts.
fn no_fin(events: &[Event]) -> Result<(), String> {
    let fins: Vec<_> = packets(events)
        .filter_map(|p| p.flags.clone().filter(|f| f.contains("FIN")))
        .collect();
    if fins.is_empty() {
        Ok(())
    } else {
        Err(format!("captured {fins:?}"))
    }
}

/// No socket of the lab's port was ever in TIME_WAIT: a reset leaves none behind.
fn no_time_wait(events: &[Event]) -> Result<(), String> {
    let tw = events.iter().any(|e| match &e.body {
        Body::State(st) => st.to == TimeWait,
        Body::Syscall(s) => s.tcp_state == Some(TimeWait),
        Body::Packet(_) | Body::Note(_) => false,
    });
    if tw {
        Err("a TIME_WAIT socket was seen".into())
    } else {
        Ok(())
    }
}

fn expect() -> Vec<Expect> {
    use Lane::{Client, Server};
    vec![
        Expect::Errno {
            lane: Client,
            call: "read",
            errno: "ECONNRESET",
        },
        Expect::Custom {
            key: "scenario.reset.check.writes",
            tier: Tier::Always,
            check: writes_then_survives,
        },
        Expect::State {
            lane: Client,
            state: Close,
        },
        Expect::Custom {
            key: "scenario.reset.check.no_time_wait",
            tier: Tier::Always,
            check: no_time_wait,
        },
        Expect::Transition {
            lane: Server,
            from: Some(Established),
            to: Close,
        },
        Expect::Transition {
            lane: Client,
            from: Some(Established),
            to: Close,
        },
        Expect::Packet { flags: "RST|ACK" },
        Expect::Custom {
            key: "scenario.reset.check.no_fin",
            tier: Tier::Packets,
            check: no_fin,
        },
    ]
}
