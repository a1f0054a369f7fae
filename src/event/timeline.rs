//! One timeline from every source: lanes for the kernel's events, and the notes that only the
//! merged view can give (the connection was ESTABLISHED before accept() returned it).

use crate::course::notes;
use crate::event::tcp_state::TcpState;
use crate::event::{Body, Event, Lane, Role};

/// The port of `ip:port` (`[ip6]:port` too).
pub(crate) fn port_of(addr: &str) -> Option<u16> {
    addr.rsplit(':').next()?.parse().ok()
}

/// Puts kernel state events on the client or server lane: a socket whose local port is the
/// server's belongs to the server (the listener and its children), any other to the client.
///
/// The tracepoint reports a new child socket as `LISTEN -> SYN_RECV`, because the child is
/// cloned from the listener with the listener's state; it is shown as a new socket instead
/// (`from` empty, `sock` = "child"), so the listener does not seem to change.
pub fn assign_lanes(events: &mut [Event], server_port: u16) {
    for ev in events.iter_mut() {
        let Body::State(st) = &mut ev.body else {
            continue;
        };
        if ev.role.is_some() {
            continue;
        }
        let local = st.local.as_deref().and_then(port_of);
        let remote = st.remote.as_deref().and_then(port_of).unwrap_or(0);
        let role = if local == Some(server_port) {
            Role::Server
        } else if remote == server_port {
            Role::Client
        } else {
            continue;
        };
        if role == Role::Server && remote != 0 && st.from == Some(TcpState::Listen) {
            st.from = None;
            st.sock = Some("child".into());
        }
        ev.role = Some(role);
        ev.lane = role.lane();
    }
}

/// A note of the merged view, on the server's lane.
fn server_note(t: u64, key: &str, args: &[(&str, String)]) -> Event {
    Event {
        t,
        pid: 0,
        tid: 0,
        role: Some(Role::Server),
        lane: Lane::Server,
        body: Body::Note(notes::note(key, args)),
    }
}

/// Adds the note the merged view makes possible: the server's child socket reached
/// ESTABLISHED before accept4 returned it.
pub fn add_insight_notes(events: &mut Vec<Event>) {
    let established = events.iter().find_map(|e| match &e.body {
        Body::State(st) if e.lane == Lane::Server && st.to == TcpState::Established => Some(e.t),
        _ => None,
    });
    let accepted = events
        .iter()
        .find(|e| {
            e.syscall()
                .is_some_and(|s| s.name == "accept4" && !s.failed())
        })
        .map(|e| e.t);
    if let (Some(est), Some(acc)) = (established, accepted)
        && est < acc
    {
        let pos = events
            .iter()
            .position(|e| e.t > est)
            .unwrap_or(events.len());
        let us = format!("{:.0}", (acc - est) as f64 / 1e3);
        let note = server_note(est, "timeline.established_before_accept", &[("us", us)]);
        events.insert(pos, note);
    }
}

/// Adds the note that shows a rewritten source (NAT): the client's own address (its
/// getsockname after connect) is not the peer address the server's accept4 returned. Placed
/// on the server lane after the later of the two calls. Nothing when they agree.
pub fn add_rewrite_note(events: &mut Vec<Event>) {
    let addr_of = |role: Role, name: &str| {
        events.iter().find_map(|e| {
            let sc = e.syscall()?;
            if e.role != Some(role) || sc.name != name || sc.failed() {
                return None;
            }
            let addr = sc.args.get("addr")?.as_str()?;
            (!addr.is_empty()).then(|| (e.t, addr.to_string()))
        })
    };
    let (Some((t_own, own)), Some((t_seen, seen))) = (
        addr_of(Role::Client, "getsockname"),
        addr_of(Role::Server, "accept4"),
    ) else {
        return;
    };
    if own == seen {
        return;
    }
    events.push(server_note(
        t_own.max(t_seen),
        "timeline.source_rewritten",
        &[("client", own), ("seen", seen)],
    ));
    sort(events);
}

/// Drops a snapshot state event (`now STATE`, no known transition) that repeats the previous
/// snapshot of the same socket: two looks at one TIME_WAIT socket are one fact.
pub fn dedup_snapshots(events: &mut Vec<Event>) {
    let mut seen = std::collections::HashSet::new();
    events.retain(|e| match &e.body {
        Body::State(st) if st.from.is_none() && st.sock.is_none() => {
            seen.insert((st.local.clone(), st.remote.clone(), st.to))
        }
        Body::State(_) | Body::Syscall(_) | Body::Packet(_) | Body::Note(_) => true,
    });
}

/// Sorts by time; for equal times keeps the sources' own order.
pub fn sort(events: &mut [Event]) {
    events.sort_by_key(|e| e.t);
}

/// Marks where a syscall began when something else happened while it ran, as strace does
/// with `<unfinished ...>`: a note at the call's start, on its lane. A syscall event is
/// stamped when it returned, so without this a connect() would seem to start after the
/// handshake it caused.
pub fn mark_unfinished(events: &mut Vec<Event>) {
    let mut marks = Vec::new();
    for ev in events.iter() {
        let Some(sc) = ev.syscall() else { continue };
        let start = ev.t.saturating_sub(sc.dur_ns);
        let overlapped = events.iter().any(|o| {
            o.t > start
                && o.t < ev.t
                && !matches!(o.body, Body::Note(_))
                && !(o.lane == ev.lane && o.pid == ev.pid && o.tid == ev.tid)
        });
        if overlapped {
            marks.push(Event {
                t: start,
                pid: ev.pid,
                tid: ev.tid,
                role: ev.role,
                lane: ev.lane,
                body: Body::Note(notes::note(
                    "timeline.unfinished",
                    &[("call", crate::render::live::human::call_head(sc))],
                )),
            });
        }
    }
    events.extend(marks);
    sort(events);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(t: u64, from: Option<TcpState>, to: TcpState, local: &str, remote: &str) -> Event {
        Event::lab_state(t, from, to, local, remote, "tracepoint")
    }

    fn call(t: u64, role: Role, name: &str, addr: &str) -> Event {
        let json = serde_json::json!({
            "t": t, "pid": 1, "tid": 1, "role": role, "lane": role.lane(), "kind": "syscall",
            "name": name, "fd": 3, "args": {"fd": 3, "addr": addr}, "ret": 0, "errno": null,
            "dur_ns": 1, "tcp_state": null, "local": null, "remote": null, "queue": null,
            "probe": null
        });
        Event::from_json(&json.to_string()).expect("a syscall event")
    }

    #[test]
    fn a_rewritten_source_gets_a_note_after_both_calls() {
        let mut evs = vec![
            call(10, Role::Server, "accept4", "198.18.0.1:40000"),
            call(20, Role::Client, "getsockname", "198.18.1.2:50000"),
            call(30, Role::Client, "close", ""),
        ];
        add_rewrite_note(&mut evs);
        assert_eq!(evs.len(), 4);
        let Body::Note(n) = &evs[2].body else {
            panic!("no note after getsockname: {evs:?}")
        };
        assert_eq!(n.key, "timeline.source_rewritten");
        assert_eq!(n.args["client"], "198.18.1.2:50000");
        assert_eq!(n.args["seen"], "198.18.0.1:40000");
        assert_eq!(evs[2].lane, Lane::Server);

        let mut same = vec![
            call(10, Role::Server, "accept4", "198.18.0.1:40000"),
            call(20, Role::Client, "getsockname", "198.18.0.1:40000"),
        ];
        add_rewrite_note(&mut same);
        assert_eq!(same.len(), 2, "no rewrite, no note");
    }

    #[test]
    fn lanes_follow_the_server_port_and_children_are_new() {
        let mut evs = vec![
            state(
                1,
                Some(TcpState::Close),
                TcpState::Listen,
                "127.0.0.1:1060",
                "0.0.0.0:0",
            ),
            state(
                2,
                Some(TcpState::Close),
                TcpState::SynSent,
                "127.0.0.1:0",
                "127.0.0.1:1060",
            ),
            state(
                3,
                Some(TcpState::Listen),
                TcpState::SynRecv,
                "127.0.0.1:1060",
                "127.0.0.1:5000",
            ),
        ];
        assign_lanes(&mut evs, 1060);
        assert_eq!(evs[0].lane, Lane::Server);
        assert_eq!(evs[1].lane, Lane::Client);
        assert_eq!(evs[2].lane, Lane::Server);
        let Body::State(child) = &evs[2].body else {
            unreachable!()
        };
        assert_eq!(child.from, None);
        assert_eq!(child.sock.as_deref(), Some("child"));
        let Body::State(listener) = &evs[0].body else {
            unreachable!()
        };
        assert_eq!(listener.from, Some(TcpState::Close));
    }
}
