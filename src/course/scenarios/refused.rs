//! `refused`: connect to a port where nothing listens: the SYN is answered by RST and
//! connect() fails with ECONNREFUSED.

use super::{Expect, Lab, Scenario};
use crate::error::Error;
use crate::event::Lane;
use crate::event::tcp_state::TcpState::*;
use crate::sys;

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "refused",
    ipv6: false,
    run,
    expect,
};

fn run(lab: &mut Lab) -> Result<(), Error> {
    let fd = lab.client_socket()?;
    // The failure is the lesson: the event records it.
    let _ = sys::connect(&fd, lab.server_addr());
    super::lab::step(sys::close(fd), "close")
}

fn expect() -> Vec<Expect> {
    vec![
        Expect::Errno {
            lane: Lane::Client,
            call: "connect",
            errno: "ECONNREFUSED",
        },
        Expect::State {
            lane: Lane::Client,
            state: Close,
        },
        Expect::Transition {
            lane: Lane::Client,
            from: Some(Close),
            to: SynSent,
        },
        Expect::Transition {
            lane: Lane::Client,
            from: Some(SynSent),
            to: Close,
        },
        Expect::Packet { flags: "SYN" },
        Expect::Packet { flags: "RST|ACK" },
    ]
}
