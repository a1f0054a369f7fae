//! `partial-read`: one 3000-byte write arrives as one segment, yet read(1024) hands it out
//! 1024 bytes at a time; the rest waits in the kernel's receive queue (sock_diag Recv-Q)
//! until the next read. The seed's single recv(1024) would leave it there: TCP is a byte
//! stream, not a message service.

use std::time::{Duration, Instant};

use super::lab::step;
use super::{Expect, Lab, Scenario, Tier, calls, packets};
use crate::error::Error;
use crate::event::tcp_state::TcpState::*;
use crate::event::{Body, Event, Lane, Role};
use crate::observe::sock_diag;
use crate::sys::{self, Flags};

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "partial-read",
    ipv6: false,
    run,
    expect,
};

/// The message: larger than one read's buffer.
const MESSAGE_LEN: usize = 3000;
/// One read's buffer, as in the seed's `recv(1024)`.
const READ_BUF: usize = 1024;

/// 3000 bytes of numbered 30-byte lines, so each read's preview shows where it starts.
fn message() -> Vec<u8> {
    let mut m = Vec::with_capacity(MESSAGE_LEN);
    let mut i = 0;
    while m.len() < MESSAGE_LEN {
        m.extend_from_slice(format!("line {i:03} of one long message\n").as_bytes());
        i += 1;
    }
    m.truncate(MESSAGE_LEN);
    m
}

/// Bytes waiting in the receive queue of the server's connection, as sock_diag reports it.
fn server_recv_q(lab: &Lab) -> Result<Option<u32>, Error> {
    let entries = sock_diag::tcp_sockets(&[lab.port]).map_err(|e| Error::Other(e.to_string()))?;
    Ok(entries
        .iter()
        .find(|e| e.local.port() == lab.port && e.state == Established)
        .map(|e| e.recv_q))
}

/// Takes a look (sock_diag) and says how many bytes still wait in the server's queue.
fn say_queued(lab: &Lab) -> Result<u32, Error> {
    lab.look()?;
    let n = server_recv_q(lab)?.unwrap_or(0);
    lab.say("scenario.partial-read.queued", &[("n", n.to_string())]);
    Ok(n)
}

fn run(lab: &mut Lab) -> Result<(), Error> {
    let msg = message();
    let listener = lab.listener(1, false)?;
    let client = lab.connect()?;
    lab.act_as(Role::Server);
    let (conn, _) = step(sys::accept4(&listener, Flags::SOCK_CLOEXEC), "accept4")?;

    lab.say(
        "scenario.partial-read.one_write",
        &[("n", MESSAGE_LEN.to_string())],
    );
    lab.act_as(Role::Client);
    let sent = step(sys::write(&client, &msg), "write")?;
    if sent != MESSAGE_LEN {
        return Err(Error::Other(format!(
            "write took {sent} of {MESSAGE_LEN} bytes"
        )));
    }
    // Loopback usually delivers before write() returns; wait (bounded) until all of it is in
    // the server's receive queue so the reads below never block.
    let deadline = Instant::now() + Duration::from_secs(2);
    while server_recv_q(lab)? != Some(MESSAGE_LEN as u32) {
        if Instant::now() > deadline {
            return Err(Error::Other(
                "the 3000 bytes never all reached the server's receive queue".into(),
            ));
        }
        lab.pause(5);
    }
    say_queued(lab)?;

    lab.act_as(Role::Server);
    let mut got = Vec::with_capacity(MESSAGE_LEN);
    let mut buf = [0u8; READ_BUF];
    let mut reads = 0;
    while got.len() < MESSAGE_LEN {
        let n = step(sys::read(&conn, &mut buf), "read")?;
        if n == 0 {
            return Err(Error::Other(format!(
                "end of stream after {} of {MESSAGE_LEN} bytes",
                got.len()
            )));
        }
        got.extend_from_slice(&buf[..n]);
        reads += 1;
        let left = say_queued(lab)?;
        if reads == 1 {
            lab.say(
                "scenario.partial-read.seed_stops",
                &[("n", n.to_string()), ("left", left.to_string())],
            );
        }
    }
    if got != msg {
        return Err(Error::Other(
            "the bytes read differ from the bytes written".into(),
        ));
    }
    lab.say(
        "scenario.partial-read.all_there",
        &[("n", got.len().to_string()), ("reads", reads.to_string())],
    );

    lab.act_as(Role::Client);
    step(sys::close(client), "close")?;
    lab.act_as(Role::Server);
    lab.say("scenario.partial-read.eof", &[]);
    step(sys::read(&conn, &mut buf), "read")?;
    step(sys::close(conn), "close")?;
    step(sys::close(listener), "close")?;
    Ok(())
}

/// The server's successful reads, in order: their return values.
fn server_reads(events: &[Event]) -> Vec<i64> {
    calls(events, Lane::Server, "read")
        .filter(|s| !s.failed())
        .map(|s| s.ret)
        .collect()
}

/// The Recv-Q values the lab read from sock_diag, in order.
fn queued(events: &[Event]) -> Vec<u32> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            Body::Note(n) if n.key == "scenario.partial-read.queued" => n.args["n"].parse().ok(),
            Body::Note(_) | Body::Syscall(_) | Body::State(_) | Body::Packet(_) => None,
        })
        .collect()
}

fn expect() -> Vec<Expect> {
    vec![
        Expect::State {
            lane: Lane::Server,
            state: Established,
        },
        Expect::Custom {
            key: "scenario.partial-read.check.one_write",
            tier: Tier::Always,
            check: |events| {
                let writes: Vec<i64> = calls(events, Lane::Client, "write")
                    .map(|s| s.ret)
                    .collect();
                if writes == [MESSAGE_LEN as i64] {
                    Ok(())
                } else {
                    Err(format!("client writes returned {writes:?}"))
                }
            },
        },
        Expect::Custom {
            key: "scenario.partial-read.check.buffer",
            tier: Tier::Always,
            check: |events| {
                let reads = server_reads(events);
                match reads.iter().find(|&&n| n > READ_BUF as i64) {
                    None if !reads.is_empty() => Ok(()),
                    None => Err("no server read".into()),
                    Some(n) => Err(format!("a read returned {n}")),
                }
            },
        },
        Expect::Custom {
            key: "scenario.partial-read.check.several_reads",
            tier: Tier::Always,
            check: |events| {
                let reads = server_reads(events);
                let data: i64 = reads.iter().take_while(|&&n| n > 0).sum();
                let data_reads = reads.iter().take_while(|&&n| n > 0).count();
                if data == MESSAGE_LEN as i64 && data_reads > 1 && reads.last() == Some(&0) {
                    Ok(())
                } else {
                    Err(format!("server reads returned {reads:?}"))
                }
            },
        },
        Expect::Custom {
            key: "scenario.partial-read.check.recv_q",
            tier: Tier::Always,
            check: |events| {
                let q = queued(events);
                let shrinks = q.windows(2).all(|w| w[1] < w[0]);
                if q.first() == Some(&(MESSAGE_LEN as u32)) && shrinks && q.last() == Some(&0) {
                    Ok(())
                } else {
                    Err(format!("Recv-Q was {q:?}"))
                }
            },
        },
        Expect::Custom {
            key: "scenario.partial-read.check.wire",
            tier: Tier::Packets,
            check: |events| {
                let lens: Vec<u32> = packets(events)
                    .filter(|p| p.proto == "TCP" && p.len > 0)
                    .map(|p| p.len)
                    .collect();
                if lens.iter().sum::<u32>() == MESSAGE_LEN as u32 {
                    Ok(())
                } else {
                    Err(format!("data segments of {lens:?} bytes"))
                }
            },
        },
    ]
}
