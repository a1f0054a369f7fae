//! `time-wait`: the server closes first, so the TIME_WAIT sits on the server's own port.
//! "Restarting" the server there: bind() without SO_REUSEADDR fails with EADDRINUSE, with it
//! succeeds while the TIME_WAIT socket is still listed.
//!
//! Measured on Linux 6.18: the TIME_WAIT socket keeps the SO_REUSEADDR flag of the connection
//! it replaced (an accepted socket inherits it from its listener), and bind() passes it only
//! when both the new socket and that TIME_WAIT socket have the flag (inet_bind_conflict in
//! net/ipv4/inet_connection_sock.c). So the first server sets it too, as real servers do.

use super::lab::step;
use super::{Expect, Lab, Scenario, Tier};
use crate::error::Error;
use crate::event::tcp_state::TcpState::{self, *};
use crate::event::{Body, Event, Lane, Role, Syscall};
use crate::sys::{self, Flags, Type};

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "time-wait",
    ipv6: false,
    run,
    expect,
};

/// Upper bound for the kernel to settle a state the lab waits for.
const SETTLE_MS: u64 = 1000;

fn run(lab: &mut Lab) -> Result<(), Error> {
    lab.say("scenario.time-wait.first_server", &[]);
    let listener = lab.listener(1, true)?;
    let client = lab.connect()?;
    lab.act_as(Role::Server);
    let (conn, _) = step(sys::accept4(&listener, Flags::SOCK_CLOEXEC), "accept4")?;
    step(sys::write(&conn, b"bye"), "write")?;
    lab.say("scenario.time-wait.server_closes", &[]);
    step(sys::close(conn), "close")?;
    lab.act_as(Role::Client);
    let mut buf = [0u8; 64];
    step(sys::read(&client, &mut buf), "read")?;
    step(sys::read(&client, &mut buf), "read")?;
    step(sys::close(client), "close")?;
    lab.act_as(Role::Server);
    lab.say("scenario.time-wait.server_stops", &[]);
    step(sys::close(listener), "close")?;
    lab.look_until(TimeWait, SETTLE_MS)?;

    lab.say("scenario.time-wait.restart_plain", &[]);
    let fd = step(
        sys::socket(lab.domain(), Type::Stream, Flags::SOCK_CLOEXEC),
        "socket",
    )?;
    // EADDRINUSE is the lesson: the event records it.
    let _ = sys::bind(&fd, lab.server_addr());
    step(sys::close(fd), "close")?;

    lab.say("scenario.time-wait.restart_reuse", &[]);
    let listener = lab.listener(1, true)?;
    let seen = lab.look()?;
    let count = |st: TcpState| seen.iter().filter(|e| e.state == st).count().to_string();
    lab.say(
        "scenario.time-wait.both_listed",
        &[
            ("port", lab.port.to_string()),
            ("listen", count(Listen)),
            ("time_wait", count(TimeWait)),
        ],
    );
    lab.act_as(Role::Server);
    step(sys::close(listener), "close")
}

fn server_call<'a>(e: &'a Event, name: &str) -> Option<&'a Syscall> {
    e.syscall()
        .filter(|s| e.lane == Lane::Server && s.name == name)
}

/// After a bind() failed with EADDRINUSE (the TIME_WAIT already listed), a later bind()
/// succeeded on a socket that set SO_REUSEADDR in between. The TIME_WAIT lives 60 s; the run
/// takes milliseconds, so it was still there.
fn restart_with_reuse(events: &[Event]) -> Result<(), String> {
    let tw = events
        .iter()
        .position(|e| {
            e.lane == Lane::Server && matches!(&e.body, Body::State(st) if st.to == TimeWait)
        })
        .ok_or("sock_diag never listed the server's TIME_WAIT socket")?;
    let refused = events
        .iter()
        .position(|e| {
            server_call(e, "bind").is_some_and(|s| s.errno.as_deref() == Some("EADDRINUSE"))
        })
        .ok_or("no bind() failed with EADDRINUSE")?;
    if tw > refused {
        return Err("the TIME_WAIT was listed only after the failed bind()".into());
    }
    let ok = refused
        + events[refused..]
            .iter()
            .position(|e| server_call(e, "bind").is_some_and(|s| s.errno.is_none()))
            .ok_or("no bind() succeeded after the EADDRINUSE")?;
    let fd = events[ok].syscall().and_then(|s| s.fd);
    let reuse = events[refused..ok].iter().any(|e| {
        server_call(e, "setsockopt").is_some_and(|s| {
            s.fd == fd
                && s.errno.is_none()
                && s.args.get("optname").and_then(|v| v.as_str()) == Some("SO_REUSEADDR")
        })
    });
    if reuse {
        Ok(())
    } else {
        Err("the bind() that succeeded had not set SO_REUSEADDR".into())
    }
}

fn expect() -> Vec<Expect> {
    use Lane::{Client, Server};
    let mut all = vec![
        Expect::State {
            lane: Server,
            state: Listen,
        },
        Expect::State {
            lane: Client,
            state: CloseWait,
        },
        Expect::State {
            lane: Server,
            state: TimeWait,
        },
        Expect::Errno {
            lane: Server,
            call: "bind",
            errno: "EADDRINUSE",
        },
        Expect::Custom {
            key: "scenario.time-wait.check.reuse",
            tier: Tier::Always,
            check: restart_with_reuse,
        },
    ];
    all.extend(Expect::close_transitions(Server, Client));
    all.push(Expect::Packet { flags: "FIN|ACK" });
    all
}
