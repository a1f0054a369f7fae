//! `handshake`: the 3-way handshake, one request and reply, an orderly close: every state of
//! both sides. The client closes first, so it is the one left in TIME_WAIT.

use super::lab::step;
use super::{Expect, Lab, Scenario};
use crate::error::Error;
use crate::event::tcp_state::TcpState::*;
use crate::event::{Lane, Role};
use crate::sys::{self, Flags};

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "handshake",
    ipv6: false,
    run,
    expect,
};

fn run(lab: &mut Lab) -> Result<(), Error> {
    let listener = lab.listener(1, false)?;
    exchange(lab, listener)
}

/// The exchange on an open listener: connect, accept, one request and reply, the client
/// closes first. Shared with `ipv6`.
pub(super) fn exchange(lab: &mut Lab, listener: std::os::fd::OwnedFd) -> Result<(), Error> {
    let client = lab.connect()?;
    step(sys::getsockname(&client), "getsockname")?;
    lab.act_as(Role::Server);
    let (conn, _) = step(sys::accept4(&listener, Flags::SOCK_CLOEXEC), "accept4")?;
    lab.act_as(Role::Client);
    step(sys::write(&client, b"ping"), "write")?;
    lab.act_as(Role::Server);
    let mut buf = [0u8; 64];
    step(sys::read(&conn, &mut buf), "read")?;
    step(sys::write(&conn, b"pong"), "write")?;
    lab.act_as(Role::Client);
    step(sys::read(&client, &mut buf), "read")?;
    lab.say("scenario.handshake.client_closes", &[]);
    step(sys::close(client), "close")?;
    lab.act_as(Role::Server);
    step(sys::read(&conn, &mut buf), "read")?;
    step(sys::close(conn), "close")?;
    step(sys::close(listener), "close")?;
    lab.look()?;
    Ok(())
}

fn expect() -> Vec<Expect> {
    states()
}

/// Every state of both sides and the handshake's packets. Shared with `ipv6`.
pub(super) fn states() -> Vec<Expect> {
    use Lane::{Client, Server};
    let mut all = vec![
        Expect::State {
            lane: Server,
            state: Listen,
        },
        Expect::State {
            lane: Client,
            state: Established,
        },
        Expect::State {
            lane: Server,
            state: Established,
        },
        Expect::State {
            lane: Server,
            state: CloseWait,
        },
        Expect::State {
            lane: Client,
            state: TimeWait,
        },
        Expect::Transition {
            lane: Client,
            from: Some(Close),
            to: SynSent,
        },
        Expect::Transition {
            lane: Client,
            from: Some(SynSent),
            to: Established,
        },
        Expect::Transition {
            lane: Server,
            from: None,
            to: SynRecv,
        },
        Expect::Transition {
            lane: Server,
            from: Some(SynRecv),
            to: Established,
        },
    ];
    all.extend(Expect::close_transitions(Client, Server));
    all.extend([
        Expect::Transition {
            lane: Server,
            from: Some(LastAck),
            to: Close,
        },
        Expect::Packet { flags: "SYN" },
        Expect::Packet { flags: "SYN|ACK" },
        Expect::Packet { flags: "FIN|ACK" },
    ]);
    all
}
