//! `nonblocking-connect`: connect() on an O_NONBLOCK socket returns -1 EINPROGRESS at once;
//! poll() for POLLOUT says when the handshake is over, and getsockopt(SO_ERROR) says how it
//! ended. Both endings: a server that answers late (0), and a port nobody listens on
//! (ECONNREFUSED).
//!
//! Measured on Linux 6.18 (loopback): connect() returns EINPROGRESS even when the handshake
//! finished inside the call (TCP_INFO already ESTABLISHED), because the SYN|ACK is handled
//! only as the call releases the socket. To make the wait visible the lab fills the
//! listener's accept queue first: the SYN is dropped, the socket stays in SYN_SENT, and the
//! retransmitted SYN (after 1 s) completes the handshake. The refused connect also returns
//! EINPROGRESS with the RST already handled (TCP_INFO CLOSE); poll() then reports
//! POLLOUT|POLLERR|POLLHUP and SO_ERROR is ECONNREFUSED.

use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::PollFd;

use super::lab::step;
use super::{Expect, Lab, Scenario, Tier, calls};
use crate::error::Error;
use crate::event::tcp_state::TcpState::*;
use crate::event::{Event, Lane, Role};
use crate::sys::{self, Flags, PollFlags};

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "nonblocking-connect",
    ipv6: false,
    run,
    expect,
};

/// Bound for the wait on the handshake: the SYN is retransmitted after 1 s, then 2 s later.
const WAIT_MS: i32 = 4000;

/// Starts a non-blocking connect; EINPROGRESS is the answer the lesson expects, any other is
/// recorded in the event and left to the checks.
fn start(lab: &Lab) -> Result<OwnedFd, Error> {
    let (fd, res) = lab.connect_nonblocking()?;
    match res {
        Ok(()) | Err(Errno::EINPROGRESS | Errno::ECONNREFUSED) => Ok(fd),
        Err(e) => Err(Error::sys("connect", lab.server_addr(), e)),
    }
}

fn poll_out(fd: &OwnedFd, timeout_ms: i32) -> Result<usize, Error> {
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
    step(sys::poll(&mut fds, timeout_ms), "poll")
}

fn run(lab: &mut Lab) -> Result<(), Error> {
    // Part 1: a server whose accept queue is full answers only after a retransmission.
    let listener = lab.listener(0, false)?;
    lab.say("scenario.nonblocking-connect.fill", &[]);
    let first = lab.connect()?;
    lab.act_as(Role::Server);
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    if step(sys::poll(&mut fds, WAIT_MS), "poll")? == 0 {
        return Err(Error::Other(
            "the first connection never reached the queue".into(),
        ));
    }

    lab.say("scenario.nonblocking-connect.start", &[]);
    let client = start(lab)?;
    poll_out(&client, 0)?;
    lab.say("scenario.nonblocking-connect.not_yet", &[]);
    lab.act_as(Role::Server);
    let (conn1, _) = step(sys::accept4(&listener, Flags::SOCK_CLOEXEC), "accept4")?;
    lab.act_as(Role::Client);
    if poll_out(&client, WAIT_MS)? == 0 {
        return Err(Error::Other(format!(
            "the connect did not finish within {WAIT_MS} ms"
        )));
    }
    step(sys::so_error(&client), "getsockopt")?;
    lab.act_as(Role::Server);
    let (conn2, _) = step(sys::accept4(&listener, Flags::SOCK_CLOEXEC), "accept4")?;
    lab.act_as(Role::Client);
    step(sys::close(first), "close")?;
    step(sys::close(client), "close")?;
    lab.act_as(Role::Server);
    step(sys::close(conn1), "close")?;
    step(sys::close(conn2), "close")?;

    // Part 2: nobody listens any more.
    step(sys::close(listener), "close")?;
    lab.say("scenario.nonblocking-connect.refused", &[]);
    let client = start(lab)?;
    lab.say("scenario.nonblocking-connect.refused_returned", &[]);
    if poll_out(&client, WAIT_MS)? == 0 {
        return Err(Error::Other(format!(
            "the refused connect did not end within {WAIT_MS} ms"
        )));
    }
    step(sys::so_error(&client), "getsockopt")?;
    step(sys::close(client), "close")
}

fn so_errors(events: &[Event]) -> Vec<String> {
    calls(events, Lane::Client, "getsockopt")
        .filter(|s| s.args.get("optname").and_then(|v| v.as_str()) == Some("SO_ERROR"))
        .map(|s| {
            s.args
                .get("optval")
                .and_then(|v| v.as_str())
                .unwrap_or("?")
                .to_string()
        })
        .collect()
}

/// The two non-blocking connects both returned EINPROGRESS.
fn both_in_progress(events: &[Event]) -> Result<(), String> {
    let got: Vec<String> = calls(events, Lane::Client, "connect")
        .filter(|s| s.failed())
        .map(|s| s.errno.clone().unwrap_or_default())
        .collect();
    if got == ["EINPROGRESS", "EINPROGRESS"] {
        Ok(())
    } else {
        Err(format!("non-blocking connects gave {got:?}"))
    }
}

/// poll(POLLOUT) said "not yet" in SYN_SENT, then woke once the handshake was over.
fn poll_waited(events: &[Event]) -> Result<(), String> {
    let polls: Vec<_> = calls(events, Lane::Client, "poll")
        .map(|s| (s.ret, s.tcp_state))
        .collect();
    match polls.as_slice() {
        [(0, Some(SynSent)), (1, Some(Established)), ..] => Ok(()),
        other => Err(format!("polls (ret, state): {other:?}")),
    }
}

/// The refused connect's poll woke with POLLERR (and POLLHUP) besides POLLOUT.
fn refused_poll_errs(events: &[Event]) -> Result<(), String> {
    let last = calls(events, Lane::Client, "poll")
        .last()
        .ok_or("no poll on the client lane")?;
    let fds = last.args.get("fds").and_then(|v| v.as_str()).unwrap_or("");
    if last.ret == 1 && fds.contains("POLLERR") {
        Ok(())
    } else {
        Err(format!("last poll = {}: {fds}", last.ret))
    }
}

fn so_error_both(events: &[Event]) -> Result<(), String> {
    let got = so_errors(events);
    if got == ["0", "ECONNREFUSED"] {
        Ok(())
    } else {
        Err(format!("SO_ERROR read {got:?}"))
    }
}

fn expect() -> Vec<Expect> {
    use Lane::Client;
    vec![
        Expect::Custom {
            key: "scenario.nonblocking-connect.check.einprogress",
            tier: Tier::Always,
            check: both_in_progress,
        },
        Expect::Custom {
            key: "scenario.nonblocking-connect.check.poll",
            tier: Tier::Always,
            check: poll_waited,
        },
        Expect::Custom {
            key: "scenario.nonblocking-connect.check.so_error",
            tier: Tier::Always,
            check: so_error_both,
        },
        Expect::Custom {
            key: "scenario.nonblocking-connect.check.pollerr",
            tier: Tier::Always,
            check: refused_poll_errs,
        },
        Expect::State {
            lane: Client,
            state: SynSent,
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
        Expect::Transition {
            lane: Client,
            from: Some(SynSent),
            to: Close,
        },
        Expect::Packet { flags: "RST|ACK" },
    ]
}
