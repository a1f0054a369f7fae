//! State changes without root: sock_diag snapshots taken every few ms, diffed.
//!
//! Read first: sock_diag(7), and [`super::sock_diag`] for what one snapshot holds.
//! A poller misses what lasts less than its interval (a whole loopback handshake takes ~0.1 ms),
//! so this is the fallback when the tracepoint (root) is not available.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::ObserveError;
use super::sock_diag::{self, SockEntry};
use crate::event::record::now_ns;
use crate::event::tcp_state::TcpState;
use crate::event::{Body, Event};

/// How often the fallback polls.
pub const INTERVAL: Duration = Duration::from_millis(10);

/// A socket's identity across snapshots: (local, remote).
pub type Key = (SocketAddr, SocketAddr);

/// One snapshot: each socket's state.
pub type Snapshot = BTreeMap<Key, TcpState>;

/// Keys a sock_diag listing (a later duplicate key wins).
pub fn snapshot(entries: &[SockEntry]) -> Snapshot {
    entries
        .iter()
        .map(|e| ((e.local, e.remote), e.state))
        .collect()
}

/// The state events that turn `prev` into `now`, stamped `t`: a new socket comes from `None`,
/// a socket that disappeared goes to CLOSE. Ordered by key.
pub fn diff(prev: &Snapshot, now: &Snapshot, t: u64) -> Vec<Event> {
    let mut out = Vec::new();
    for (key, &to) in now {
        let from = prev.get(key).copied();
        if from != Some(to) {
            out.push(change(t, key, from, to));
        }
    }
    for (key, &from) in prev {
        if !now.contains_key(key) && from != TcpState::Close {
            out.push(change(t, key, Some(from), TcpState::Close));
        }
    }
    out.sort_by(|a, b| key_of(a).cmp(&key_of(b)));
    out
}

fn key_of(ev: &Event) -> Option<(&str, &str)> {
    match &ev.body {
        Body::State(s) => Some((s.local.as_deref()?, s.remote.as_deref()?)),
        Body::Syscall(_) | Body::Packet(_) | Body::Note(_) => None,
    }
}

fn change(t: u64, (local, remote): &Key, from: Option<TcpState>, to: TcpState) -> Event {
    Event::lab_state(t, from, to, local, remote, "sock_diag")
}

/// Polls sock_diag for the sockets on some ports and reports what changed since last time.
#[derive(Debug)]
pub struct DiagPoller {
    ports: Vec<u16>,
    prev: Snapshot,
}

impl DiagPoller {
    /// Takes the baseline snapshot: sockets that exist now are not reported as new.
    pub fn start(ports: &[u16]) -> Result<DiagPoller, ObserveError> {
        let prev = snapshot(&Self::take(ports)?);
        Ok(DiagPoller {
            ports: ports.to_vec(),
            prev,
        })
    }

    /// One more snapshot; the changes are stamped with the time it was complete.
    pub fn poll(&mut self) -> Result<Vec<Event>, ObserveError> {
        let now = snapshot(&Self::take(&self.ports)?);
        let events = diff(&self.prev, &now, now_ns());
        self.prev = now;
        Ok(events)
    }

    fn take(ports: &[u16]) -> Result<Vec<SockEntry>, ObserveError> {
        sock_diag::tcp_sockets(ports).map_err(|e| ObserveError::Failed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Lane;

    fn key(l: u16, r: u16) -> Key {
        (
            format!("127.0.0.1:{l}").parse().unwrap(),
            format!("127.0.0.1:{r}").parse().unwrap(),
        )
    }

    fn changes(evs: &[Event]) -> Vec<(String, Option<TcpState>, TcpState)> {
        evs.iter()
            .map(|e| match &e.body {
                Body::State(s) => (s.local.clone().unwrap(), s.from, s.to),
                other => panic!("not a state event: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn new_changed_gone_and_unchanged() {
        let prev = Snapshot::from([
            (key(1060, 0), TcpState::Listen),
            (key(40000, 1060), TcpState::Established),
            (key(1060, 40000), TcpState::SynRecv),
            (key(40001, 1060), TcpState::Close),
        ]);
        let now = Snapshot::from([
            (key(1060, 0), TcpState::Listen),
            (key(1060, 40000), TcpState::Established),
            (key(40002, 1060), TcpState::SynSent),
        ]);
        let evs = diff(&prev, &now, 7);
        assert!(
            evs.iter()
                .all(|e| e.t == 7 && e.pid == 0 && e.lane == Lane::Lab)
        );
        assert_eq!(
            changes(&evs),
            [
                (
                    "127.0.0.1:1060".into(),
                    Some(TcpState::SynRecv),
                    TcpState::Established
                ),
                (
                    "127.0.0.1:40000".into(),
                    Some(TcpState::Established),
                    TcpState::Close
                ),
                ("127.0.0.1:40002".into(), None, TcpState::SynSent),
            ]
        );
        let Body::State(s) = &evs[0].body else {
            unreachable!()
        };
        assert_eq!(s.source, "sock_diag");
        assert_eq!(s.remote.as_deref(), Some("127.0.0.1:40000"));
    }

    #[test]
    fn same_snapshot_no_events() {
        let s = Snapshot::from([(key(1060, 0), TcpState::Listen)]);
        assert!(diff(&s, &s, 1).is_empty());
        assert!(diff(&Snapshot::new(), &Snapshot::new(), 1).is_empty());
    }
}
