//! `half-close`: the client sends its request and shutdown(SHUT_WR): a FIN, but the socket
//! stays open for reading. The server reads the request, then read() = 0 (EOF) in
//! CLOSE_WAIT, and still writes its reply, which the client reads in FIN_WAIT2. Then both
//! close; the client, which sent the first FIN, ends in TIME_WAIT.
//!
//! Measured on Linux 6.18: the server's kernel delays the ACK of the FIN (delayed ACK, about
//! 40 ms on loopback), so the client sits in FIN_WAIT1 until that ACK or the reply (which
//! carries it) arrives; the lab waits for FIN_WAIT2 to show both.

use super::lab::step;
use super::{Expect, Lab, Scenario, Tier};
use crate::error::Error;
use crate::event::tcp_state::TcpState::*;
use crate::event::{Event, Lane, Role, Syscall};
use crate::sys::{self, Flags, How};

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "half-close",
    ipv6: false,
    run,
    expect,
};

/// Upper bound for the delayed ACK (about 40 ms) on a busy machine.
const SETTLE_MS: u64 = 1000;

fn run(lab: &mut Lab) -> Result<(), Error> {
    let listener = lab.listener(1, false)?;
    let client = lab.connect()?;
    lab.act_as(Role::Server);
    let (conn, _) = step(sys::accept4(&listener, Flags::SOCK_CLOEXEC), "accept4")?;
    let mut buf = [0u8; 64];

    lab.act_as(Role::Client);
    step(sys::write(&client, b"request"), "write")?;
    lab.say("scenario.half-close.shutdown", &[]);
    step(sys::shutdown(&client, How::Write), "shutdown")?;

    lab.act_as(Role::Server);
    step(sys::read(&conn, &mut buf), "read")?;
    step(sys::read(&conn, &mut buf), "read")?;
    let seen = lab.look()?;
    let fin_wait1 = seen.iter().any(|e| e.state == FinWait1);
    if fin_wait1 {
        lab.say("scenario.half-close.ack_delayed", &[]);
        lab.look_until(FinWait2, SETTLE_MS)?;
    }
    lab.say("scenario.half-close.half_open", &[]);

    lab.act_as(Role::Server);
    step(sys::write(&conn, b"reply"), "write")?;
    lab.act_as(Role::Client);
    step(sys::read(&client, &mut buf), "read")?;

    lab.say("scenario.half-close.server_closes", &[]);
    lab.act_as(Role::Server);
    step(sys::close(conn), "close")?;
    lab.act_as(Role::Client);
    step(sys::read(&client, &mut buf), "read")?;
    step(sys::close(client), "close")?;
    lab.act_as(Role::Server);
    step(sys::close(listener), "close")?;
    lab.look_until(TimeWait, SETTLE_MS)?;
    Ok(())
}

fn call<'a>(e: &'a Event, lane: Lane, name: &str) -> Option<&'a Syscall> {
    e.syscall().filter(|s| e.lane == lane && s.name == name)
}

/// TCP_INFO right after shutdown(SHUT_WR): FIN_WAIT1 (FIN not yet acked) or FIN_WAIT2.
fn fin_wait_after_shutdown(events: &[Event]) -> Result<(), String> {
    let sh = events
        .iter()
        .find_map(|e| call(e, Lane::Client, "shutdown"))
        .ok_or("no shutdown() on the client lane")?;
    match sh.tcp_state {
        Some(FinWait1 | FinWait2) => Ok(()),
        other => Err(format!("TCP_INFO after shutdown() read {other:?}")),
    }
}

/// After the server's read() returned 0, its write() still went out and the client, which
/// had shut down its sending side, read those bytes.
fn sends_after_eof(events: &[Event]) -> Result<(), String> {
    let eof = events
        .iter()
        .position(|e| call(e, Lane::Server, "read").is_some_and(|s| s.ret == 0))
        .ok_or("the server's read() never returned 0")?;
    let wrote = eof
        + events[eof..]
            .iter()
            .position(|e| call(e, Lane::Server, "write").is_some_and(|s| s.ret > 0))
            .ok_or("no server write() succeeded after its EOF")?;
    let got = events[wrote..]
        .iter()
        .find_map(|e| call(e, Lane::Client, "read").filter(|s| s.ret > 0))
        .ok_or("the client read nothing after the server's write()")?;
    match got.tcp_state {
        Some(FinWait2) => Ok(()),
        other => Err(format!(
            "the client read the reply in {other:?}, not FIN_WAIT2"
        )),
    }
}

fn expect() -> Vec<Expect> {
    use Lane::{Client, Server};
    let mut all = vec![
        Expect::Custom {
            key: "scenario.half-close.check.fin_wait",
            tier: Tier::Always,
            check: fin_wait_after_shutdown,
        },
        Expect::State {
            lane: Server,
            state: CloseWait,
        },
        Expect::State {
            lane: Client,
            state: FinWait2,
        },
        Expect::Custom {
            key: "scenario.half-close.check.still_writes",
            tier: Tier::Always,
            check: sends_after_eof,
        },
        Expect::State {
            lane: Client,
            state: TimeWait,
        },
    ];
    all.extend(Expect::close_transitions(Client, Server));
    all.push(Expect::Packet { flags: "FIN|ACK" });
    all
}
